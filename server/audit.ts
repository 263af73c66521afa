import { chmodSync, closeSync, openSync, writeSync } from 'node:fs';
import type { AuditEvent, NewAuditEvent, Storage, StorageTx } from './storage/storage.js';

/** Every kind of event the trail records (the web audit page offers them as its type filter). */
export const AUDIT_TYPES = [
  'device_code_issued',
  'device_approved',
  'device_denied',
  'node_token_issued',
  'node_registered',
  'node_revoked',
  'node_forgotten',
  'node_render_error',
  'node_rerendered',
  'auto_approve_armed',
  'auto_approve_refused',
  'config_downloaded',
  'config_refused',
  'auth_success',
  'auth_failure',
  'cert_issued',
  'cert_error',
  'subject_blocked',
  'subject_unblocked',
  'operator_login_approved',
  'operator_token_issued',
  'operator_token_refreshed',
  'operator_login_revoked',
] as const;

export type AuditType = (typeof AUDIT_TYPES)[number];

export interface AuditEntry {
  type: AuditType;
  actor?: string | null;
  subject?: string | null;
  ip?: string | null;
  detail?: Record<string, unknown>;
}

/** Where audit events go besides SQLite: JSON lines on stdout or in a file (0600). */
export interface AuditSink {
  write(line: string): void;
  close(): void;
}

export function openAuditSink(target: string): AuditSink | undefined {
  if (target === 'off') return undefined;
  if (target === 'stdout') return { write: (line) => process.stdout.write(line), close: () => {} };
  const fd = openSync(target, 'a', 0o600);
  chmodSync(target, 0o600);
  return { write: (line) => writeSync(fd, line), close: () => closeSync(fd) };
}

/** Records what happened: to SQLite (dashboard, `GET /api/v1/audit`) and to the JSON-lines sink. */
export class AuditLog {
  constructor(
    private readonly storage: Storage,
    private readonly now: () => number,
    private readonly sink?: AuditSink,
    /** Told of every event, e.g. to count it in metrics. */
    private readonly onEvent?: (e: AuditEntry) => void,
  ) {}

  /**
   * Records e through `db`: a transaction's `tx` writes the event in that transaction, so it is kept
   * exactly when what it tells of is. The sink and onEvent hear of it once written.
   */
  async record(e: AuditEntry, db: StorageTx = this.storage): Promise<void> {
    this.published(await db.addAuditEvent(this.event(e)));
  }

  /** The event to store for e, for a storage operation that writes it together with what it tells of. */
  event(e: AuditEntry): NewAuditEvent {
    return { at: this.now(), type: e.type, actor: e.actor ?? null, subject: e.subject ?? null, ip: e.ip ?? null, detail: e.detail ?? {} };
  }

  /** Tells the sink and onEvent of an event the storage has written (record() does this itself). */
  published(event: AuditEvent): void {
    this.sink?.write(`${JSON.stringify({ audit: true, ...event, at: new Date(event.at).toISOString() })}\n`);
    // why the cast: the storage keeps the type as text; events published here were made by event()
    this.onEvent?.({ type: event.type as AuditType, actor: event.actor, subject: event.subject, ip: event.ip, detail: event.detail });
  }
}
