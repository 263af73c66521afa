// The webhook outbox's rows as both backends read them (snake_case columns, numbers for times).
import type { WebhookDelivery } from './storage.js';

export interface WebhookOutboxRow {
  id: number;
  webhook: string;
  event: string;
  audit_id: number;
  at: number;
  actor: string | null;
  subject: string | null;
  ip: string | null;
  detail: string;
  status: string;
  attempts: number;
  next_at: number;
  last_error: string | null;
}

export const OUTBOX_COLUMNS = 'id, webhook, event, audit_id, at, actor, subject, ip, detail, status, attempts, next_at, last_error';

/** Longest last_error kept: a receiver's error text is only a hint for the operator. */
export const MAX_ERROR_LENGTH = 500;

export function deliveryFromRow(r: WebhookOutboxRow): WebhookDelivery {
  let detail: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(r.detail);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) detail = parsed as Record<string, unknown>;
  } catch {
    // a detail that is not JSON (written by hand into audit_events) is delivered without it
  }
  return {
    id: Number(r.id),
    webhook: r.webhook,
    event: r.event,
    auditId: Number(r.audit_id),
    at: Number(r.at),
    actor: r.actor,
    subject: r.subject,
    ip: r.ip,
    detail,
    status: r.status === 'dead' ? 'dead' : 'pending',
    attempts: Number(r.attempts),
    nextAt: Number(r.next_at),
    lastError: r.last_error,
  };
}
