// Group commit for POST /exchange on PostgreSQL: the certificates recorded while a statement is out
// go together as the next one (migration 007's tg_record_certificates), so a burst of exchanges
// pays one round trip, one parse/bind and one commit per batch, not per certificate, as SQLite's
// group commit does (sqlite/transactions.ts). Each exchange is still answered only after the
// statement holding its record and audit events has committed.
//
// A batch is one statement, so one failing item would fail the others with it: a batch that fails
// for any reason but an unreachable database is sent again one item at a time (hot-paths.ts's
// single statement), and each item gets its own outcome.
import { auditFromRow, certificateFromRow, certificateToRow, type AuditRow, type CertificateRow } from '../rows.js';
import type { AuditEvent, CertificateRecord, NewAuditEvent, NewCertificate } from '../storage.js';
import { isUnavailable } from './errors.js';
import { recordCertificate, type PoolQuery } from './hot-paths.js';

export type RecordedCertificate = { cert: CertificateRecord; audit: AuditEvent[] } | 'blocked';

/** Items in one statement at most, so neither the statement nor the locks it holds grow without bound. */
const BATCH_MAX = 256;
/** Statements out at once: the next batch is gathered and sent while the database runs one. */
const IN_FLIGHT_MAX = 2;

const RECORD_BATCH = 'SELECT tg_record_certificates($1::jsonb) AS answer';

interface Pending {
  cert: NewCertificate;
  audit: NewAuditEvent[];
  resolve: (r: RecordedCertificate) => void;
  reject: (e: unknown) => void;
}

type BatchAnswer = { blocked: true } | { blocked: false; cert: CertificateRow; events: AuditRow[] };

const asItem = (p: Pending) => ({
  subject: p.cert.subject,
  cert: certificateToRow(p.cert),
  audit: p.audit.map((e) => ({ ...e, detail: JSON.stringify(e.detail) })),
});

export class CertificateBatch {
  private queue: Pending[] = [];
  private inFlight = 0;

  constructor(private readonly query: PoolQuery) {}

  record(cert: NewCertificate, audit: NewAuditEvent[]): Promise<RecordedCertificate> {
    return new Promise((resolve, reject) => {
      this.queue.push({ cert, audit, resolve, reject });
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.inFlight >= IN_FLIGHT_MAX || this.queue.length === 0) return;
    this.inFlight++;
    const batch = this.queue.splice(0, BATCH_MAX);
    try {
      await this.send(batch);
    } finally {
      this.inFlight--;
      void this.flush();
    }
  }

  private async send(batch: Pending[]): Promise<void> {
    let answers: BatchAnswer[];
    try {
      const res = await this.query<{ answer: BatchAnswer[] }>(RECORD_BATCH, [JSON.stringify(batch.map(asItem))]);
      answers = res.rows[0]?.answer ?? [];
      if (answers.length !== batch.length) throw new Error(`storage: tg_record_certificates answered ${answers.length} of ${batch.length} items`);
    } catch (e) {
      if (isUnavailable(e) || batch.length === 1) {
        for (const p of batch) p.reject(e);
        return;
      }
      // nothing of the batch was written (one statement): each item on its own, with its own outcome
      await Promise.all(batch.map((p) => recordCertificate(this.query, p.cert, p.audit).then(p.resolve, p.reject)));
      return;
    }
    batch.forEach((p, i) => {
      const a = answers[i] as BatchAnswer;
      p.resolve(a.blocked ? 'blocked' : { cert: certificateFromRow(a.cert), audit: a.events.map(auditFromRow) });
    });
  }
}
