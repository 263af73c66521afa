// The operations of the SQLite backend, synchronous as better-sqlite3 is: each runs on the one
// connection, either alone or inside the transaction that index.ts holds open. An operation that
// reads then writes (update…, blockSubject, garbageCollect) runs in a transaction of its own, which
// becomes a savepoint when one is open already.
import type Database from 'better-sqlite3';
import {
  AlreadyExistsError,
  NotFoundError,
  type AuditEvent,
  type AuditFilter,
  type AuditRange,
  type BlockedSubject,
  type CertificateFilter,
  type CertificateRecord,
  type DevicePollFields,
  type DeviceRequestRecord,
  type DeviceRequestStatus,
  type NewAuditEvent,
  type NewCertificate,
  type NewDeviceRequest,
  type NodeFilter,
  type NodePage,
  type NodeRecord,
  type NodeSummary,
  type NodeTokenRecord,
  type OperatorGrantRecord,
  type RefreshTokenRecord,
  type SigningKeyRecord,
  type StoredSecret,
  type WebSessionRecord,
  type SealedColumn,
  type SealedValueRow,
} from '../storage.js';
import {
  NODE_SUMMARY_COLUMNS,
  auditFromRow,
  blockedFromRow,
  certificateFromRow,
  certificateToRow,
  grantFromRow,
  grantToRow,
  nodeFromRow,
  nodeToRow,
  openInstanceSecret,
  openSigningKey,
  sealInstanceSecret,
  sealSigningKey,
  refreshFromRow,
  requestFromRow,
  requestToRow,
  sessionFromRow,
  sessionToRow,
  summaryFromRow,
  tokenFromRow,
  type AuditRow,
  type BlockedRow,
  type CertificateRow,
  type DeviceRequestRow,
  type GrantRow,
  type NodeRow,
  type NodeTokenRow,
  type RefreshRow,
  type WebSessionRow,
  newRequestRecord,
  sealedColumn,
  type RowCipher,
} from '../rows.js';

function isUniqueViolation(e: unknown): boolean {
  return e instanceof Error && 'code' in e && (e as { code: string }).code.startsWith('SQLITE_CONSTRAINT');
}
import { DECIDED, POLL_COLUMNS, StatementCache, certificateWhere, nodeWhere, prepareStatements, type Statements } from './statements.js';

/** The audit filter's fields, each the column it matches; type and actor indexed (migrations 002, 014), subject read in a bounded range. */
const AUDIT_FILTER_COLUMNS = ['type', 'subject', 'actor'] as const;

export class SqliteOperations {
  private readonly summaryCols = NODE_SUMMARY_COLUMNS.join(', ');
  private readonly stmt: Statements;
  private readonly sql: StatementCache;
  // One transaction wrapper made once, taking the work as its argument: better-sqlite3 builds four
  // wrapper functions for every db.transaction(fn), which a booting rack's polls paid for every time.
  // Inside a transaction already open it is a savepoint.
  private readonly runInTransaction: Database.Transaction<(fn: () => unknown) => unknown>;

  constructor(
    readonly db: Database.Database,
    private readonly cipher: RowCipher,
  ) {
    this.stmt = prepareStatements(db);
    this.sql = new StatementCache(db);
    this.runInTransaction = db.transaction((fn: () => unknown) => fn());
  }

  /** fn atomically; immediate: takes the write lock at the start, so two gate processes never both read-then-write. */
  private atomically<T>(fn: () => T): T {
    return this.runInTransaction.immediate(fn) as T;
  }

  createNode(node: NodeRecord): NodeRecord {
    try {
      this.stmt.insertNode.run(nodeToRow(node, this.cipher));
    } catch (e) {
      if (isUniqueViolation(e)) throw new AlreadyExistsError(`node ${node.id}`);
      throw e;
    }
    return node;
  }

  getNode(id: string): NodeRecord | undefined {
    const row = this.stmt.getNode.get(id) as NodeRow | undefined;
    return row && nodeFromRow(row, this.cipher);
  }

