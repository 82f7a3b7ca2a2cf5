// Renders the group placeholders of infra/schema.graphql (docs/contracts.md, "GraphQL schema
// placeholders") exactly as `make deploy` does, so the local API enforces the same
// @aws_auth groups as the deployed one, from the same three settings.

const PLACEHOLDER = /\$\{([A-Za-z0-9_]+)\}/g;
// The reviewer-group rule, one for the template, the functions, the deploy gate and this file
// (all tested against infra/fixtures/group-lists.json): a letter, then up to 63 letters, digits,
// '_' or '-'; at most 10 download groups.
const GROUP = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const MAX_DOWNLOAD_GROUPS = 10;
// AdminGroupName's default (the template's, the functions' and the fixture's).
export const DEFAULT_ADMIN_GROUP = 'EgressAdmin';

function checkGroup(name, source) {
  if (typeof name !== 'string' || !GROUP.test(name)) {
    throw new Error(
      `${source} has an invalid group name ${JSON.stringify(name)}: a letter, then up to 63 letters, digits, '_' or '-'`,
    );
  }
  return name;
}

/** The group lists: reviewer groups, download groups (default: the reviewer groups), every
 * group with access to the API without duplicates, and the admin group (revokeRelease). */
export function groupLists({ ig, rit, download, admin = DEFAULT_ADMIN_GROUP }) {
  const reviewer = [checkGroup(ig, 'IG_REVIEWER_GROUP'), checkGroup(rit, 'RIT_REVIEWER_GROUP')];
  if (reviewer[0] === reviewer[1]) {
    throw new Error(
      `RIT_REVIEWER_GROUP must differ from IG_REVIEWER_GROUP (both are ${JSON.stringify(ig)}): one group cannot hold both approval stages`,
    );
  }
  let downloadGroups = reviewer;
  if ((download ?? '') !== '') {
    const listed = download.split(',').map((g) => checkGroup(g, 'DOWNLOAD_GROUPS'));
    if (listed.length > MAX_DOWNLOAD_GROUPS) {
      throw new Error(`DOWNLOAD_GROUPS lists more than ${MAX_DOWNLOAD_GROUPS} groups`);
    }
    downloadGroups = [...new Set(listed)];
  }
  const api = [...new Set([...reviewer, ...downloadGroups])];
  const adminGroup = checkGroup(admin, 'ADMIN_GROUP');
  if (reviewer.includes(adminGroup)) {
    throw new Error(
      `ADMIN_GROUP must differ from the reviewer groups (it is ${JSON.stringify(admin)}): revoking a release is not a review stage's power`,
    );
  }
  return { ReviewerGroups: reviewer, DownloadGroups: downloadGroups, ApiGroups: api, AdminGroups: [adminGroup] };
}

/** The schema with each placeholder replaced by its quoted group list; any other
 * placeholder is an error (as in the deploy gate). */
export function renderSchema(text, groups) {
  const lists = groupLists(groups);
  return text.replace(PLACEHOLDER, (whole, name) => {
    if (!(name in lists)) {
      throw new Error(`infra/schema.graphql: unknown placeholder ${whole}`);
    }
    return lists[name].map((g) => JSON.stringify(g)).join(', ');
  });
}
