// Test helpers: an RSA key pair acting as a user pool, and tokens signed with it.

import { generateKeyPairSync, sign } from 'node:crypto';

export const POOL = 'eu-west-2_TestPool1';
export const ISSUER = `https://cognito-idp.eu-west-2.amazonaws.com/${POOL}`;
export const CLIENT = 'local-web-client';

export function keyPair(kid = 'test-key') {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }, privateKey };
}

export function jwksOf(...pairs) {
  return { keys: pairs.map((p) => p.publicJwk) };
}

export function b64(obj) {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

export function signToken(pair, claims, header = {}) {
  const head = b64({ alg: 'RS256', kid: pair.kid, ...header });
  const body = b64(claims);
  const signature = sign('RSA-SHA256', Buffer.from(`${head}.${body}`), pair.privateKey).toString('base64url');
  return `${head}.${body}.${signature}`;
}

export function claims(overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: '11111111-2222-3333-4444-555555555555',
    iss: ISSUER,
    client_id: CLIENT,
    token_use: 'access',
    username: '11111111-2222-3333-4444-555555555555',
    'cognito:groups': ['ig-reviewers'],
    iat: now,
    exp: now + 3600,
    ...overrides,
  };
}

/** A fetch answering the JWKS URL with `jwks`, counting calls. */
export function fakeFetch(jwks) {
  const f = async () => {
    f.calls += 1;
    return { ok: true, status: 200, json: async () => jwks };
  };
  f.calls = 0;
  return f;
}