  listNodes(filter: NodeFilter, page: NodePage): NodeSummary[] {
    if (filter.decided && filter.status === undefined) {
      // each decided status on its own range of (status, created_at, id), merged: a few pages read,
      // never a sort of the whole fleet, nor a walk past every pending node
      return DECIDED.flatMap((status) => this.listNodes({ ...filter, status }, page))
        .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
        .slice(0, page.limit);
    }
    const w = nodeWhere(filter);
    // a row value, so the planner scans the (created_at, id) index from the cursor on, never from the top
    const after = page.after ? ' AND (created_at, id) < (?, ?)' : '';
    const args = page.after ? [...w.args, page.after.createdAt, page.after.id] : w.args;
    const rows = this
      .sql.get(`SELECT ${this.summaryCols} FROM nodes WHERE ${w.sql}${after} ORDER BY created_at DESC, id DESC LIMIT ?`)
      .all(...args, page.limit) as Omit<NodeRow, 'config'>[];
    return rows.map((r) => summaryFromRow(r, this.cipher));
  }

  countNodes(filter: NodeFilter): number {
    if (filter.decided && filter.status === undefined) {
      return DECIDED.reduce((sum, status) => sum + this.countNodes({ ...filter, status }), 0);
    }
    const w = nodeWhere(filter);
    return (this.sql.get(`SELECT COUNT(*) AS n FROM nodes WHERE ${w.sql}`).get(...w.args) as { n: number }).n;
  }

  deleteAbandonedNodes(askedBefore: number, now: number, limit: number): number {
    return this.stmt.deleteAbandonedNodes.run({ before: askedBefore, now, limit }).changes;
  }

  recordConfigDownload(id: string, at: number, ip: string): void {
    if (this.stmt.recordDownload.run(at, ip, id).changes === 0) throw new NotFoundError(`node ${id}`);
  }

  countNodesByStatus(): Record<NodeRecord['status'], number> {
    const out: Record<NodeRecord['status'], number> = { pending: 0, approved: 0, denied: 0, revoked: 0 };
    for (const r of this.sql.get('SELECT status, COUNT(*) AS n FROM nodes GROUP BY status').all() as { status: NodeRecord['status']; n: number }[]) {
      out[r.status] = r.n;
    }
    return out;
  }

  updateNode(id: string, updater: (old: NodeRecord) => NodeRecord): NodeRecord {
    return this.atomically(() => {
      const old = this.getNode(id);
      if (!old) throw new NotFoundError(`node ${id}`);
      const next = { ...updater(old), id };
      this.stmt.updateNode.run(nodeToRow(next, this.cipher));
      return next;
    });
  }

  deleteNode(id: string): boolean {
    return this.sql.get('DELETE FROM nodes WHERE id = ?').run(id).changes === 1;
  }

  createDeviceRequest(req: NewDeviceRequest): DeviceRequestRecord {
    const full = newRequestRecord(req);
    const { id: _unused, ...row } = requestToRow(full);
    try {
      const info = this.stmt.insertRequest.run(row);
      return { ...full, id: Number(info.lastInsertRowid) };
    } catch (e) {
      if (isUniqueViolation(e)) throw new AlreadyExistsError('device request code');
      throw e;
    }
  }

  getDeviceRequest(id: number): DeviceRequestRecord | undefined {
    const row = this.stmt.getRequest.get(id) as DeviceRequestRow | undefined;
    return row && requestFromRow(row);
  }

  getDeviceRequestByCodeHash(hash: string): DeviceRequestRecord | undefined {
    const row = this.stmt.getRequestByHash.get(hash) as DeviceRequestRow | undefined;
    return row && requestFromRow(row);
  }

  getDeviceRequestByUserCode(userCode: string): DeviceRequestRecord | undefined {
    const row = this.stmt.getRequestByUserCode.get(userCode) as DeviceRequestRow | undefined;
    return row && requestFromRow(row);
  }

