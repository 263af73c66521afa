// The operations of the PostgreSQL backend, written once for both ways they run: on the pool (each
// statement its own autocommit transaction) and inside a transaction (index.ts's PostgresTx, on the
// one client the transaction holds). How concurrency is handled, per kind of operation:
// - One-time things are one conditional statement and its affected-row count: a refresh token's
//   use (UPDATE … WHERE used_at IS NULL), a config download, a poll's bookkeeping.
// - Read-modify-write (`update…(id, updater)`) reads the row with SELECT … FOR UPDATE inside a
//   transaction, so a concurrent update of the same row waits and then sees this one's result
//   (PostgreSQL docs 13.3.2, "Row-Level Locks"); device code redemption is such an update, whose
//   updater refuses a request no longer approved, so one code yields one token.
// - Cross-row rules take transaction-level advisory locks (docs 13.3.5, "Advisory Locks") before they
//   read, so the rule holds until commit: the pending-requests count of an address bucket is taken
//   under that bucket's lock (the next /device/code of the bucket counts after this one committed),
//   and the block check of an exchange under a shared lock of the subject that blockSubject takes
//   exclusively (a block commits before or after an exchange, never between its check and its record).
// Rows come in the shape server/storage/rows.ts maps (pool.ts's type parsers).
import type { QueryResult, QueryResultRow } from 'pg';
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
  type NodeStatus,
  type NodeSummary,
  type NodeTokenRecord,
  type OperatorGrantRecord,
  type RefreshTokenRecord,
  type SigningKeyRecord,
  type StoredSecret,
  type SealedColumn,
  type SealedValueRow,
  type StorageTx,
  type WebSessionRecord,
} from '../storage.js';
import {
  NODE_COLUMNS,
  NODE_SUMMARY_COLUMNS,
  REQUEST_COLUMNS,
  auditFromRow,
  blockedFromRow,
  certificateFromRow,
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
import { isUniqueViolation } from './errors.js';
import { POSTGRES_SEARCH_COLUMNS, prefixRange } from '../prefix-range.js';

/** The first key of the two-key advisory locks of cross-row rules; the second is hashtext(value). */
const LOCK_BUCKET = 1;
const LOCK_SUBJECT = 2;
const LOCK_SIGNING_KEYS = 3;

const DECIDED: NodeStatus[] = ['approved', 'denied', 'revoked'];

const SESSION_UPDATE_COLUMNS = ['last_seen_at', 'expires_at', 'login', 'sub', 'email', 'name', 'claims', 'is_admin', 'signed_in_at', 'idp_refresh_token'];
const SESSION_COLUMNS = ['id_hash', 'created_at', ...SESSION_UPDATE_COLUMNS];
const GRANT_UPDATE_COLUMNS = ['claims', 'email', 'idp_refresh_token', 'refreshed_at', 'expires_at', 'revoked_at', 'revoked_reason'];
const GRANT_COLUMNS = ['id', 'client_id', 'sub', 'created_at', ...GRANT_UPDATE_COLUMNS];

/** The values of a row's columns in the given order, for $1, $2, … */
function valuesOf(row: object, cols: readonly string[]): unknown[] {
  const r = row as Record<string, unknown>; // why: rows are interfaces of known columns, read by name here
  return cols.map((c) => r[c]);
}

const placeholders = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ');
const setList = (cols: readonly string[], from = 1) => cols.map((c, i) => `${c} = $${i + from}`).join(', ');

const INSERT_NODE = `INSERT INTO nodes (${NODE_COLUMNS.join(', ')}) VALUES (${placeholders(NODE_COLUMNS.length)})`;
const NODE_SET = NODE_COLUMNS.filter((c) => c !== 'id');
const UPDATE_NODE = `UPDATE nodes SET ${setList(NODE_SET, 2)} WHERE id = $1`;
const INSERT_REQUEST = `INSERT INTO device_requests (${REQUEST_COLUMNS.join(', ')}) VALUES (${placeholders(REQUEST_COLUMNS.length)}) RETURNING id`;
const UPDATE_REQUEST = `UPDATE device_requests SET ${setList(REQUEST_COLUMNS, 2)} WHERE id = $1`;
const INSERT_SESSION = `INSERT INTO web_sessions (${SESSION_COLUMNS.join(', ')}) VALUES (${placeholders(SESSION_COLUMNS.length)})`;
const UPDATE_SESSION = `UPDATE web_sessions SET ${setList(SESSION_UPDATE_COLUMNS, 2)} WHERE id_hash = $1`;
const INSERT_GRANT = `INSERT INTO operator_grants (${GRANT_COLUMNS.join(', ')}) VALUES (${placeholders(GRANT_COLUMNS.length)})`;
const UPDATE_GRANT = `UPDATE operator_grants SET ${setList(GRANT_UPDATE_COLUMNS, 2)} WHERE id = $1`;

/** Bound values of a statement assembled from fixed fragments: add() gives the next $n. */
class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

function nodeWhere(filter: NodeFilter, p: Params): string {
  const where: string[] = [];
  const live = (at: number) =>
    `EXISTS (SELECT 1 FROM device_requests r WHERE r.node_id = nodes.id AND r.status = 'pending' AND r.expires_at >= ${p.add(at)})`;
  if (filter.status !== undefined) where.push(`status = ${p.add(filter.status)}`);
  if (filter.decided) where.push(`status IN (${DECIDED.map((s) => `'${s}'`).join(', ')})`);
  if (filter.awaitingDecisionAt !== undefined) where.push(`((status = 'pending' AND requested_at IS NOT NULL) OR ${live(filter.awaitingDecisionAt)})`);
  if (filter.askingAt !== undefined) where.push(live(filter.askingAt));
  if (filter.registered) where.push("status = 'pending' AND requested_at IS NULL");
  if (filter.prefix !== undefined) {
    // one index range per column (server/storage/prefix-range.ts), combined by a BitmapOr
    const { from, to } = prefixRange(filter.prefix);
    const [f, t] = [p.add(from), p.add(to)];
    where.push(`(${POSTGRES_SEARCH_COLUMNS.map((c) => `(${c} >= ${f} AND ${c} < ${t})`).join(' OR ')})`);
  }
  return where.length ? where.join(' AND ') : 'true';
}

function certificateWhere(filter: CertificateFilter, p: Params): string {
  const where: string[] = [];
  if (filter.activeAt !== undefined) where.push(`expires_at > ${p.add(filter.activeAt)}`);
  if (filter.subject !== undefined) where.push(`subject = ${p.add(filter.subject)}`);
  return where.length ? where.join(' AND ') : 'true';
}

/** The poll fields as columns, each with its value. */
function pollColumns(fields: DevicePollFields): [string, unknown][] {
  const out: [string, unknown][] = [];
  if ('intervalMs' in fields) out.push(['interval_ms', fields.intervalMs]);
  if ('lastPollAt' in fields) out.push(['last_poll_at', fields.lastPollAt ?? null]);
  if ('nextPollAt' in fields) out.push(['next_poll_at', fields.nextPollAt ?? null]);
  if ('lastPollBasic' in fields) out.push(['last_poll_basic', fields.lastPollBasic ?? false]);
  if ('lastAnswer' in fields) out.push(['last_answer', fields.lastAnswer ?? null]);
  return out;
}

/** Every operation of the interface over one way of running statements (the pool, or a transaction's client). */
export abstract class PgView implements StorageTx {
  /** Runs one statement: on the pool (autocommit), or on the transaction's client. */
  protected abstract query<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
  /** fn atomically: on the pool a transaction of its own (run again on a serialization failure), in a transaction inline. */
  protected abstract atomically<T>(fn: (tx: PgView) => Promise<T>): Promise<T>;
  /** In a transaction, the advisory locks of cross-row rules hold until commit; alone they would end with the statement. */
  protected abstract readonly inTransaction: boolean;
  /** Seals and opens the sealed columns (rows.ts). */
  protected abstract readonly cipher: RowCipher;
  abstract transaction<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T>;

  private async rows<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    return (await this.query<R>(text, values)).rows;
  }

  private async first<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<R | undefined> {
    return (await this.query<R>(text, values)).rows[0];
  }

  private async count(text: string, values?: unknown[]): Promise<number> {
    return (await this.query(text, values)).rowCount ?? 0;
  }

  /** Runs an insert, turning a unique key taken into AlreadyExistsError. */
  private async insert<R extends QueryResultRow>(what: string, text: string, values: unknown[]): Promise<QueryResult<R>> {
    try {
      return await this.query<R>(text, values);
    } catch (e) {
      if (isUniqueViolation(e)) throw new AlreadyExistsError(what);
      throw e;
    }
  }

  /** Takes a transaction-level advisory lock (shared or exclusive) on one value of a kind; a no-op outside a transaction. */
  private async lock(kind: number, value: string, shared: boolean): Promise<void> {
    if (!this.inTransaction) return;
    // its own statement: a READ COMMITTED statement reads the snapshot taken as it starts, so the read
    // that the lock protects must start after the lock is granted (docs 13.2.1)
    await this.query(`SELECT ${shared ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock'}($1::int, hashtext($2))`, [kind, value]);
  }

  async createNode(node: NodeRecord): Promise<NodeRecord> {
    await this.insert(`node ${node.id}`, INSERT_NODE, valuesOf(nodeToRow(node, this.cipher), NODE_COLUMNS));
    return node;
  }

  async getNode(id: string): Promise<NodeRecord | undefined> {
    const row = await this.first<NodeRow>('SELECT * FROM nodes WHERE id = $1', [id]);
    return row && nodeFromRow(row, this.cipher);
  }

  async listNodes(filter: NodeFilter, page: NodePage): Promise<NodeSummary[]> {
    const p = new Params();
    const where = nodeWhere(filter, p);
    // a row value, so the (created_at, id) index is read from the cursor on (docs 9.24.5, "Row Constructor Comparison")
    const after = page.after ? ` AND (created_at, id) < (${p.add(page.after.createdAt)}, ${p.add(page.after.id)})` : '';
    const rows = await this.rows<Omit<NodeRow, 'config'>>(
      `SELECT ${NODE_SUMMARY_COLUMNS.join(', ')} FROM nodes WHERE ${where}${after} ORDER BY created_at DESC, id DESC LIMIT ${p.add(page.limit)}`,
      p.values,
    );
    return rows.map((r) => summaryFromRow(r, this.cipher));
  }

  async countNodes(filter: NodeFilter): Promise<number> {
    const p = new Params();
    const row = await this.first<{ n: number }>(`SELECT COUNT(*) AS n FROM nodes WHERE ${nodeWhere(filter, p)}`, p.values);
    return row?.n ?? 0;
  }

  async countNodesByStatus(): Promise<Record<NodeStatus, number>> {
    const out: Record<NodeStatus, number> = { pending: 0, approved: 0, denied: 0, revoked: 0 };
    for (const r of await this.rows<{ status: NodeStatus; n: number }>('SELECT status, COUNT(*) AS n FROM nodes GROUP BY status')) out[r.status] = r.n;
    return out;
  }

  updateNode(id: string, updater: (old: NodeRecord) => NodeRecord): Promise<NodeRecord> {
    return this.atomically(async (tx) => {
      const row = await tx.first<NodeRow>('SELECT * FROM nodes WHERE id = $1 FOR UPDATE', [id]);
      if (!row) throw new NotFoundError(`node ${id}`);
      const next = { ...updater(nodeFromRow(row, this.cipher)), id };
      await tx.query(UPDATE_NODE, [id, ...valuesOf(nodeToRow(next, this.cipher), NODE_SET)]);
      return next;
    });
  }

  async recordConfigDownload(id: string, at: number, ip: string): Promise<void> {
    const n = await this.count('UPDATE nodes SET config_downloads = config_downloads + 1, last_download_at = $2, last_download_ip = $3 WHERE id = $1', [id, at, ip]);
    if (n === 0) throw new NotFoundError(`node ${id}`);
  }

  async deleteNode(id: string): Promise<boolean> {
    return (await this.count('DELETE FROM nodes WHERE id = $1', [id])) === 1;
  }

  deleteAbandonedNodes(askedBefore: number, now: number, limit: number): Promise<number> {
    // SKIP LOCKED: a node whose row a request holds right now is asking, so not abandoned; the GC
    // never waits behind a boot (docs: SELECT, "The Locking Clause")
    return this.count(
      `DELETE FROM nodes WHERE id IN (
         SELECT id FROM nodes
         WHERE status = 'pending' AND decided_at IS NULL AND profile IS NULL AND NOT auto_approve AND requested_at < $1
           AND NOT EXISTS (SELECT 1 FROM device_requests r WHERE r.node_id = nodes.id AND r.expires_at >= $2)
         LIMIT $3 FOR UPDATE SKIP LOCKED)`,
      [askedBefore, now, limit],
    );
  }

  async createDeviceRequest(req: NewDeviceRequest): Promise<DeviceRequestRecord> {
    const full = newRequestRecord(req);
    const res = await this.insert<{ id: number }>('device request code', INSERT_REQUEST, valuesOf(requestToRow(full), REQUEST_COLUMNS));
    return { ...full, id: (res.rows[0] as { id: number }).id };
  }

  async getDeviceRequest(id: number): Promise<DeviceRequestRecord | undefined> {
    const row = await this.first<DeviceRequestRow>('SELECT * FROM device_requests WHERE id = $1', [id]);
    return row && requestFromRow(row);
  }

  async getDeviceRequestByCodeHash(hash: string): Promise<DeviceRequestRecord | undefined> {
    const row = await this.first<DeviceRequestRow>('SELECT * FROM device_requests WHERE device_code_hash = $1', [hash]);
    return row && requestFromRow(row);
  }

  async getDeviceRequestByUserCode(userCode: string): Promise<DeviceRequestRecord | undefined> {
    const row = await this.first<DeviceRequestRow>('SELECT * FROM device_requests WHERE user_code = $1', [userCode]);
    return row && requestFromRow(row);
  }

  async listDeviceRequests(filter: { nodeId?: string; nodeIds?: string[]; status?: DeviceRequestStatus }): Promise<DeviceRequestRecord[]> {
    const p = new Params();
    const where: string[] = [];
    if (filter.nodeId !== undefined) where.push(`node_id = ${p.add(filter.nodeId)}`);
    // one bound array, so the statement is the same for any number of ids
    if (filter.nodeIds !== undefined) where.push(`node_id = ANY(${p.add(filter.nodeIds)}::text[])`);
    if (filter.status !== undefined) where.push(`status = ${p.add(filter.status)}`);
    const rows = await this.rows<DeviceRequestRow>(`SELECT * FROM device_requests ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id`, p.values);
    return rows.map(requestFromRow);
  }

  pruneDeviceRequests(nodeId: string, keep: number, finishedBefore: number): Promise<number> {
    return this.count(
      `DELETE FROM device_requests
       WHERE node_id = $1
         AND (status = 'denied' OR (status IN ('pending', 'approved') AND expires_at < $3))
         AND id NOT IN (SELECT id FROM device_requests WHERE node_id = $1 ORDER BY id DESC LIMIT $2)`,
      [nodeId, keep, finishedBefore],
    );
  }

  updateDeviceRequest(id: number, updater: (old: DeviceRequestRecord) => DeviceRequestRecord): Promise<DeviceRequestRecord> {
    return this.atomically(async (tx) => {
      const row = await tx.first<DeviceRequestRow>('SELECT * FROM device_requests WHERE id = $1 FOR UPDATE', [id]);
      if (!row) throw new NotFoundError(`device request ${id}`);
      const next = { ...updater(requestFromRow(row)), id };
      await tx.query(UPDATE_REQUEST, [id, ...valuesOf(requestToRow(next), REQUEST_COLUMNS)]);
      return next;
    });
  }

  async recordPoll(id: number, fields: DevicePollFields): Promise<void> {
    const cols = pollColumns(fields);
    // only the columns given, so a poll never writes back what another poll changed meanwhile
    const text = cols.length
      ? `UPDATE device_requests SET ${cols.map(([c], i) => `${c} = $${i + 2}`).join(', ')} WHERE id = $1`
      : 'UPDATE device_requests SET id = id WHERE id = $1';
    if ((await this.count(text, [id, ...cols.map(([, v]) => v)])) === 0) throw new NotFoundError(`device request ${id}`);
  }

  async countPendingDeviceRequestsInBucket(bucket: string, now: number): Promise<number> {
    // held until commit: the request this count admits is stored before the next one counts
    await this.lock(LOCK_BUCKET, bucket, false);
    const row = await this.first<{ n: number }>(
      "SELECT COUNT(*) AS n FROM device_requests WHERE source_bucket = $1 AND status = 'pending' AND expires_at > $2",
      [bucket, now],
    );
    return row?.n ?? 0;
  }

  async countDeviceRequestsByStatus(): Promise<Record<DeviceRequestStatus, number>> {
    const out: Record<DeviceRequestStatus, number> = { pending: 0, approved: 0, denied: 0, consumed: 0 };
    for (const r of await this.rows<{ status: DeviceRequestStatus; n: number }>('SELECT status, COUNT(*) AS n FROM device_requests GROUP BY status')) {
      out[r.status] = r.n;
    }
    return out;
  }

  async waitingNodeRequests(now: number): Promise<{ count: number; oldestAt: number | null }> {
    const r = await this.first<{ n: number; oldest: number | null }>(
      "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM device_requests WHERE status = 'pending' AND kind = 'node' AND expires_at >= $1",
      [now],
    );
    return { count: Number(r?.n ?? 0), oldestAt: r?.oldest === null || r?.oldest === undefined ? null : Number(r.oldest) };
  }

  async createNodeToken(token: NodeTokenRecord): Promise<NodeTokenRecord> {
    await this.insert(
      `token for device request ${token.deviceRequestId}`,
      'INSERT INTO node_tokens (token_hash, node_id, device_request_id, issued_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)',
      [token.tokenHash, token.nodeId, token.deviceRequestId, token.issuedAt, token.expiresAt, token.revokedAt],
    );
    return token;
  }

  async getNodeToken(hash: string): Promise<NodeTokenRecord | undefined> {
    const row = await this.first<NodeTokenRow>('SELECT * FROM node_tokens WHERE token_hash = $1', [hash]);
    return row && tokenFromRow(row);
  }

  revokeNodeTokens(nodeId: string, at: number): Promise<number> {
    return this.count('UPDATE node_tokens SET revoked_at = $2 WHERE node_id = $1 AND revoked_at IS NULL', [nodeId, at]);
  }

  async addAuditEvent(event: NewAuditEvent): Promise<AuditEvent> {
    const row = await this.first<{ id: number }>(
      'INSERT INTO audit_events (at, type, actor, subject, ip, detail) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id',
      [event.at, event.type, event.actor, event.subject, event.ip, JSON.stringify(event.detail)],
    );
    return { ...event, id: (row as { id: number }).id };
  }

  async listAuditEvents(opts: AuditRange & AuditFilter): Promise<AuditEvent[]> {
    // the columns are ours, the values bound; (type, id) and (actor, id) indexes (migration 008) serve
    // the order, the primary key's range a subject's window
    const fields = (['type', 'subject', 'actor'] as const).filter((key) => opts[key] !== undefined);
    const where = fields.map((column, i) => `${column} = $${i + 4} AND `).join('');
    const rows = await this.rows<AuditRow>(`SELECT * FROM audit_events WHERE ${where}id < $1 AND id > $3 ORDER BY id DESC LIMIT $2`, [
      opts.beforeId ?? Number.MAX_SAFE_INTEGER,
      opts.limit,
      opts.afterId ?? 0,
      ...fields.map((key) => opts[key]),
    ]);
    return rows.map(auditFromRow);
  }

  async countAuditEvents(types: string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = Object.fromEntries(types.map((t) => [t, 0]));
    if (types.length === 0) return out;
    for (const r of await this.rows<{ type: string; n: number }>('SELECT type, COUNT(*) AS n FROM audit_events WHERE type = ANY($1::text[]) GROUP BY type', [types])) {
      out[r.type] = r.n;
    }
    return out;
  }

  async addCertificate(cert: NewCertificate): Promise<CertificateRecord> {
    const res = await this.insert<{ id: number }>(
      `certificate ${cert.serial}`,
      `INSERT INTO certificates (serial, fingerprint, subject, email, common_name, issuer, roles, issued_at, expires_at, client_ip, source)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
      [cert.serial, cert.fingerprint, cert.subject, cert.email, cert.commonName, cert.issuer, JSON.stringify(cert.roles), cert.issuedAt, cert.expiresAt, cert.clientIp, cert.source],
    );
    return { ...cert, id: (res.rows[0] as { id: number }).id };
  }

  async listCertificates(filter: CertificateFilter, page: { limit: number; beforeId?: number }): Promise<CertificateRecord[]> {
    const p = new Params();
    const where = certificateWhere(filter, p);
    const rows = await this.rows<CertificateRow>(
      `SELECT * FROM certificates WHERE ${where} AND id < ${p.add(page.beforeId ?? Number.MAX_SAFE_INTEGER)} ORDER BY id DESC LIMIT ${p.add(page.limit)}`,
      p.values,
    );
    return rows.map(certificateFromRow);
  }

  async countCertificates(filter: CertificateFilter): Promise<number> {
    const p = new Params();
    const row = await this.first<{ n: number }>(`SELECT COUNT(*) AS n FROM certificates WHERE ${certificateWhere(filter, p)}`, p.values);
    return row?.n ?? 0;
  }

  blockSubject(b: BlockedSubject): Promise<{ added: boolean; webSessions: number; operatorLogins: number }> {
    return this.atomically(async (tx) => {
      // exclusive: waits for exchanges of this subject that checked the block list, and holds off new ones
      await tx.lock(LOCK_SUBJECT, b.subject, false);
      const added = await tx.count('INSERT INTO blocked_subjects (subject, blocked_at, blocked_by, reason) VALUES ($1, $2, $3, $4) ON CONFLICT (subject) DO NOTHING', [
        b.subject,
        b.blockedAt,
        b.blockedBy,
        b.reason,
      ]);
      const webSessions = await tx.count('DELETE FROM web_sessions WHERE sub = $1', [b.subject]);
      const operatorLogins = await tx.count("UPDATE operator_grants SET revoked_at = $2, revoked_reason = 'subject blocked' WHERE sub = $1 AND revoked_at IS NULL", [
        b.subject,
        b.blockedAt,
      ]);
      return { added: added === 1, webSessions, operatorLogins };
    });
  }

  async unblockSubject(subject: string): Promise<boolean> {
    return (await this.count('DELETE FROM blocked_subjects WHERE subject = $1', [subject])) === 1;
  }

  async getBlockedSubject(subject: string): Promise<BlockedSubject | undefined> {
    // shared: exchanges of one subject do not wait for each other, only for a block being written
    await this.lock(LOCK_SUBJECT, subject, true);
    const row = await this.first<BlockedRow>('SELECT * FROM blocked_subjects WHERE subject = $1', [subject]);
    return row && blockedFromRow(row);
  }

  async listBlockedSubjects(): Promise<BlockedSubject[]> {
    return (await this.rows<BlockedRow>('SELECT * FROM blocked_subjects ORDER BY blocked_at DESC')).map(blockedFromRow);
  }

  async createWebSession(s: WebSessionRecord): Promise<WebSessionRecord> {
    await this.insert('web session', INSERT_SESSION, valuesOf(sessionToRow(s, this.cipher), SESSION_COLUMNS));
    return s;
  }

  async getWebSession(idHash: string): Promise<WebSessionRecord | undefined> {
    const row = await this.first<WebSessionRow>('SELECT * FROM web_sessions WHERE id_hash = $1', [idHash]);
    return row && sessionFromRow(row, this.cipher);
  }

  updateWebSession(idHash: string, updater: (old: WebSessionRecord) => WebSessionRecord): Promise<WebSessionRecord> {
    return this.atomically(async (tx) => {
      const row = await tx.first<WebSessionRow>('SELECT * FROM web_sessions WHERE id_hash = $1 FOR UPDATE', [idHash]);
      if (!row) throw new NotFoundError('web session');
      const next = { ...updater(sessionFromRow(row, this.cipher)), idHash };
      await tx.query(UPDATE_SESSION, [idHash, ...valuesOf(sessionToRow(next, this.cipher), SESSION_UPDATE_COLUMNS)]);
      return next;
    });
  }

  async deleteWebSession(idHash: string): Promise<void> {
    await this.query('DELETE FROM web_sessions WHERE id_hash = $1', [idHash]);
  }

  async createOperatorGrant(g: OperatorGrantRecord): Promise<OperatorGrantRecord> {
    await this.insert(`operator grant ${g.id}`, INSERT_GRANT, valuesOf(grantToRow(g, this.cipher), GRANT_COLUMNS));
    return g;
  }

  async getOperatorGrant(id: string): Promise<OperatorGrantRecord | undefined> {
    const row = await this.first<GrantRow>('SELECT * FROM operator_grants WHERE id = $1', [id]);
    return row && grantFromRow(row, this.cipher);
  }

  updateOperatorGrant(id: string, updater: (old: OperatorGrantRecord) => OperatorGrantRecord): Promise<OperatorGrantRecord> {
    return this.atomically(async (tx) => {
      const row = await tx.first<GrantRow>('SELECT * FROM operator_grants WHERE id = $1 FOR UPDATE', [id]);
      if (!row) throw new NotFoundError(`operator grant ${id}`);
      const next = { ...updater(grantFromRow(row, this.cipher)), id };
      await tx.query(UPDATE_GRANT, [id, ...valuesOf(grantToRow(next, this.cipher), GRANT_UPDATE_COLUMNS)]);
      return next;
    });
  }

  async createRefreshToken(t: RefreshTokenRecord): Promise<RefreshTokenRecord> {
    await this.insert('refresh token', 'INSERT INTO refresh_tokens (token_hash, grant_id, issued_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5)', [
      t.tokenHash,
      t.grantId,
      t.issuedAt,
      t.expiresAt,
      t.usedAt,
    ]);
    return t;
  }

  async getRefreshToken(hash: string): Promise<RefreshTokenRecord | undefined> {
    const row = await this.first<RefreshRow>('SELECT * FROM refresh_tokens WHERE token_hash = $1', [hash]);
    return row && refreshFromRow(row);
  }

  async useRefreshToken(hash: string, at: number): Promise<boolean> {
    // one statement: of two instances using the same token at once, one row update wins, the other
    // finds used_at set once the first commits and counts 0 rows (docs 13.2.1 on UPDATE under READ COMMITTED)
    return (await this.count('UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL', [hash, at])) === 1;
  }

  async releaseRefreshToken(hash: string): Promise<void> {
    await this.query('UPDATE refresh_tokens SET used_at = NULL WHERE token_hash = $1', [hash]);
  }

  async instanceSecret(name: string, value: Buffer, at: number): Promise<StoredSecret> {
    // of two instances inserting at once, the second waits for the first's commit and does nothing
    // (docs: INSERT, "ON CONFLICT Clause"); the read is a statement of its own, so it sees the winner
    await this.query('INSERT INTO instance_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING', [name, sealInstanceSecret(this.cipher, name, value), at]);
    const row = await this.first<{ name: string; value: string; created_at: number }>('SELECT name, value, created_at FROM instance_secrets WHERE name = $1', [name]);
    if (!row) throw new NotFoundError(`instance secret ${name}`);
    return { name: row.name, value: openInstanceSecret(this.cipher, name, row.value), createdAt: row.created_at };
  }

  async replaceInstanceSecret(name: string, expected: Buffer, value: Buffer, at: number): Promise<boolean> {
    // sealing is randomized: the value is compared opened, then replaced only if still the sealed text read
    const row = await this.first<{ value: string }>('SELECT value FROM instance_secrets WHERE name = $1', [name]);
    if (!row || !openInstanceSecret(this.cipher, name, row.value).equals(expected)) return false;
    const sealed = sealInstanceSecret(this.cipher, name, value);
    return (await this.count('UPDATE instance_secrets SET value = $3, created_at = $4 WHERE name = $1 AND value = $2', [name, row.value, sealed, at])) === 1;
  }

  async listSigningKeys(): Promise<SigningKeyRecord[]> {
    const rows = await this.rows<{ kid: string; private_key: string; created_at: number; activates_at: number }>(
      'SELECT kid, private_key, created_at, activates_at FROM gate_signing_keys ORDER BY created_at, kid',
    );
    return rows.map((r) => ({ kid: r.kid, privateKey: openSigningKey(this.cipher, r.kid, r.private_key), createdAt: r.created_at, activatesAt: r.activates_at }));
  }

  addSigningKey(key: SigningKeyRecord, unlessCreatedAfter: number): Promise<boolean> {
    return this.atomically(async (tx) => {
      // two instances rotating at once: the second waits here, then sees the first's key
      await tx.lock(LOCK_SIGNING_KEYS, 'rotation', false);
      const newest = await tx.first<{ newest: number | null }>('SELECT MAX(created_at) AS newest FROM gate_signing_keys');
      if (newest?.newest != null && newest.newest > unlessCreatedAfter) return false;
      await tx.insert(`signing key ${key.kid}`, 'INSERT INTO gate_signing_keys (kid, private_key, created_at, activates_at) VALUES ($1, $2, $3, $4)', [
        key.kid,
        sealSigningKey(this.cipher, key.kid, key.privateKey),
        key.createdAt,
        key.activatesAt,
      ]);
      return true;
    });
  }

  async deleteSigningKey(kid: string): Promise<boolean> {
    return (await this.count('DELETE FROM gate_signing_keys WHERE kid = $1', [kid])) === 1;
  }

  async addCodeEntryFailure(keys: string[], at: number): Promise<void> {
    if (keys.length === 0) return;
    await this.query('INSERT INTO code_entry_failures (key, at) SELECT k, $2 FROM unnest($1::text[]) AS k', [keys, at]);
  }

  async countCodeEntryFailures(key: string, since: number): Promise<number> {
    return (await this.first<{ n: number }>('SELECT COUNT(*) AS n FROM code_entry_failures WHERE key = $1 AND at > $2', [key, since]))?.n ?? 0;
  }

  async oldestCodeEntryFailure(key: string, since: number): Promise<number | undefined> {
    const row = await this.first<{ oldest: number | null }>('SELECT MIN(at) AS oldest FROM code_entry_failures WHERE key = $1 AND at > $2', [key, since]);
    return row?.oldest ?? undefined;
  }

  garbageCollect(now: number, limit?: number): Promise<{ deviceRequests: number; nodeTokens: number; webSessions: number }> {
    // LIMIT NULL is no limit (docs: SELECT, "LIMIT Clause")
    const n = limit ?? null;
    return this.atomically(async (tx) => {
      const nodeTokens = await tx.count('DELETE FROM node_tokens WHERE token_hash IN (SELECT token_hash FROM node_tokens WHERE expires_at < $1 LIMIT $2)', [now, n]);
      // consumed requests stay while their token refers to them; the token's expiry removes both
      const expired = await tx.count(
        "DELETE FROM device_requests WHERE id IN (SELECT id FROM device_requests WHERE expires_at < $1 AND status <> 'consumed' LIMIT $2)",
        [now, n],
      );
      const consumed = await tx.count(
        `DELETE FROM device_requests WHERE id IN (
           SELECT id FROM device_requests r WHERE status = 'consumed' AND expires_at < $1
             AND NOT EXISTS (SELECT 1 FROM node_tokens t WHERE t.device_request_id = r.id) LIMIT $2)`,
        [now, n],
      );
      const webSessions = await tx.count('DELETE FROM web_sessions WHERE id_hash IN (SELECT id_hash FROM web_sessions WHERE expires_at < $1 LIMIT $2)', [now, n]);
      await tx.count('DELETE FROM operator_grants WHERE id IN (SELECT id FROM operator_grants WHERE expires_at < $1 LIMIT $2)', [now, n]);
      // failures older than a day no longer count towards any lockout window
      await tx.count('DELETE FROM code_entry_failures WHERE id IN (SELECT id FROM code_entry_failures WHERE at < $1 LIMIT $2)', [now - 86_400_000, n]);
      return { deviceRequests: expired + consumed, nodeTokens, webSessions };
    });
  }

  applyRetention(certsBefore: number, auditBefore: number): Promise<{ certificates: number; auditEvents: number }> {
    return this.atomically(async (tx) => ({
      certificates: await tx.count('DELETE FROM certificates WHERE expires_at < $1', [certsBefore]),
      auditEvents: await tx.count('DELETE FROM audit_events WHERE at < $1', [auditBefore]),
    }));
  }

  async scanSealedColumn(col: SealedColumn, afterId: string | null, limit: number, head?: number): Promise<SealedValueRow[]> {
    const { table, column, idColumn } = sealedColumn(col); // names from the fixed list only
    const p = new Params();
    const value = head === undefined ? column : `substr(${column}, 1, ${p.add(Math.max(1, Math.floor(head)))})`;
    const after = afterId === null ? '' : ` AND ${idColumn} > ${p.add(afterId)}`;
    return this.rows<SealedValueRow>(
      `SELECT ${idColumn} AS id, ${value} AS value FROM ${table} WHERE ${column} IS NOT NULL${after} ORDER BY ${idColumn} LIMIT ${p.add(limit)}`,
      p.values,
    );
  }

  async replaceSealedValue(col: SealedColumn, id: string, expected: string, next: string): Promise<boolean> {
    const { table, column, idColumn } = sealedColumn(col);
    return (await this.count(`UPDATE ${table} SET ${column} = $1 WHERE ${idColumn} = $2 AND ${column} = $3`, [next, id, expected])) === 1;
  }
}
