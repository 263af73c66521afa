// Bulk decisions (issue 13): approve or deny many nodes at once, by user code or by node id, with one
// profile and an optional hostname template. Each item is decided on its own, as a single approval
// would be (its own transaction and audit event): one bad code fails only its own item. Transport
// free, so the admin API and the web dashboard call the same functions.
import { clientErrorOf, ApiError, type ApiErrorCode } from '../api-error.js';
import type { PatchSpec } from '../storage/storage.js';
import { parseHostnameTemplate, type HostnameTemplate } from './hostname-template.js';
import type { EnrollmentService, NodeView } from './service.js';

/** At most this many items per request: each is a transaction, and a request should answer in seconds. */
export const BULK_MAX_ITEMS = 1000;

/** Which nodes a bulk decision is about: the codes on their consoles, or their ids. */
export type BulkTargets = { userCodes: string[]; nodeIds?: undefined } | { nodeIds: string[]; userCodes?: undefined };

export interface BulkApproval {
  /** Without one: the node's registered profile, else the config's default profile. */
  profile?: string | undefined;
  /** e.g. `worker-{{mac_suffix}}` (server/enrollment/hostname-template.ts); without one each node gets its usual hostname. */
  hostnameTemplate?: string | undefined;
  patches?: PatchSpec[] | undefined;
}

export type BulkResult = ({ userCode: string } | { nodeId: string }) &
  ({ status: 'approved' | 'denied'; node: NodeView } | { status: 'error'; error: ApiErrorCode; description: string });

/** Checks the list up front: present, not empty, not too long, without repeats. */
function targetsOf(t: BulkTargets): { key: 'userCode' | 'nodeId'; items: string[] } {
  const [key, items] = t.userCodes !== undefined ? (['userCode', t.userCodes] as const) : (['nodeId', t.nodeIds] as const);
  const field = key === 'userCode' ? 'user_codes' : 'node_ids';
  if (items.length === 0) throw new ApiError('invalid_request', `${field} is empty`);
  if (items.length > BULK_MAX_ITEMS) throw new ApiError('invalid_request', `${field} has ${items.length} items; at most ${BULK_MAX_ITEMS} per request`);
  const seen = new Set<string>();
  for (const item of items) {
    const k = item.toUpperCase().replace(/[\s-]+/g, '');
    if (seen.has(k)) throw new ApiError('invalid_request', `${field} lists ${JSON.stringify(item.slice(0, 80))} twice`);
    seen.add(k);
  }
  return { key, items };
}

/** Runs one item; a client mistake becomes its error result, anything else (the database gone) fails the request. */
async function decideOne(
  key: 'userCode' | 'nodeId',
  item: string,
  status: 'approved' | 'denied',
  act: () => Promise<NodeView>,
): Promise<BulkResult> {
  const id = key === 'userCode' ? { userCode: item } : { nodeId: item };
  try {
    return { ...id, status, node: await act() };
  } catch (e) {
    const client = clientErrorOf(e);
    if (!client) throw e;
    return { ...id, status: 'error', error: client.error, description: client.description };
  }
}

/**
 * Approves each target, in the order given. The template and the profile are checked before any node
 * is touched: a typo there is one 400, not a thousand errors.
 */
export async function approveMany(enrollment: EnrollmentService, targets: BulkTargets, approval: BulkApproval, actor: string): Promise<BulkResult[]> {
  const { key, items } = targetsOf(targets);
  const template: HostnameTemplate | undefined = approval.hostnameTemplate === undefined ? undefined : parseHostnameTemplate(approval.hostnameTemplate);
  if (template && items.length > 1 && template.variables.length === 0) {
    throw new ApiError('invalid_request', 'a hostname_template for more than one node needs a {{variable}}, or every node gets the same name');
  }
  if (approval.profile !== undefined && !enrollment.profileNames().includes(approval.profile)) {
    throw new ApiError('invalid_request', `unknown profile ${JSON.stringify(approval.profile)} (known: ${enrollment.profileNames().join(', ')})`);
  }
  const results: BulkResult[] = [];
  for (const [i, item] of items.entries()) {
    results.push(
      await decideOne(key, item, 'approved', async () => {
        const node = key === 'userCode' ? (await enrollment.findPendingMachine(item)).node : await enrollment.getNode(item);
        const decision = { profile: approval.profile, hostname: template?.render(node, i + 1), patches: approval.patches };
        return key === 'userCode' ? enrollment.approveByUserCode(item, decision, actor) : enrollment.approveNode(item, decision, actor);
      }),
    );
  }
  return results;
}

/** Denies each target, in the order given. */
export async function denyMany(enrollment: EnrollmentService, targets: BulkTargets, actor: string): Promise<BulkResult[]> {
  const { key, items } = targetsOf(targets);
  const results: BulkResult[] = [];
  for (const item of items) {
    results.push(await decideOne(key, item, 'denied', () => (key === 'userCode' ? enrollment.denyByUserCode(item, actor) : enrollment.denyNode(item, actor))));
  }
  return results;
}