  listDeviceRequests(filter: { nodeId?: string; nodeIds?: string[]; status?: DeviceRequestStatus }): DeviceRequestRecord[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.nodeId !== undefined) {
      where.push('node_id = ?');
      args.push(filter.nodeId);
    }
    if (filter.nodeIds !== undefined) {
      // one bound JSON list, so the statement is the same for any number of ids
      where.push('node_id IN (SELECT value FROM json_each(?))');
      args.push(JSON.stringify(filter.nodeIds));
    }
    if (filter.status !== undefined) {
      where.push('status = ?');
      args.push(filter.status);
    }
    const sql = `SELECT * FROM device_requests ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id`;
    return (this.sql.get(sql).all(...args) as DeviceRequestRow[]).map(requestFromRow);
  }

  updateDeviceRequest(id: number, updater: (old: DeviceRequestRecord) => DeviceRequestRecord): DeviceRequestRecord {
    return this.atomically(() => {
      const old = this.getDeviceRequest(id);
      if (!old) throw new NotFoundError(`device request ${id}`);
      const next = { ...updater(old), id };
      this.stmt.updateRequest.run(requestToRow(next));
      return next;
    });
  }

  recordPoll(id: number, fields: DevicePollFields): void {
    const given: Record<(typeof POLL_COLUMNS)[number], [boolean, unknown]> = {
      interval_ms: ['intervalMs' in fields, fields.intervalMs],
      last_poll_at: ['lastPollAt' in fields, fields.lastPollAt],
      next_poll_at: ['nextPollAt' in fields, fields.nextPollAt],
      last_poll_basic: ['lastPollBasic' in fields, fields.lastPollBasic ? 1 : 0],
      last_answer: ['lastAnswer' in fields, fields.lastAnswer],
    };
    const params: Record<string, unknown> = { id };
    for (const [column, [set, value]] of Object.entries(given)) {
      params[`set_${column}`] = set ? 1 : 0;
      params[column] = set ? (value ?? null) : null;
    }
    if (this.stmt.recordPoll.run(params).changes === 0) throw new NotFoundError(`device request ${id}`);
  }

  countDeviceRequestsByStatus(): Record<DeviceRequestStatus, number> {
    const out: Record<DeviceRequestStatus, number> = { pending: 0, approved: 0, denied: 0, consumed: 0 };
    for (const r of this.sql.get('SELECT status, COUNT(*) AS n FROM device_requests GROUP BY status').all() as { status: DeviceRequestStatus; n: number }[]) {
      out[r.status] = r.n;
    }
    return out;
  }

  waitingNodeRequests(now: number): { count: number; oldestAt: number | null } {
    const r = this.sql
      .get("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM device_requests WHERE status = 'pending' AND kind = 'node' AND expires_at >= ?")
      .get(now) as { n: number; oldest: number | null };
    return { count: r.n, oldestAt: r.oldest };
  }

  countPendingDeviceRequestsInBucket(bucket: string, now: number): number {
    return (this.stmt.countPendingInBucket.get(bucket, now) as { n: number }).n;
  }

  pruneDeviceRequests(nodeId: string, keep: number, finishedBefore: number): number {
    return this.stmt.pruneRequests.run({ node: nodeId, keep, before: finishedBefore }).changes;
  }

  createNodeToken(token: NodeTokenRecord): NodeTokenRecord {
    try {
      this.stmt.insertToken.run({
        token_hash: token.tokenHash,
        node_id: token.nodeId,
        device_request_id: token.deviceRequestId,
        issued_at: token.issuedAt,
        expires_at: token.expiresAt,
        revoked_at: token.revokedAt,
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw new AlreadyExistsError(`token for device request ${token.deviceRequestId}`);
      throw e;
    }
    return token;
  }

  getNodeToken(hash: string): NodeTokenRecord | undefined {
    const row = this.stmt.getToken.get(hash) as NodeTokenRow | undefined;
    return row && tokenFromRow(row);
  }

  revokeNodeTokens(nodeId: string, at: number): number {
    return this.stmt.revokeTokens.run(at, nodeId).changes;
  }

  addAuditEvent(event: NewAuditEvent): AuditEvent {
    // positional parameters: binding by name cost a quarter of the insert
    const info = this.stmt.insertAudit.run(event.at, event.type, event.actor, event.subject, event.ip, JSON.stringify(event.detail));
    return { ...event, id: Number(info.lastInsertRowid) };
  }

  /** Storage.recordCertificate's writes, synchronous: run in a savepoint of a grouped transaction. */
  recordCertificate(cert: NewCertificate, audit: NewAuditEvent[]): { cert: CertificateRecord; audit: AuditEvent[] } | 'blocked' {
    if (this.getBlockedSubject(cert.subject)) return 'blocked';
    const recorded = this.addCertificate(cert);
    return { cert: recorded, audit: audit.map((e) => this.addAuditEvent(e)) };
  }

  listAuditEvents(opts: AuditRange & AuditFilter): AuditEvent[] {
    const fields = AUDIT_FILTER_COLUMNS.filter((key) => opts[key] !== undefined);
    if (fields.length === 0 && opts.afterId === undefined) return (this.stmt.listAudit.all(opts.beforeId ?? Number.MAX_SAFE_INTEGER, opts.limit) as AuditRow[]).map(auditFromRow);
    // one statement per combination of fields (at most 7), cached: the columns are ours, the values bound
    const where = fields.map((column) => `${column} = ? AND `).join('');
    const rows = this.sql
      .get(`SELECT * FROM audit_events WHERE ${where}id < ? AND id > ? ORDER BY id DESC LIMIT ?`)
      .all(...fields.map((key) => opts[key]), opts.beforeId ?? Number.MAX_SAFE_INTEGER, opts.afterId ?? 0, opts.limit) as AuditRow[];
    return rows.map(auditFromRow);
  }

  countAuditEvents(types: string[]): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries(types.map((t) => [t, 0]));
    if (types.length === 0) return out;
    const rows = this
      .sql.get(`SELECT type, COUNT(*) AS n FROM audit_events WHERE type IN (${types.map(() => '?').join(', ')}) GROUP BY type`)
      .all(...types) as { type: string; n: number }[];
    for (const r of rows) out[r.type] = r.n;
    return out;
  }

  addCertificate(cert: NewCertificate): CertificateRecord {
    try {
      const r = certificateToRow(cert);
      // in the statement's column order (statements.ts), bound by position
      const info = this.stmt.insertCertificate.run(r.serial, r.fingerprint, r.subject, r.email, r.common_name, r.issuer, r.roles, r.issued_at, r.expires_at, r.client_ip, r.source);
      return { ...cert, id: Number(info.lastInsertRowid) };
    } catch (e) {
      if (isUniqueViolation(e)) throw new AlreadyExistsError(`certificate ${cert.serial}`);
      throw e;
    }
  }

  listCertificates(filter: CertificateFilter, page: { limit: number; beforeId?: number }): CertificateRecord[] {
    const w = certificateWhere(filter);
    const rows = this
      .sql.get(`SELECT * FROM certificates WHERE ${w.sql} AND id < ? ORDER BY id DESC LIMIT ?`)
      .all(...w.args, page.beforeId ?? Number.MAX_SAFE_INTEGER, page.limit) as CertificateRow[];
    return rows.map(certificateFromRow);
  }

  countCertificates(filter: CertificateFilter): number {
    const w = certificateWhere(filter);
    return (this.sql.get(`SELECT COUNT(*) AS n FROM certificates WHERE ${w.sql}`).get(...w.args) as { n: number }).n;
  }

  blockSubject(b: BlockedSubject): { added: boolean; webSessions: number; operatorLogins: number } {
    return this.atomically(() => ({
      added: this.stmt.blockSubject.run(b.subject, b.blockedAt, b.blockedBy, b.reason).changes === 1,
      webSessions: this.stmt.deleteSessionsOfSubject.run(b.subject).changes,
      operatorLogins: this.stmt.revokeGrantsOfSubject.run(b.blockedAt, 'subject blocked', b.subject).changes,
    }));
  }

  unblockSubject(subject: string): boolean {
    return this.stmt.unblockSubject.run(subject).changes === 1;
  }

  getBlockedSubject(subject: string): BlockedSubject | undefined {
    const row = this.stmt.getBlocked.get(subject) as BlockedRow | undefined;
    return row && blockedFromRow(row);
  }

  listBlockedSubjects(): BlockedSubject[] {
    return (this.stmt.listBlocked.all() as BlockedRow[]).map(blockedFromRow);
  }

  applyRetention(certsBefore: number, auditBefore: number): { certificates: number; auditEvents: number } {
    return this.atomically(() => ({
      certificates: this.stmt.retainCertificates.run(certsBefore).changes,
      auditEvents: this.stmt.retainAudit.run(auditBefore).changes,
    }));
  }

  createWebSession(s: WebSessionRecord): WebSessionRecord {
    this.stmt.insertSession.run(sessionToRow(s, this.cipher));
    return s;
  }

  getWebSession(idHash: string): WebSessionRecord | undefined {
    const row = this.stmt.getSession.get(idHash) as WebSessionRow | undefined;
    return row && sessionFromRow(row, this.cipher);
  }

  updateWebSession(idHash: string, updater: (old: WebSessionRecord) => WebSessionRecord): WebSessionRecord {
    return this.atomically(() => {
      const old = this.getWebSession(idHash);
      if (!old) throw new NotFoundError('web session');
      const next = { ...updater(old), idHash };
      this.stmt.updateSession.run(sessionToRow(next, this.cipher));
      return next;
    });
  }

  deleteWebSession(idHash: string): void {
    this.stmt.deleteSession.run(idHash);
  }

  createOperatorGrant(g: OperatorGrantRecord): OperatorGrantRecord {
    this.stmt.insertGrant.run(grantToRow(g, this.cipher));
    return g;
  }

  getOperatorGrant(id: string): OperatorGrantRecord | undefined {
    const row = this.stmt.getGrant.get(id) as GrantRow | undefined;
    return row && grantFromRow(row, this.cipher);
  }

  updateOperatorGrant(id: string, updater: (old: OperatorGrantRecord) => OperatorGrantRecord): OperatorGrantRecord {
    return this.atomically(() => {
      const old = this.getOperatorGrant(id);
      if (!old) throw new NotFoundError(`operator grant ${id}`);
      const next = { ...updater(old), id };
      this.stmt.updateGrant.run(grantToRow(next, this.cipher));
      return next;
    });
  }

  createRefreshToken(t: RefreshTokenRecord): RefreshTokenRecord {
    this.stmt.insertRefresh.run({ token_hash: t.tokenHash, grant_id: t.grantId, issued_at: t.issuedAt, expires_at: t.expiresAt, used_at: t.usedAt });
    return t;
  }

  getRefreshToken(hash: string): RefreshTokenRecord | undefined {
    const r = this.stmt.getRefresh.get(hash) as RefreshRow | undefined;
    return r && refreshFromRow(r);
  }

  useRefreshToken(hash: string, at: number): boolean {
    return this.stmt.useRefresh.run(at, hash).changes === 1;
  }

  releaseRefreshToken(hash: string): void {
    this.stmt.releaseRefresh.run(hash);
  }

  instanceSecret(name: string, value: Buffer, at: number): StoredSecret {
    return this.atomically(() => {
      this.stmt.insertSecret.run(name, sealInstanceSecret(this.cipher, name, value), at);
      const row = this.stmt.getSecret.get(name) as { name: string; value: string; created_at: number };
      return { name: row.name, value: openInstanceSecret(this.cipher, name, row.value), createdAt: row.created_at };
    });
  }

  replaceInstanceSecret(name: string, expected: Buffer, value: Buffer, at: number): boolean {
    // sealing is randomized: the value is compared opened, and replaced only as it was read
    return this.atomically(() => {
      const row = this.stmt.getSecret.get(name) as { value: string } | undefined;
      if (!row || !openInstanceSecret(this.cipher, name, row.value).equals(expected)) return false;
      return this.stmt.replaceSecret.run(sealInstanceSecret(this.cipher, name, value), at, name, row.value).changes === 1;
    });
  }

  listSigningKeys(): SigningKeyRecord[] {
    const rows = this.stmt.listSigningKeys.all() as { kid: string; private_key: string; created_at: number; activates_at: number }[];
    return rows.map((r) => ({ kid: r.kid, privateKey: openSigningKey(this.cipher, r.kid, r.private_key), createdAt: r.created_at, activatesAt: r.activates_at }));
  }

  addSigningKey(key: SigningKeyRecord, unlessCreatedAfter: number): boolean {
    // immediate: the write lock is held from the check to the insert, across processes too
    return this.atomically(() => {
      const { newest } = this.stmt.newestSigningKey.get() as { newest: number | null };
      if (newest !== null && newest > unlessCreatedAfter) return false;
      try {
        this.stmt.insertSigningKey.run(key.kid, sealSigningKey(this.cipher, key.kid, key.privateKey), key.createdAt, key.activatesAt);
      } catch (e) {
        if (isUniqueViolation(e)) throw new AlreadyExistsError(`signing key ${key.kid}`);
        throw e;
      }
      return true;
    });
  }

  deleteSigningKey(kid: string): boolean {
    return this.stmt.deleteSigningKey.run(kid).changes === 1;
  }

  addCodeEntryFailure(keys: string[], at: number): void {
    this.atomically(() => keys.forEach((k) => this.stmt.insertFailure.run(k, at)));
  }

  countCodeEntryFailures(key: string, since: number): number {
    return (this.stmt.countFailures.get(key, since) as { n: number }).n;
  }

  oldestCodeEntryFailure(key: string, since: number): number | undefined {
    return (this.stmt.countFailures.get(key, since) as { oldest: number | null }).oldest ?? undefined;
  }

  garbageCollect(now: number, limit = -1): { deviceRequests: number; nodeTokens: number; webSessions: number } {
    // LIMIT -1 is no limit in SQLite
    return this.atomically(() => {
      const nodeTokens = this.stmt.gcTokens.run(now, limit).changes;
      const deviceRequests = this.stmt.gcRequests.run(now, limit).changes + this.stmt.gcConsumed.run(now, limit).changes;
      const webSessions = this.stmt.gcSessions.run(now, limit).changes;
      this.stmt.gcGrants.run(now, limit);
      // failures older than a day no longer count towards any lockout window
      this.stmt.gcFailures.run(now - 86_400_000, limit);
      return { deviceRequests, nodeTokens, webSessions };
    });
  }

  scanSealedColumn(col: SealedColumn, afterId: string | null, limit: number, head?: number): SealedValueRow[] {
    const { table, column, idColumn } = sealedColumn(col); // names from the fixed list only
    const value = head === undefined ? column : `substr(${column}, 1, ${Math.max(1, Math.floor(head))})`;
    const after = afterId === null ? '' : ` AND ${idColumn} > ?`;
    const sql = `SELECT ${idColumn} AS id, ${value} AS value FROM ${table} WHERE ${column} IS NOT NULL${after} ORDER BY ${idColumn} LIMIT ?`;
    return this.sql.get(sql).all(...(afterId === null ? [] : [afterId]), limit) as SealedValueRow[];
  }

  replaceSealedValue(col: SealedColumn, id: string, expected: string, next: string): boolean {
    const { table, column, idColumn } = sealedColumn(col);
    return this.sql.get(`UPDATE ${table} SET ${column} = ? WHERE ${idColumn} = ? AND ${column} = ?`).run(next, id, expected).changes === 1;
  }
}
