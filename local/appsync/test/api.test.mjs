// The front door, the simulator, infra/schema.graphql and infra/resolvers/ together, with a
// stand-in for api-handler that records what the resolver templates send it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';

import { createSimulator, frontDoor } from '../server.mjs';
import { renderSchema } from '../lib/render-schema.mjs';
import { Jwks } from '../lib/jwt.mjs';
import { LambdaError } from '../lib/lambda.mjs';
import { CLIENT, ISSUER, claims, fakeFetch, jwksOf, keyPair, signToken } from './helpers.mjs';

const ROOT = new URL('../../../', import.meta.url);
const pool = keyPair('pool-key');
const calls = [];
let answer = async () => null;
let server;
let url;

const LIST = `query ListRequests { listRequests { egress_request_id task_token download_count } }`;
const UPDATE = `mutation UpdateRequest($request: UpdateRequestInput!) { updateRequest(request: $request) }`;
const DOWNLOAD = `mutation DownloadData($request: DownloadDataInput!) { downloadData(request: $request) { presign_url } }`;

before(async () => {
  const schemaText = renderSchema(readFileSync(new URL('infra/schema.graphql', ROOT), 'utf8'), {
    ig: 'ig-reviewers',
    rit: 'rit-reviewers',
    download: 'ig-reviewers',
  });
  const simulator = createSimulator({
    schemaText,
    resolversDir: new URL('infra/resolvers', ROOT).pathname,
    invoke: async (payload) => {
      calls.push(payload);
      return answer(payload);
    },
  });
  const jwks = new Jwks('http://jwks', fakeFetch(jwksOf(pool)));
  await jwks.load();
  server = http.createServer(frontDoor({ simulator, auth: { jwks, issuer: ISSUER, clientId: CLIENT } }));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${server.address().port}/graphql`;
});

after(() => server.close());

async function post(token, query, variables, operationName) {
  calls.length = 0;
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: token } : {}) },
    body: JSON.stringify({ query, variables, operationName }),
  });
  return { status: res.status, body: await res.json() };
}

const token = (overrides) => signToken(pool, claims(overrides));

test('when a reviewer lists then the Lambda gets the field, the verified identity and no token', async () => {
  answer = async () => [{ egress_request_id: 'r1', task_token: 'h1', download_count: '0' }];
  const { status, body } = await post(token(), LIST);
  assert.equal(status, 200);
  assert.deepEqual(body.data.listRequests, [{ egress_request_id: 'r1', task_token: 'h1', download_count: '0' }]);
  assert.equal(calls.length, 1);
  const payload = calls[0];
  assert.equal(payload.field, 'listRequests');
  assert.deepEqual(payload.identity, {
    sub: claims().sub,
    username: claims().username,
    email: null,
    name: null,
    groups: ['ig-reviewers'],
    issuer: ISSUER,
  });
  assert.doesNotMatch(JSON.stringify(payload), /eyJ/, 'no JWT in the payload');
});

test('when a page of selected fields is asked then the Lambda gets the selection and the arguments', async () => {
  answer = async () => [{ egress_request_id: 'r2', egress_status: 'PROCESSING' }];
  const query = 'query Page($limit: Int, $next: String) { listRequests(limit: $limit, nextToken: $next) { egress_request_id egress_status } }';
  const { status, body } = await post(token(), query, { limit: 50, next: 'r1' }, 'Page');
  assert.equal(status, 200);
  assert.deepEqual(body.data.listRequests, [{ egress_request_id: 'r2', egress_status: 'PROCESSING' }]);
  assert.deepEqual(calls[0].selection, ['egress_request_id', 'egress_status']);
  assert.deepEqual(calls[0].arguments, { limit: 50, nextToken: 'r1' });
});

test('when an ID token is used then cognito:username and the e-mail claim are passed', async () => {
  answer = async () => [];
  const id = token({ token_use: 'id', aud: CLIENT, client_id: undefined, username: undefined, 'cognito:username': 'u-1', email: 'iris@example.org' });
  await post(id, LIST);
  assert.equal(calls[0].identity.username, 'u-1');
  assert.equal(calls[0].identity.email, 'iris@example.org');
});

test('when the web app sends a decision then its arguments reach the Lambda unchanged', async () => {
  answer = async () => 'Request updated successfully';
  const request = {
    egress_request_id: 'r1',
    task_token: 'h1',
    ig_reviewer_1_decision: 'APPROVED',
    ig_reviewer_1_reason: 'Aggregates only, fine.',
    ig_reviewer_1_email: 'forged@example.org',
    ig_reviewer_1_name: 'forged@example.org',
    ig_reviewer_1_dt: new Date(0).toUTCString(),
  };
  const { body } = await post(token(), UPDATE, { request }, 'UpdateRequest');
  assert.equal(body.data.updateRequest, 'Request updated successfully');
  assert.deepEqual(calls[0].arguments, { request });
  assert.equal(calls[0].field, 'updateRequest');
});

test('when api-handler fails then the client sees its message as AppSync reports it', async () => {
  answer = async () => {
    throw new LambdaError('Another user may have updated this request. Please refresh to get the latest data');
  };
  const { body } = await post(token(), UPDATE, { request: { egress_request_id: 'r1', task_token: 'old' } });
  assert.equal(body.data.updateRequest, null);
  assert.equal(body.errors[0].message, 'Another user may have updated this request. Please refresh to get the latest data');
  assert.equal(body.errors[0].errorType, 'Lambda:Unhandled');
});

test('when the caller is in no allowed group then @aws_auth refuses before the Lambda runs', async () => {
  answer = async () => [];
  for (const groups of [undefined, ['researchers'], ['IG-REVIEWERS']]) {
    const { body } = await post(token({ 'cognito:groups': groups }), LIST);
    assert.equal(body.data.listRequests, null, JSON.stringify(groups));
    assert.equal(body.errors[0].errorType, 'Unauthorized');
    assert.equal(calls.length, 0);
  }
  // downloadData is restricted to the download groups (here: IG only).
  const { body } = await post(token({ 'cognito:groups': ['rit-reviewers'] }), DOWNLOAD, {
    request: { egress_request_id: 'r1', workspace_id: 'w', download_count: '0' },
  });
  assert.equal(body.errors[0].errorType, 'Unauthorized');
  assert.equal(calls.length, 0);
});

test('when the token is missing, forged or expired then the request is refused with 401', async () => {
  const now = Math.floor(Date.now() / 1000);
  for (const [bad, message] of [
    [undefined, 'Valid authorization header not provided.'],
    [signToken(keyPair('pool-key'), claims()), 'Valid authorization header not provided.'],
    [token({ exp: now - 1, iat: now - 3601 }), 'Token has expired.'],
  ]) {
    const { status, body } = await post(bad, LIST);
    assert.equal(status, 401);
    assert.deepEqual(body.errors, [{ errorType: 'UnauthorizedException', message }]);
    assert.equal(calls.length, 0);
  }
});

test('when the web app echoes download_count as a number then GraphQL refuses it, as AppSync does', async () => {
  answer = async () => ({ presign_url: 'https://example/x' });
  const numeric = await post(token(), DOWNLOAD, { request: { egress_request_id: 'r1', workspace_id: 'w', download_count: 0 } });
  assert.match(numeric.body.errors[0].message, /download_count/);
  assert.equal(calls.length, 0);
  const text = await post(token(), DOWNLOAD, { request: { egress_request_id: 'r1', workspace_id: 'w', download_count: '0' } });
  assert.equal(text.body.data.downloadData.presign_url, 'https://example/x');
});

test('when a client introspects the schema then it is refused, as the deployed API does', async () => {
  const { status, body } = await post(token(), '{ __schema { types { name } } }');
  assert.equal(status, 400);
  assert.match(body.errors[0].message, /introspection/i);
});
