import type { Storage } from './storage/storage.js';

export type AuditType =
  | 'device_code_issued'
  | 'device_approved'
  | 'device_denied'
  | 'node_token_issued'
  | 'node_registered'
  | 'node_revoked'
  | 'node_render_error'
  | 'config_downloaded'
  | 'config_refused';

export interface AuditEntry {
  type: AuditType;
  actor?: string | null;
  subject?: string | null;
  ip?: string | null;
  detail?: Record<string, unknown>;
}

/** Records what happened, to SQLite; the audit trail the dashboard and `GET /api/v1/audit` show. */
export class AuditLog {
  constructor(
    private readonly storage: Storage,
    private readonly now: () => number,
  ) {}

  record(e: AuditEntry): void {
    this.storage.addAuditEvent({
      at: this.now(),
      type: e.type,
      actor: e.actor ?? null,
      subject: e.subject ?? null,
      ip: e.ip ?? null,
      detail: e.detail ?? {},
    });
  }
}
