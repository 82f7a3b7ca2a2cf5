import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { groupLists, renderSchema } from '../lib/render-schema.mjs';

const require = createRequire(import.meta.url);
const { parse } = require('graphql');
const SCHEMA = readFileSync(new URL('../../../infra/schema.graphql', import.meta.url), 'utf8');

test('when download groups are empty then they are the two reviewer groups', () => {
  const lists = groupLists({ ig: 'IG', rit: 'RIT', download: '' });
  assert.deepEqual(lists, { ReviewerGroups: ['IG', 'RIT'], DownloadGroups: ['IG', 'RIT'], ApiGroups: ['IG', 'RIT'] });
});

test('when a download-only group is configured then the API groups include it once', () => {
  const lists = groupLists({ ig: 'IG', rit: 'RIT', download: 'IG, Custodian,Custodian' });
  assert.deepEqual(lists.DownloadGroups, ['IG', 'Custodian']);
  assert.deepEqual(lists.ApiGroups, ['IG', 'RIT', 'Custodian']);
});

test('when the repository schema is rendered then it parses and names the configured groups', () => {
  const text = renderSchema(SCHEMA, { ig: 'ig-reviewers', rit: 'rit-reviewers', download: '' });
  assert.doesNotMatch(text, /\$\{/);
  assert.match(text, /updateRequest\(request: UpdateRequestInput!\): String\s+@aws_auth\(cognito_groups: \["ig-reviewers", "rit-reviewers"\]\)/);
  const doc = parse(text);
  const request = doc.definitions.find((d) => d.name?.value === 'Request');
  assert.equal(request.fields.length, 29, 'the web app selects 29 fields');
});

test('when a placeholder is unknown or a group name is unsafe then rendering fails', () => {
  assert.throws(() => renderSchema('x: [${Admins}]', { ig: 'a', rit: 'b' }), /unknown placeholder/);
  assert.throws(() => renderSchema('[${ReviewerGroups}]', { ig: 'a"]) @aws_api_key #', rit: 'b' }), /not a valid group name/);
});
