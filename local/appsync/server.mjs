// The local reviewer API: the AppSync simulator serving infra/schema.graphql with the VTL
// templates of infra/resolvers/ and a Lambda data source that invokes api-handler through the
// local stack's edge router, behind a front door that verifies Cognito tokens from moto (see
// lib/jwt.mjs). One port, bound to 127.0.0.1; the simulator itself never listens, so no
// request reaches it without a verified token.
//
// Configuration (environment; see README.md):
//   APPSYNC_PORT            port of the GraphQL endpoint (http://127.0.0.1:<port>/graphql)
//   APPSYNC_HOST            bind address (default 127.0.0.1)
//   COGNITO_USER_POOL_ID    the reviewer pool (its region is the id's prefix)
//   COGNITO_CLIENT_ID       the web app's client (ID tokens: aud; access tokens: client_id)
//   COGNITO_ENDPOINT        where the pool's JWKS is served (moto, or the edge router)
//   LAMBDA_ENDPOINT         the edge router (Lambda Invoke API)
//   API_HANDLER_FUNCTION    default api-handler
//   IG_REVIEWER_GROUP, RIT_REVIEWER_GROUP, DOWNLOAD_GROUPS, ADMIN_GROUP   as for api-handler
//   SCHEMA_FILE, RESOLVERS_DIR   default infra/schema.graphql, infra/resolvers/

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { renderSchema } from './lib/render-schema.mjs';
import { Jwks, TokenError, bearer, verifyToken } from './lib/jwt.mjs';
import { lambdaInvoker } from './lib/lambda.mjs';

const require = createRequire(import.meta.url);
const { AmplifyAppSyncSimulator } = require('@aws-amplify/amplify-appsync-simulator');
const { runQueryOrMutation } = require('@aws-amplify/amplify-appsync-simulator/lib/utils/graphql-runner/query-and-mutation');
const { getOperationType } = require('@aws-amplify/amplify-appsync-simulator/lib/utils/graphql-runner/helpers');
const { parse, validate, NoSchemaIntrospectionCustomRule } = require('graphql');

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAX_BODY_BYTES = 1024 * 1024;
const COGNITO = 'AMAZON_COGNITO_USER_POOLS';

function env(name, fallback) {
  const value = process.env[name]?.trim();
  if (value) {
    return value;
  }
  if (fallback !== undefined) {
    return fallback;
  }
  throw new Error(`environment variable ${name} is required`);
}

function log(fields) {
  console.log(JSON.stringify({ time: new Date().toISOString(), ...fields }));
}

/** One resolver per Query and Mutation field of the schema, all with the one VTL pair
 * `invoke.request.vtl` / `invoke.response.vtl`, as infra/template.yaml deploys them. */
export function loadResolvers(dir, schemaText) {
  const mappingTemplates = ['invoke.request.vtl', 'invoke.response.vtl'].map((f) => ({
    path: f,
    content: readFileSync(path.join(dir, f), 'utf8'),
  }));
  const resolvers = parse(schemaText)
    .definitions.filter((d) => d.kind === 'ObjectTypeDefinition' && ['Query', 'Mutation'].includes(d.name.value))
    .flatMap((d) =>
      d.fields.map((field) => ({
        kind: 'UNIT',
        typeName: d.name.value,
        fieldName: field.name.value,
        dataSourceName: 'ApiHandler',
        requestMappingTemplateLocation: 'invoke.request.vtl',
        responseMappingTemplateLocation: 'invoke.response.vtl',
      })),
    );
  return { resolvers, mappingTemplates };
}

/** The simulator, configured like the deployed API (Cognito user pools, default ALLOW). */
export function createSimulator({ schemaText, resolversDir, invoke }) {
  const simulator = new AmplifyAppSyncSimulator({ port: 0, wsPort: 0 });
  const { resolvers, mappingTemplates } = loadResolvers(resolversDir, schemaText);
  simulator.init({
    schema: { content: schemaText, path: 'schema.graphql' },
    resolvers,
    mappingTemplates,
    dataSources: [{ type: 'AWS_LAMBDA', name: 'ApiHandler', invoke }],
    appSync: {
      name: 'egress-local-reviewer-api',
      defaultAuthenticationType: { authenticationType: COGNITO, cognitoUserPoolConfig: {} },
      additionalAuthenticationProviders: [],
    },
  });
  return simulator;
}

// CORS as the deployed AppSync endpoint answers it: any origin (the API authenticates with the
// Authorization header, never with cookies, so no credentials mode is offered), a preflight
// answered 200 without a token, and every answer, errors included, readable by the page.
/** Methods a preflight may ask for (AppSync serves GraphQL over POST). */
export const CORS_ALLOW_METHODS = ['POST', 'OPTIONS'];
/** Request headers the web app's clients (Amplify, the AppSync SDK) send. */
export const CORS_ALLOW_HEADERS = [
  'Content-Type',
  'Authorization',
  'X-Amz-Date',
  'X-Amz-User-Agent',
  'X-Api-Key',
  'X-Amz-Security-Token',
  'X-Amz-Content-Sha256',
];
/** Response headers AppSync exposes to the page. */
const CORS_EXPOSE_HEADERS = ['x-amzn-RequestId', 'x-amzn-ErrorType', 'x-amz-user-agent', 'x-amzn-ErrorMessage', 'Date', 'x-amz-schema-version'];
/** What AppSync answers: browsers cap it lower (Chrome: 2 h), which is fine. */
const CORS_MAX_AGE_SECONDS = 172800;

