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
  assert.deepEqual(lists, {
    ReviewerGroups: ['IG', 'RIT'],
    DownloadGroups: ['IG', 'RIT'],
    ApiGroups: ['IG', 'RIT'],
    AdminGroups: ['EgressAdmin'],
  });
});

test('when the shared group fixture is applied then every case gives its lists or names its setting', () => {
  const fixture = JSON.parse(readFileSync(new URL('../../../infra/fixtures/group-lists.json', import.meta.url), 'utf8'));
  assert.ok(fixture.cases.length >= 15);
  for (const c of fixture.cases) {
    // A case naming no admin group gets the default, as a deployment without AdminGroupName.
    const groups = { ig: c.ig, rit: c.rit, download: c.download, ...('admin' in c ? { admin: c.admin } : {}) };
    if (c.error) {
      assert.throws(() => groupLists(groups), (e) => e.message.startsWith(`${c.error} `), JSON.stringify(c));
    } else {
      assert.deepEqual(groupLists(groups), c.expect, JSON.stringify(c));
    }
  }
});

test('when the repository schema is rendered then it parses and names the configured groups', () => {
  const text = renderSchema(SCHEMA, { ig: 'ig-reviewers', rit: 'rit-reviewers', download: '' });
  assert.doesNotMatch(text, /\$\{/);
  assert.match(text, /updateRequest\(request: UpdateRequestInput!\): String\s+@aws_auth\(cognito_groups: \["ig-reviewers", "rit-reviewers"\]\)/);
  const doc = parse(text);
  const request = doc.definitions.find((d) => d.name?.value === 'Request');
  const names = request.fields.map((f) => f.name.value);
  assert.equal(names.length, 31, "the web app's 29 fields and the output checks' two");
  assert.ok(names.includes('checks_verdict') && names.includes('checks_summary'));
});

test('when the schema is rendered then the evidence queries name their groups and leave the web app untouched', () => {
  const text = renderSchema(SCHEMA, { ig: 'ig-reviewers', rit: 'rit-reviewers', download: 'custodians' });
  // Checks: reviewers only; the evidence and the key: every API group (download groups too)
  // and the admin group.
  assert.match(text, /requestChecks\(egress_request_id: String!\): ChecksReport\s+@aws_auth\(cognito_groups: \["ig-reviewers", "rit-reviewers"\]\)/);
  assert.match(text, /requestEvidence\(egress_request_id: String!\): Evidence\s+@aws_auth\(cognito_groups: \["ig-reviewers", "rit-reviewers", "custodians", "EgressAdmin"\]\)/);
  assert.match(text, /releaseSigningKey: String\s+@aws_auth\(cognito_groups: \["ig-reviewers", "rit-reviewers", "custodians", "EgressAdmin"\]\)/);
  const doc = parse(text);
  const type = (name) => doc.definitions.find((d) => d.name?.value === name);
  const fields = (name) => type(name).fields.map((f) => f.name.value);
  assert.deepEqual(fields('Query'), ['listRequests', 'requestChecks', 'requestEvidence', 'releaseSigningKey']);
  assert.deepEqual(fields('Mutation'), ['updateRequest', 'downloadData', 'revokeRelease']);
  assert.ok(fields('Finding').includes('sample') && !fields('Finding').includes('value'));
  assert.deepEqual(fields('AuditChain').slice(0, 2), ['valid', 'length']);
});

test('when a placeholder is unknown or a group name is unsafe then rendering fails', () => {
  assert.throws(() => renderSchema('x: [${Admins}]', { ig: 'a', rit: 'b' }), /unknown placeholder/);
  assert.throws(() => renderSchema('[${ReviewerGroups}]', { ig: 'a"]) @aws_api_key #', rit: 'b' }), /invalid group name/);
});

test('when the schema is rendered then revokeRelease is for the admin group only', () => {
  const text = renderSchema(SCHEMA, { ig: 'ig-reviewers', rit: 'rit-reviewers', download: '', admin: 'tre-admins' });
  assert.match(text, /revokeRelease\(egress_request_id: String!, reason: String!\): String\s+@aws_auth\(cognito_groups: \["tre-admins"\]\)/);
  assert.match(text, /requestEvidence\(egress_request_id: String!\): Evidence\s+@aws_auth\(cognito_groups: \["ig-reviewers", "rit-reviewers", "tre-admins"\]\)/);
  assert.throws(() => renderSchema(SCHEMA, { ig: 'a', rit: 'b', admin: 'a' }), /^Error: ADMIN_GROUP must differ/);
});
