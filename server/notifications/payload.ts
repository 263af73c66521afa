// The body of one event, built at delivery time from the outbox row (the audit row's fields, copied
// by the trigger) and, for node events, the node's row as it is then: the audit rows of approval,
// denial, revocation and config download name the node but do not repeat it. A node deleted since
// (forgotten) is told of with what the audit row itself holds.
import { isUnfilled } from '../../device/authorization-request.js';
import { formatUserCode } from '../../device/user-code.js';
import type { DeviceRequestRecord, NodeRecord, WebhookDelivery } from '../storage/storage.js';
import { AUTH_FAILURE_WINDOW_MS, NODE_EVENTS, type WebhookEvent } from './events.js';

export interface WebhookNode {
  id: string;
  uuid: string | null;
  mac: string | null;
  serial: string | null;
  hostname: string | null;
  source_ip: string | null;
  status: string | null;
}

/** What a json webhook receives (docs/notifications.md, "The body"). */
export interface WebhookBody {
  event: WebhookEvent;
  /** When it happened (ISO 8601). */
  at: string;
  /** The audit event's id: the same across retries, so a receiver can drop a repeat. */
  id: number;
  /** Who did it, for admin decisions (the approving user's email, or "admin-token"). */
  actor: string | null;
  node?: WebhookNode;
  user_code?: string | null;
  /** The page where an admin approves this node's code; null when no code is known. */
  confirm_url?: string | null;
  /** cert_issued: who got a certificate, from where. */
  certificate?: { subject: string | null; serial: unknown; fingerprint: unknown; common_name: unknown; roles: unknown; expires_at: unknown; client_ip: string | null };
  /** auth_failures: the minute in which at least `count` exchanges were refused. */
  auth_failures?: { window_start: string; window_seconds: number; count: number; last: { ip: string | null; subject: string | null; reason: unknown } };
  /** The gate's dashboard. */
  dashboard_url: string;
}

/** What the dispatcher read for a node event. */
export interface NodeFacts {
  node: NodeRecord | undefined;
  /** The node's newest device request, for the user code of events whose audit row has none. */
  newestRequest: DeviceRequestRecord | undefined;
}

const str = (v: unknown): string | null => (typeof v === 'string' && !isUnfilled(v) ? v : null);

export function buildBody(d: WebhookDelivery, publicUrl: string, authFailureBurst: number, facts?: NodeFacts): WebhookBody {
  const event = d.event as WebhookEvent;
  const body: WebhookBody = { event, at: new Date(d.at).toISOString(), id: d.auditId, actor: d.actor, dashboard_url: `${publicUrl}/` };
  if (NODE_EVENTS.has(event)) {
    const node = facts?.node;
    const sent = (d.detail.variables ?? {}) as Record<string, unknown>;
    body.node = {
      id: node?.id ?? d.subject ?? '',
      uuid: node?.uuid ?? str(sent.uuid),
      mac: node?.mac ?? str(sent.mac),
      serial: str(node?.variables.serial) ?? str(sent.serial),
      hostname: node?.hostname ?? str(d.detail.hostname) ?? str(node?.variables.hostname) ?? str(sent.hostname),
      // node_waiting: the address that asked; later events: the one the node last asked from
      source_ip: (event === 'node_waiting' ? d.ip : null) ?? node?.sourceIp ?? null,
      status: node?.status ?? null,
    };
    const code = str(d.detail.user_code) ?? (facts?.newestRequest ? formatUserCode(facts.newestRequest.userCode) : null);
    body.user_code = code;
    body.confirm_url = code === null ? null : `${publicUrl}/device?user_code=${encodeURIComponent(code)}`;
  } else if (event === 'cert_issued') {
    body.certificate = {
      subject: d.subject,
      serial: d.detail.serial,
      fingerprint: d.detail.fingerprint,
      common_name: d.detail.common_name,
      roles: d.detail.roles,
      expires_at: d.detail.expires_at,
      client_ip: d.ip,
    };
  } else if (event === 'auth_failures') {
    body.auth_failures = {
      window_start: new Date(d.at - (d.at % AUTH_FAILURE_WINDOW_MS)).toISOString(),
      window_seconds: AUTH_FAILURE_WINDOW_MS / 1000,
      count: authFailureBurst,
      last: { ip: d.ip, subject: d.subject, reason: d.detail.reason },
    };
  }
  return body;
}

