// Test tool: signs a token with moto's own Cognito signing key (shipped inside the moto
// package), so the e2e tests can present tokens that are correctly signed but expired, for
// another app client, or of the wrong `token_use`, and check that the front door refuses
// each. Local testing only: moto's key is public and signs nothing real.
//
//   node tools/mint-token.mjs <moto jwks-private.json[.gz]> '<claims JSON>'
// prints the token on stdout.

import { createPrivateKey, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

const [keyFile, claimsJson] = process.argv.slice(2);
if (!keyFile || !claimsJson) {
  console.error('usage: mint-token.mjs <jwks-private.json[.gz]> <claims JSON>');
  process.exit(2);
}
// moto's JWK has only n, e and d; Node needs the CRT parameters, recovered from them.
const toBig = (b64) => BigInt(`0x${Buffer.from(b64, 'base64url').toString('hex') || '0'}`);
const toB64 = (n) => {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return Buffer.from(hex, 'hex').toString('base64url');
};
const modPow = (base, exp, mod) => {
  let result = 1n;
  let b = base % mod;
  let x = exp;
  while (x > 0n) {
    if (x & 1n) result = (result * b) % mod;
    b = (b * b) % mod;
    x >>= 1n;
  }
  return result;
};
const gcd = (a, b) => (b === 0n ? a : gcd(b, a % b));
const modInv = (a, m) => {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
};

/** p and q from n, e, d (the classic randomized method, made deterministic). */
function factor(n, e, d) {
  let r = d * e - 1n;
  let t = 0n;
  while (r % 2n === 0n) {
    r /= 2n;
    t += 1n;
  }
  for (let g = 2n; g < 1000n; g += 1n) {
    let y = modPow(g, r, n);
    if (y === 1n || y === n - 1n) continue;
    for (let i = 0n; i < t; i += 1n) {
      const x = (y * y) % n;
      if (x === 1n) {
        const p = gcd(y - 1n, n);
        return [p, n / p];
      }
      if (x === n - 1n) break;
      y = x;
    }
  }
  throw new Error('cannot factor the modulus');
}

function completeJwk(jwk) {
  if (jwk.p) return jwk;
  const [n, e, d] = [toBig(jwk.n), toBig(jwk.e), toBig(jwk.d)];
  const [p, q] = factor(n, e, d);
  return {
    kty: 'RSA',
    n: jwk.n,
    e: jwk.e,
    d: jwk.d,
    p: toB64(p),
    q: toB64(q),
    dp: toB64(d % (p - 1n)),
    dq: toB64(d % (q - 1n)),
    qi: toB64(modInv(q, p)),
  };
}

const raw = readFileSync(keyFile);
const parsed = JSON.parse((keyFile.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8'));
const jwk = parsed.keys ? parsed.keys[0] : parsed;
const key = createPrivateKey({ key: completeJwk(jwk), format: 'jwk' });
const kid = jwk.kid ?? 'dummy';
const part = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
const signingInput = `${part({ kid, alg: 'RS256' })}.${part(JSON.parse(claimsJson))}`;
process.stdout.write(`${signingInput}.${sign('RSA-SHA256', Buffer.from(signingInput), key).toString('base64url')}`);
