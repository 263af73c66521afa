// The dashboard's bulk decision form, parsed into what server/enrollment/bulk-decisions.ts takes.
// A urlencoded form repeats a key once per ticked checkbox (@fastify/formbody gives an array then,
// a string for one): user_code on the waiting tab, node_id on the others.
import { ApiError } from '../api-error.js';
import type { BulkApproval, BulkTargets } from '../enrollment/bulk-decisions.js';

export interface BulkFormBody {
  decision?: unknown;
  user_code?: unknown;
  node_id?: unknown;
  profile?: unknown;
  hostname_template?: unknown;
}

export type BulkForm = { decision: 'approve'; targets: BulkTargets; approval: BulkApproval } | { decision: 'deny'; targets: BulkTargets };

/** A field's values: absent, one string, or strings (anything else is not from our form). */
function values(v: unknown, field: string): string[] {
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x): x is string => typeof x === 'string')) throw new ApiError('invalid_request', `${field} must be text`);
  return list.map((x) => x.trim()).filter((x) => x !== '');
}

function text(v: unknown, field: string): string | undefined {
  const [one, ...rest] = values(v, field);
  if (rest.length > 0) throw new ApiError('invalid_request', `${field} is given twice`);
  return one;
}

export function parseBulkForm(body: BulkFormBody | undefined): BulkForm {
  const b = body ?? {};
  const decision = text(b.decision, 'decision');
  if (decision !== 'approve' && decision !== 'deny') throw new ApiError('invalid_request', 'choose Approve or Deny');
  const userCodes = values(b.user_code, 'user_code');
  const nodeIds = values(b.node_id, 'node_id');
  if (userCodes.length > 0 && nodeIds.length > 0) throw new ApiError('invalid_request', 'select machines by their codes or by their ids, not both');
  if (userCodes.length === 0 && nodeIds.length === 0) throw new ApiError('invalid_request', 'select at least one machine');
  // the bulk service checks the count, repeats and each item
  const targets: BulkTargets = userCodes.length > 0 ? { userCodes } : { nodeIds };
  if (decision === 'deny') return { decision, targets };
  return { decision, targets, approval: { profile: text(b.profile, 'profile'), hostnameTemplate: text(b.hostname_template, 'hostname_template') } };
}
