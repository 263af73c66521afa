// The dashboard's tabs (issue 13): which node states each shows, and one page of a tab, read through
// the same paged search as GET /api/v1/nodes (EnrollmentService.listNodes), with the same opaque
// cursors, so a page link stays right while nodes arrive. Transport free: the route parses the
// query, this reads, the views render.
import { encodeNodeCursor, type EnrollmentService, type NodeState, type NodeView, type StateCounts } from '../enrollment/service.js';

export const DASHBOARD_TABS = ['waiting', 'registered', 'approved', 'denied'] as const;
export type DashboardTab = (typeof DASHBOARD_TABS)[number];

/** The node states behind each tab; "denied" is the closed ones, denied or revoked. */
const TAB_STATES: Record<DashboardTab, readonly NodeState[]> = {
  waiting: ['pending'],
  registered: ['registered'],
  approved: ['approved'],
  denied: ['denied', 'revoked'],
};

/** Nodes per page: 100 rows stay well under 300 KB of HTML (issue 13) and are a screenful to decide on. */
export const DASHBOARD_PAGE = 100;

export interface TabQuery {
  tab: DashboardTab;
  /** A search prefix, as typed ('' for none); EnrollmentService.listNodes checks it. */
  q: string;
  /** A page's nextCursor, as it came. */
  cursor?: string | undefined;
}

export interface TabPage {
  query: TabQuery;
  /** Newest first. */
  nodes: NodeView[];
  nextCursor: string | null;
  /** Per tab, for its label. */
  counts: Record<DashboardTab, number>;
}

export function tabCounts(c: StateCounts): Record<DashboardTab, number> {
  return { waiting: c.waiting, registered: c.registered, approved: c.approved, denied: c.denied + c.revoked };
}

/**
 * One page of a tab. A tab of two states reads a page of each and merges them: both are ordered by
 * the same (createdAt, id) key the cursor names, so the merged page's last node is a cursor valid
 * for both lists and no node is skipped or shown twice.
 */
export async function loadTab(enrollment: EnrollmentService, query: TabQuery, limit = DASHBOARD_PAGE): Promise<TabPage> {
  const q = query.q === '' ? undefined : query.q;
  const lists = [];
  for (const state of TAB_STATES[query.tab]) lists.push(await enrollment.listNodes({ state, q }, { limit, cursor: query.cursor }));
  const all = lists.flatMap((l) => l.nodes).sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const nodes = all.slice(0, limit);
  const more = all.length > limit || lists.some((l) => l.nextCursor !== null);
  const last = nodes[nodes.length - 1];
  const counts = tabCounts(await enrollment.stateCounts());
  return { query, nodes, nextCursor: more && last ? encodeNodeCursor(last) : null, counts };
}
