// Renders the group placeholders of infra/schema.graphql (docs/contracts.md, "GraphQL schema
// placeholders") exactly as `make deploy` does, so the local API enforces the same
// @aws_auth groups as the deployed one, from the same three settings.

const PLACEHOLDER = /\$\{([A-Za-z0-9_]+)\}/g;
const GROUP = /^[^\s",\\\]\[]{1,128}$/;

function checkGroup(name, source) {
  if (!GROUP.test(name)) {
    throw new Error(`${source}: ${JSON.stringify(name)} is not a valid group name`);
  }
  return name;
}

/** The three group lists: reviewer groups, download groups (default: the reviewer groups),
 * and every group with access to the API, without duplicates. */
export function groupLists({ ig, rit, download }) {
  const reviewer = [checkGroup(ig, 'IG_REVIEWER_GROUP'), checkGroup(rit, 'RIT_REVIEWER_GROUP')];
  const listed = (download ?? '')
    .split(',')
    .map((g) => g.trim())
    .filter((g) => g.length > 0)
    .map((g) => checkGroup(g, 'DOWNLOAD_GROUPS'));
  const downloadGroups = listed.length > 0 ? [...new Set(listed)] : reviewer;
  const api = [...new Set([...reviewer, ...downloadGroups])];
  return { ReviewerGroups: reviewer, DownloadGroups: downloadGroups, ApiGroups: api };
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