const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': CORS_EXPOSE_HEADERS.join(','),
};

function preflight(res) {
  res.writeHead(200, {
    ...CORS_HEADERS,
    'access-control-allow-methods': CORS_ALLOW_METHODS.join(','),
    'access-control-allow-headers': CORS_ALLOW_HEADERS.join(','),
    'access-control-max-age': String(CORS_MAX_AGE_SECONDS),
    'content-length': 0,
  });
  res.end();
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  const errorType = body?.errors?.[0]?.errorType;
  res.writeHead(status, {
    ...CORS_HEADERS,
    ...(status >= 400 && errorType ? { 'x-amzn-errortype': errorType } : {}),
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function unauthorized(res, message) {
  send(res, 401, { errors: [{ errorType: 'UnauthorizedException', message }] });
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new Error('request body too large');
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The front door's request handler. */
export function frontDoor({ simulator, auth }) {
  return async (req, res) => {
    const started = Date.now();
    const url = new URL(req.url, 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/health') {
      return send(res, 200, { status: 'ok' });
    }
    if (url.pathname !== '/graphql') {
      return send(res, 404, { errors: [{ message: 'not found' }] });
    }
    if (req.method === 'OPTIONS') {
      // A CORS preflight carries no token: it is answered before the token check.
      return preflight(res);
    }
    if (req.method !== 'POST') {
      return send(res, 405, { errors: [{ message: 'use POST' }] }, { allow: CORS_ALLOW_METHODS.join(', ') });
    }
    let claims;
    try {
      claims = await verifyToken(bearer(req.headers.authorization), auth);
    } catch (e) {
      if (!(e instanceof TokenError)) {
        log({ level: 'error', msg: 'token verification failed', error: e.message });
        return send(res, 503, { errors: [{ errorType: 'ServiceUnavailable', message: 'token verification is unavailable' }] });
      }
      log({ level: 'warn', msg: 'request refused: token not valid', reason: e.reason, status: 401 });
      return unauthorized(res, e.message);
    }
    let body;
    try {
      body = JSON.parse(await readBody(req));
    } catch (e) {
      return send(res, 400, { errors: [{ errorType: 'BadRequestException', message: `invalid request: ${e.message}` }] });
    }
    const { query, variables = {}, operationName } = body ?? {};
    let doc;
    try {
      doc = parse(String(query ?? ''));
    } catch (e) {
      return send(res, 400, { errors: [{ errorType: 'MalformedHttpRequestException', message: e.message }] });
    }
    // The deployed API has introspection disabled.
    const introspection = validate(simulator.schema, doc, [NoSchemaIntrospectionCustomRule]);
    if (introspection.length > 0) {
      return send(res, 400, { errors: introspection.map((e) => ({ errorType: 'ValidationError', message: e.message })) });
    }
    const kind = getOperationType(doc, operationName);
    if (kind !== 'query' && kind !== 'mutation') {
      return send(res, 400, { errors: [{ errorType: 'BadRequestException', message: 'only queries and mutations are served' }] });
    }
    // The verified claims are the identity; the token itself goes no further.
    const { authorization, ...headers } = req.headers;
    const context = {
      jwt: claims,
      requestAuthorizationMode: COGNITO,
      sourceIp: req.socket.remoteAddress,
      headers,
      appsyncErrors: [],
    };
    const result = await runQueryOrMutation(simulator.schema, doc, variables, operationName, context);
    log({
      level: 'info',
      msg: 'graphql',
      operation: operationName ?? kind,
      username: claims['cognito:username'] ?? claims.username,
      token_use: claims.token_use,
      errors: (result.errors ?? []).length,
      ms: Date.now() - started,
    });
    return send(res, 200, result);
  };
}

async function main() {
  const poolId = env('COGNITO_USER_POOL_ID');
  const region = poolId.split('_')[0];
  const cognitoEndpoint = env('COGNITO_ENDPOINT').replace(/\/$/, '');
  const auth = {
    jwks: new Jwks(`${cognitoEndpoint}/${poolId}/.well-known/jwks.json`),
    issuer: `https://cognito-idp.${region}.amazonaws.com/${poolId}`,
    clientId: env('COGNITO_CLIENT_ID'),
  };
  await auth.jwks.load();
  const schemaText = renderSchema(readFileSync(env('SCHEMA_FILE', path.join(ROOT, 'infra', 'schema.graphql')), 'utf8'), {
    ig: env('IG_REVIEWER_GROUP'),
    rit: env('RIT_REVIEWER_GROUP'),
    download: env('DOWNLOAD_GROUPS', ''),
    admin: env('ADMIN_GROUP', 'EgressAdmin'),
  });
  const simulator = createSimulator({
    schemaText,
    resolversDir: env('RESOLVERS_DIR', path.join(ROOT, 'infra', 'resolvers')),
    invoke: lambdaInvoker({ endpoint: env('LAMBDA_ENDPOINT'), functionName: env('API_HANDLER_FUNCTION', 'api-handler') }),
  });
  const host = env('APPSYNC_HOST', '127.0.0.1');
  const port = Number(env('APPSYNC_PORT'));
  const server = http.createServer(frontDoor({ simulator, auth }));
  server.listen(port, host, () => log({ level: 'info', msg: `reviewer API listening on http://${host}:${port}/graphql` }));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`reviewer API cannot start: ${e.message}`);
    process.exit(1);
  });
}
