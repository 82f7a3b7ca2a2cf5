import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Jwks, TokenError, bearer, verifyToken } from '../lib/jwt.mjs';
import { CLIENT, ISSUER, b64, claims, fakeFetch, jwksOf, keyPair, signToken } from './helpers.mjs';

const pool = keyPair('pool-key');
const attacker = keyPair('pool-key'); // same kid, another key

async function verify(token, now) {
  const jwks = new Jwks('http://jwks', fakeFetch(jwksOf(pool)));
  await jwks.load();
  return verifyToken(token, { jwks, issuer: ISSUER, clientId: CLIENT, ...(now ? { now } : {}) });
}

async function refused(token, expected, now) {
  await assert.rejects(verify(token, now), (e) => {
    assert.ok(e instanceof TokenError, e);
    assert.match(e.reason, expected);
    return true;
  });
}

test('when an access or ID token of the pool is valid then its claims are returned', async () => {
  assert.equal((await verify(signToken(pool, claims()))).token_use, 'access');
  const id = claims({ token_use: 'id', aud: CLIENT, client_id: undefined, 'cognito:username': 'u', email: 'a@b.org' });
  assert.equal((await verify(signToken(pool, id))).email, 'a@b.org');
});

test('when the signature is forged or the payload tampered then the token is refused', async () => {
  await refused(signToken(attacker, claims()), /bad signature/);
  const [h, , s] = signToken(pool, claims()).split('.');
  await refused(`${h}.${b64(claims({ 'cognito:groups': ['rit-reviewers', 'ig-reviewers'] }))}.${s}`, /bad signature/);
});

test('when the algorithm is none or HS256 then the token is refused before any key is used', async () => {
  await refused(`${b64({ alg: 'none', kid: 'pool-key' })}.${b64(claims())}.`, /not RS256/);
  await refused(signToken(pool, claims(), { alg: 'HS256' }), /not RS256/);
});

test('when the token has expired then it is refused with AppSync\'s message', async () => {
  const now = Math.floor(Date.now() / 1000);
  await assert.rejects(verify(signToken(pool, claims({ iat: now - 7200, exp: now - 3600 }))), {
    message: 'Token has expired.',
  });
  await refused(signToken(pool, claims({ exp: now + 10 })), /expired/, now + 10);
  await refused(signToken(pool, claims({ exp: undefined })), /no exp/);
});

test('when the issuer, audience, client or token use is wrong then the token is refused', async () => {
  await refused(signToken(pool, claims({ iss: 'https://cognito-idp.eu-west-2.amazonaws.com/eu-west-2_Other' })), /issuer/);
  await refused(signToken(pool, claims({ client_id: 'another-client' })), /another client/);
  await refused(signToken(pool, claims({ token_use: 'id', aud: 'another-client' })), /another client/);
  await refused(signToken(pool, claims({ token_use: 'refresh' })), /neither id nor access/);
  await refused(signToken(pool, claims({ nbf: Math.floor(Date.now() / 1000) + 600 })), /nbf/);
  await refused(signToken(pool, claims({ sub: '' })), /no sub/);
});

test('when the token is missing or malformed then it is refused', async () => {
  await refused('', /no token/);
  await refused('abc.def', /compact/);
  await refused('!!!.e30.x', /header/);
  await refused(signToken(pool, claims(), { kid: 'other' }), /unknown key id/);
});

test('when the header has a Bearer prefix then the token is taken after it', () => {
  assert.equal(bearer('Bearer abc'), 'abc');
  assert.equal(bearer('abc'), 'abc');
  assert.equal(bearer(undefined), '');
});

test('when a token names an unknown key then the JWKS is fetched again, at most every 30 s', async () => {
  const f = fakeFetch(jwksOf(pool));
  const jwks = new Jwks('http://jwks', f);
  await jwks.load();
  jwks.fetchedAt = 0;
  assert.equal(await jwks.key('missing'), undefined);
  assert.equal(f.calls, 2);
  assert.equal(await jwks.key('missing'), undefined);
  assert.equal(f.calls, 2, 'no refetch within 30 s');
});
