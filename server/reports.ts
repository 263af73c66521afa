import type { AuditEvent, AuditFilter, CertificateFilter, CertificateRecord, NodeStatus, Storage } from './storage/storage.js';

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

  /** Audit events newest first, those of the filter when given (exact type, subject, actor); `before` (an event id) pages on. */
  auditEvents(page: { limit: number; before?: number | undefined }, filter: AuditFilter = {}): Promise<AuditEvent[]> {
    return this.storage.listAuditEvents({ ...filter, limit: page.limit, ...(page.before !== undefined ? { beforeId: page.before } : {}) });
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
