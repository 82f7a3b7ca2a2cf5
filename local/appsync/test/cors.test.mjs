// CORS on the front door, as AppSync answers it: a browser copy of the web app served from
// another origin must get its preflight answered and be able to read every answer, a 401
// included (Amplify reads the error body to decide to refresh the session).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';

import { createSimulator, frontDoor } from '../server.mjs';
import { renderSchema } from '../lib/render-schema.mjs';
import { Jwks } from '../lib/jwt.mjs';
import { CLIENT, ISSUER, claims, fakeFetch, jwksOf, keyPair, signToken } from './helpers.mjs';

const ROOT = new URL('../../../', import.meta.url);
const ORIGIN = 'http://localhost:3000';
const LIST = `query ListRequests { listRequests { egress_request_id } }`;
const pool = keyPair('pool-key');
let server;
let base;

before(async () => {
  const schemaText = renderSchema(readFileSync(new URL('infra/schema.graphql', ROOT), 'utf8'), {
    ig: 'ig-reviewers',
    rit: 'rit-reviewers',
    download: 'ig-reviewers',
  });
  const simulator = createSimulator({
    schemaText,
    resolversDir: new URL('infra/resolvers', ROOT).pathname,
    invoke: async () => [],
  });
  const jwks = new Jwks('http://jwks', fakeFetch(jwksOf(pool)));
  await jwks.load();
  server = http.createServer(frontDoor({ simulator, auth: { jwks, issuer: ISSUER, clientId: CLIENT } }));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

/** What every answer must carry for the browser to hand it to the page. */
function assertReadableCrossOrigin(res) {
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  const exposed = (res.headers.get('access-control-expose-headers') ?? '').toLowerCase().split(',');
  assert.ok(exposed.includes('x-amzn-errortype'), `exposes x-amzn-ErrorType: ${exposed}`);
}

test('when a browser sends the preflight of the web app then it is answered 200 with the methods and headers AppSync allows', async () => {
  // What a browser sends before Amplify's POST: its headers, lower-cased and sorted.
  const res = await fetch(`${base}/graphql`, {
    method: 'OPTIONS',
    headers: {
      origin: ORIGIN,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type,x-amz-user-agent',
    },
  });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '');
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  const methods = res.headers.get('access-control-allow-methods').split(',');
  assert.ok(methods.includes('POST') && methods.includes('OPTIONS'), `methods: ${methods}`);
  const allowed = res.headers.get('access-control-allow-headers').toLowerCase().split(',');
  for (const h of ['content-type', 'authorization', 'x-amz-date', 'x-amz-user-agent', 'x-api-key', 'x-amz-security-token']) {
    assert.ok(allowed.includes(h), `allows ${h}: ${allowed}`);
  }
  assert.ok(Number(res.headers.get('access-control-max-age')) > 0);
});

test('when the browser posts a query then the answer carries the CORS headers', async () => {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { origin: ORIGIN, 'content-type': 'application/json', authorization: signToken(pool, claims()) },
    body: JSON.stringify({ query: LIST }),
  });
  assert.equal(res.status, 200);
  assertReadableCrossOrigin(res);
  assert.deepEqual((await res.json()).data, { listRequests: [] });
});

test('when the token front door refuses with 401 then the browser can still read the refusal', async () => {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { origin: ORIGIN, 'content-type': 'application/json', authorization: 'not-a-token' },
    body: JSON.stringify({ query: LIST }),
  });
  assert.equal(res.status, 401);
  assertReadableCrossOrigin(res);
  assert.equal(res.headers.get('x-amzn-errortype'), 'UnauthorizedException');
  assert.equal((await res.json()).errors[0].errorType, 'UnauthorizedException');
});

test('when a request is malformed or uses another method then the error is readable cross-origin too', async () => {
  const token = signToken(pool, claims());
  const bad = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { origin: ORIGIN, 'content-type': 'application/json', authorization: token },
    body: '{not json',
  });
  assert.equal(bad.status, 400);
  assertReadableCrossOrigin(bad);
  const put = await fetch(`${base}/graphql`, { method: 'PUT', headers: { origin: ORIGIN } });
  assert.equal(put.status, 405);
  assertReadableCrossOrigin(put);
  assert.match(put.headers.get('allow'), /POST/);
});
