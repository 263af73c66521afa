import type { AuditEvent, AuditFilter, AuditRange, CertificateFilter, CertificateRecord, NodeStatus, Storage } from './storage/storage.js';

/** Events a subject filter reads at most per page (a range of the primary key): bounded work whatever the trail's size. */
export const SUBJECT_WINDOW = 50_000;

export interface GateStats {
  totalCertsIssued: number;
  activeCerts: number;
  authSuccesses: number;
  authFailures: number;
  certErrors: number;
  nodes: Record<NodeStatus, number>;
  blockedSubjects: number;
}

/**
 * What the admin API and the dashboard read about the gate as a whole: the audit trail, the
 * certificate records, counts. Routes ask here and never the storage itself, so every read has one
 * home a second backend (or a cache) can serve.
 */
export class GateReports {
  constructor(
    private readonly storage: Storage,
    private readonly now: () => number,
  ) {}

  /**
   * A page of audit events newest first, those of the filter when given (exact type, subject,
   * actor); `before` (an event id) pages on, and `nextBefore` is where the next page starts (null:
   * nothing older). Type and actor are indexed; the subject is not (sqlite migration 014), so a
   * subject's events are looked for among the SUBJECT_WINDOW events below the page's start: a page
   * may then hold fewer than `limit` events and still have a next one, further back.
   */
  async auditPage(page: { limit: number; before?: number | undefined }, filter: AuditFilter = {}): Promise<{ events: AuditEvent[]; nextBefore: number | null; searchedTo?: number }> {
    const range: AuditRange = { limit: page.limit + 1, ...(page.before !== undefined ? { beforeId: page.before } : {}) };
    let floor: number | undefined;
    if (filter.subject !== undefined) {
      const top = page.before ?? ((await this.storage.listAuditEvents({ limit: 1 }))[0]?.id ?? 0) + 1;
      // ids floor+1 … top-1: SUBJECT_WINDOW of them
      floor = Math.max(0, top - SUBJECT_WINDOW - 1);
      range.afterId = floor;
    }
    // one more than asked: whether it comes says whether there is more
    const rows = await this.storage.listAuditEvents({ ...filter, ...range });
    const events = rows.slice(0, page.limit);
    if (rows.length > page.limit) return { events, nextBefore: (events[events.length - 1] as AuditEvent).id };
    if (floor === undefined || floor === 0) return { events, nextBefore: null };
    // the window is read through: older events may match, unless there are none at all
    const older = (await this.storage.listAuditEvents({ limit: 1, beforeId: floor + 1 })).length > 0;
    return { events, nextBefore: older ? floor + 1 : null, searchedTo: floor + 1 };
  }

  /**
   * Certificate records newest first, optionally only the active ones or one subject's. `total`
   * counts every match, which walks them all (100,000 active ones cost more than the page): only on request.
   */
  async certificates(
    query: { active?: boolean | undefined; subject?: string | undefined },
    page: { limit: number; before?: number | undefined },
    total = false,
  ): Promise<{ certs: CertificateRecord[]; total?: number }> {
    const filter: CertificateFilter = { ...(query.active ? { activeAt: this.now() } : {}), ...(query.subject !== undefined ? { subject: query.subject } : {}) };
    const certs = await this.storage.listCertificates(filter, { limit: page.limit, ...(page.before !== undefined ? { beforeId: page.before } : {}) });
    return total ? { certs, total: await this.storage.countCertificates(filter) } : { certs };
  }

  async stats(): Promise<GateStats> {
    const t = this.now();
    const counts = await this.storage.countAuditEvents(['auth_success', 'auth_failure', 'cert_error']);
    return {
      totalCertsIssued: await this.storage.countCertificates({}),
      activeCerts: await this.storage.countCertificates({ activeAt: t }),
      authSuccesses: counts.auth_success ?? 0,
      authFailures: counts.auth_failure ?? 0,
      certErrors: counts.cert_error ?? 0,
      nodes: await this.storage.countNodesByStatus(),
      blockedSubjects: (await this.storage.listBlockedSubjects()).length,
    };
  }

  /** The dashboard's certificates (active ones) and latest audit events. */
  async dashboard(): Promise<{ certs: CertificateRecord[]; audit: AuditEvent[] }> {
    return {
      certs: await this.storage.listCertificates({ activeAt: this.now() }, { limit: 50 }),
      audit: await this.storage.listAuditEvents({ limit: 25 }),
    };
  }
}
