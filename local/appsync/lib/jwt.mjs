// Verification of Cognito user pool tokens, as AppSync does before any resolver runs: RS256
// signature against the pool's JWKS, `exp` (and `nbf`/`iat` when present), `iss` (the pool),
// `token_use` (`id` or `access`), and the app client (`aud` of ID tokens, `client_id` of
// access tokens: the TREEHOOSE web app sends access tokens).
//
// The AppSync simulator decodes tokens without checking them; nothing reaches it unless this
// module accepted the token.

import { createPublicKey, verify } from 'node:crypto';

/** A token refused; `reason` is for the log only (AppSync tells the client little). */
export class TokenError extends Error {
  constructor(publicMessage, reason) {
    super(publicMessage);
    this.reason = reason;
  }
}

const INVALID = 'Valid authorization header not provided.';
const EXPIRED = 'Token has expired.';

function decodePart(part, what) {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new TokenError(INVALID, `the ${what} is not base64url JSON`);
  }
}

/** Keys of one user pool, fetched from its JWKS URL; refetched (at most every 30 s) when a
 * token names an unknown key id, as after a key rotation. */
export class Jwks {
  constructor(url, fetchImpl = fetch) {
    this.url = url;
    this.fetch = fetchImpl;
    this.keys = new Map();
    this.fetchedAt = 0;
  }

  async load() {
    const res = await this.fetch(this.url);
    if (!res.ok) {
      throw new Error(`JWKS ${this.url}: HTTP ${res.status}`);
    }
    const body = await res.json();
    const keys = new Map();
    for (const jwk of body.keys ?? []) {
      if (jwk.kty === 'RSA' && typeof jwk.kid === 'string') {
        keys.set(jwk.kid, createPublicKey({ key: jwk, format: 'jwk' }));
      }
    }
    if (keys.size === 0) {
      throw new Error(`JWKS ${this.url}: no RSA key`);
    }
    this.keys = keys;
    this.fetchedAt = Date.now();
  }

  async key(kid) {
    if (!this.keys.has(kid) && Date.now() - this.fetchedAt > 30_000) {
      await this.load();
    }
    return this.keys.get(kid);
  }
}

/**
 * Verifies `token` for the pool `issuer` and app client `clientId`; returns its claims.
 * `now` is in seconds (a parameter so tests can move it).
 */
export async function verifyToken(token, { jwks, issuer, clientId, now = Math.floor(Date.now() / 1000) }) {
  if (typeof token !== 'string' || token.length === 0) {
    throw new TokenError(INVALID, 'no token');
  }
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw new TokenError(INVALID, 'not a JWS compact token');
  }
  const header = decodePart(parts[0], 'header');
  // Only RS256, as Cognito signs: `none`, HS256 with the public key as secret, etc. are refused.
  if (header.alg !== 'RS256') {
    throw new TokenError(INVALID, `algorithm ${JSON.stringify(header.alg)} is not RS256`);
  }
  const key = await jwks.key(header.kid);
  if (!key) {
    throw new TokenError(INVALID, `unknown key id ${JSON.stringify(header.kid)}`);
  }
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`, 'ascii');
  const signature = Buffer.from(parts[2], 'base64url');
  if (!verify('RSA-SHA256', signed, key, signature)) {
    throw new TokenError(INVALID, 'bad signature');
  }
  const claims = decodePart(parts[1], 'payload');
  if (typeof claims.exp !== 'number') {
    throw new TokenError(INVALID, 'no exp');
  }
  if (now >= claims.exp) {
    throw new TokenError(EXPIRED, `expired at ${claims.exp}, now ${now}`);
  }
  if (typeof claims.nbf === 'number' && now < claims.nbf) {
    throw new TokenError(INVALID, 'not valid yet (nbf)');
  }
  if (typeof claims.iat === 'number' && claims.iat > now + 60) {
    throw new TokenError(INVALID, 'issued in the future (iat)');
  }
  if (claims.iss !== issuer) {
    throw new TokenError(INVALID, `issuer ${JSON.stringify(claims.iss)} is not the user pool`);
  }
  if (claims.token_use === 'id') {
    if (claims.aud !== clientId) {
      throw new TokenError(INVALID, `ID token for another client (aud ${JSON.stringify(claims.aud)})`);
    }
  } else if (claims.token_use === 'access') {
    if (claims.client_id !== clientId) {
      throw new TokenError(INVALID, `access token for another client (client_id ${JSON.stringify(claims.client_id)})`);
    }
  } else {
    throw new TokenError(INVALID, `token_use ${JSON.stringify(claims.token_use)} is neither id nor access`);
  }
  if (typeof claims.sub !== 'string' || claims.sub.length === 0) {
    throw new TokenError(INVALID, 'no sub');
  }
  return claims;
}

/** The token of an `Authorization` header: raw (as Amplify sends it) or `Bearer <token>`. */
export function bearer(header) {
  if (typeof header !== 'string') {
    return '';
  }
  const value = header.trim();
  return value.toLowerCase().startsWith('bearer ') ? value.slice(7).trim() : value;
}
