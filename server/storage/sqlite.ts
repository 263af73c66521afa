import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { migrationsDir } from '../paths.js';
import { migrate, readMigrations } from './migrate.js';
import {
  AlreadyExistsError,
  NotFoundError,
  newNode,
  type AuditEvent,
  type BlockedSubject,
  type CertificateFilter,
  type CertificateRecord,
  type DevicePollFields,
  type NewCertificate,
  type DeviceRequestRecord,
  type DeviceRequestStatus,
  type NewAuditEvent,
  type NewDeviceRequest,
  type NodeFilter,
  type NodePage,
  type NodeRecord,
  type NodeStatus,
  type NodeSummary,
  type NodeTokenRecord,
  type OperatorGrantRecord,
  type RefreshTokenRecord,
  type Storage,
  type WebSessionRecord,
} from './storage.js';

// Column rows as SQLite returns them; converted to records in one place each way.
interface NodeRow {
  id: string;
  uuid: string | null;
  mac: string | null;
  variables: string;
  status: NodeRecord['status'];
  profile: string | null;
  hostname: string | null;
  patches: string;
  auto_approve: number;
  auto_approve_cidrs: string;
  config: string | null;
  created_at: number;
  requested_at: number | null;
  source_ip: string | null;
  decided_at: number | null;
  decided_by: string | null;
  config_downloads: number;
  last_download_at: number | null;
  last_download_ip: string | null;
}

interface DeviceRequestRow {
  id: number;
  device_code_hash: string;
  user_code: string;
  client_id: string;
  kind: DeviceRequestRecord['kind'];
  node_id: string | null;
  variables: string;
  scope: string | null;
  audience: string | null;
  source_ip: string;
  source_bucket: string;
  created_at: number;
  expires_at: number;
  interval_ms: number;
  status: DeviceRequestStatus;
  decided_at: number | null;
  decided_by: string | null;
  last_poll_at: number | null;
  next_poll_at: number | null;
  last_poll_basic: number;
  last_answer: string | null;
  grant_id: string | null;
}

interface NodeTokenRow {
  token_hash: string;
  node_id: string;
  device_request_id: number;
  issued_at: number;
  expires_at: number;
  revoked_at: number | null;
}

interface AuditRow {
  id: number;
  at: number;
  type: string;
  actor: string | null;
  subject: string | null;
  ip: string | null;
  detail: string;
}

interface CertificateRow {
  id: number;
  serial: string;
  fingerprint: string;
  subject: string;
  email: string | null;
  common_name: string;
  issuer: string;
  roles: string;
  issued_at: number;
  expires_at: number;
  client_ip: string | null;
  source: string;
}

interface BlockedRow {
  subject: string;
  blocked_at: number;
  blocked_by: string | null;
  reason: string | null;
}

const certificateFromRow = (r: CertificateRow): CertificateRecord => ({
  id: r.id,
  serial: r.serial,
  fingerprint: r.fingerprint,
  subject: r.subject,
  email: r.email,
  commonName: r.common_name,
  issuer: r.issuer,
  roles: JSON.parse(r.roles) as string[],
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
  clientIp: r.client_ip,
  source: r.source,
});

const blockedFromRow = (r: BlockedRow): BlockedSubject => ({
  subject: r.subject,
  blockedAt: r.blocked_at,
  blockedBy: r.blocked_by,
  reason: r.reason,
});

/** WHERE clause and arguments for a node filter; fixed fragments only, values bound. */
function nodeWhere(filter: NodeFilter): { sql: string; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  const live = "EXISTS (SELECT 1 FROM device_requests r WHERE r.node_id = nodes.id AND r.status = 'pending' AND r.expires_at >= ?)";
  if (filter.status !== undefined) {
    where.push('status = ?');
    args.push(filter.status);
  }
  if (filter.decided) where.push("status <> 'pending'");
  if (filter.awaitingDecisionAt !== undefined) {
    where.push(`(status = 'pending' OR ${live})`);
    args.push(filter.awaitingDecisionAt);
  }
  if (filter.askingAt !== undefined) {
    where.push(live);
    args.push(filter.askingAt);
  }
  return { sql: where.length ? where.join(' AND ') : '1 = 1', args };
}

/** WHERE clause and arguments for a certificate filter. */
function certificateWhere(filter: CertificateFilter): { sql: string; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  if (filter.activeAt !== undefined) {
    where.push('expires_at > ?');
    args.push(filter.activeAt);
  }
  if (filter.subject !== undefined) {
    where.push('subject = ?');
    args.push(filter.subject);
  }
  return { sql: where.length ? where.join(' AND ') : '1 = 1', args };
}

interface WebSessionRow {
  id_hash: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  login: string | null;
  sub: string | null;
  email: string | null;
  name: string | null;
  claims: string | null;
  is_admin: number;
  signed_in_at: number | null;
  idp_refresh_token: string | null;
}

const sessionFromRow = (r: WebSessionRow): WebSessionRecord => ({
  idHash: r.id_hash,
  createdAt: r.created_at,
  lastSeenAt: r.last_seen_at,
  expiresAt: r.expires_at,
  login: r.login === null ? null : (JSON.parse(r.login) as WebSessionRecord['login']),
  sub: r.sub,
  email: r.email,
  name: r.name,
  claims: r.claims === null ? null : (JSON.parse(r.claims) as Record<string, unknown>),
  isAdmin: r.is_admin === 1,
  signedInAt: r.signed_in_at,
  idpRefreshToken: r.idp_refresh_token,
});

const sessionToRow = (s: WebSessionRecord): WebSessionRow => ({
  id_hash: s.idHash,
  created_at: s.createdAt,
  last_seen_at: s.lastSeenAt,
  expires_at: s.expiresAt,
  login: s.login === null ? null : JSON.stringify(s.login),
  sub: s.sub,
  email: s.email,
  name: s.name,
  claims: s.claims === null ? null : JSON.stringify(s.claims),
  is_admin: s.isAdmin ? 1 : 0,
  signed_in_at: s.signedInAt,
  idp_refresh_token: s.idpRefreshToken,
});

interface GrantRow {
  id: string;
  client_id: string;
  sub: string;
  email: string | null;
  claims: string;
  idp_refresh_token: string | null;
  created_at: number;
  refreshed_at: number | null;
  expires_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
}

const grantFromRow = (r: GrantRow): OperatorGrantRecord => ({
  id: r.id,
  clientId: r.client_id,
  sub: r.sub,
  email: r.email,
  claims: JSON.parse(r.claims) as Record<string, unknown>,
  idpRefreshToken: r.idp_refresh_token,
  createdAt: r.created_at,
  refreshedAt: r.refreshed_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  revokedReason: r.revoked_reason,
});

const grantToRow = (g: OperatorGrantRecord): GrantRow => ({
  id: g.id,
  client_id: g.clientId,
  sub: g.sub,
  email: g.email,
  claims: JSON.stringify(g.claims),
  idp_refresh_token: g.idpRefreshToken,
  created_at: g.createdAt,
  refreshed_at: g.refreshedAt,
  expires_at: g.expiresAt,
  revoked_at: g.revokedAt,
  revoked_reason: g.revokedReason,
});

interface RefreshRow {
  token_hash: string;
  grant_id: string;
  issued_at: number;
  expires_at: number;
  used_at: number | null;
}

const nodeFromRow = (r: NodeRow): NodeRecord => ({
  id: r.id,
  uuid: r.uuid,
  mac: r.mac,
  variables: JSON.parse(r.variables) as NodeRecord['variables'],
  status: r.status,
  profile: r.profile,
  hostname: r.hostname,
  patches: JSON.parse(r.patches) as NodeRecord['patches'],
  autoApprove: r.auto_approve === 1,
  autoApproveCidrs: JSON.parse(r.auto_approve_cidrs) as string[],
  config: r.config,
  createdAt: r.created_at,
  requestedAt: r.requested_at,
  sourceIp: r.source_ip,
  decidedAt: r.decided_at,
  decidedBy: r.decided_by,
  configDownloads: r.config_downloads,
  lastDownloadAt: r.last_download_at,
  lastDownloadIp: r.last_download_ip,
});

const summaryFromRow = (r: Omit<NodeRow, 'config'>): NodeSummary => {
  const { config: _config, ...summary } = nodeFromRow({ ...r, config: null });
  return summary;
};

const DECIDED: NodeStatus[] = ['approved', 'denied', 'revoked'];

const nodeToRow = (n: NodeRecord): NodeRow => ({
  id: n.id,
  uuid: n.uuid,
  mac: n.mac,
  variables: JSON.stringify(n.variables),
  status: n.status,
  profile: n.profile,
  hostname: n.hostname,
  patches: JSON.stringify(n.patches),
  auto_approve: n.autoApprove ? 1 : 0,
  auto_approve_cidrs: JSON.stringify(n.autoApproveCidrs),
  config: n.config,
  created_at: n.createdAt,
  requested_at: n.requestedAt,
  source_ip: n.sourceIp,
  decided_at: n.decidedAt,
  decided_by: n.decidedBy,
  config_downloads: n.configDownloads,
  last_download_at: n.lastDownloadAt,
  last_download_ip: n.lastDownloadIp,
});

const requestFromRow = (r: DeviceRequestRow): DeviceRequestRecord => ({
  id: r.id,
  deviceCodeHash: r.device_code_hash,
  userCode: r.user_code,
  clientId: r.client_id,
  kind: r.kind,
  nodeId: r.node_id,
  variables: JSON.parse(r.variables) as DeviceRequestRecord['variables'],
  scope: r.scope,
  audience: r.audience,
  sourceIp: r.source_ip,
  sourceBucket: r.source_bucket,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  intervalMs: r.interval_ms,
  status: r.status,
  decidedAt: r.decided_at,
  decidedBy: r.decided_by,
  lastPollAt: r.last_poll_at,
  nextPollAt: r.next_poll_at,
  lastPollBasic: r.last_poll_basic === 1,
  lastAnswer: r.last_answer,
  grantId: r.grant_id,
});

const requestToRow = (r: DeviceRequestRecord): DeviceRequestRow => ({
  id: r.id,
  device_code_hash: r.deviceCodeHash,
  user_code: r.userCode,
  client_id: r.clientId,
  kind: r.kind,
  node_id: r.nodeId,
  variables: JSON.stringify(r.variables),
  scope: r.scope,
  audience: r.audience,
  source_ip: r.sourceIp,
  source_bucket: r.sourceBucket,
  created_at: r.createdAt,
  expires_at: r.expiresAt,
  interval_ms: r.intervalMs,
  status: r.status,
  decided_at: r.decidedAt,
  decided_by: r.decidedBy,
  last_poll_at: r.lastPollAt,
  next_poll_at: r.nextPollAt,
  last_poll_basic: r.lastPollBasic ? 1 : 0,
  last_answer: r.lastAnswer,
  grant_id: r.grantId,
});

const tokenFromRow = (r: NodeTokenRow): NodeTokenRecord => ({
  tokenHash: r.token_hash,
  nodeId: r.node_id,
  deviceRequestId: r.device_request_id,
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
});

const auditFromRow = (r: AuditRow): AuditEvent => ({
  id: r.id,
  at: r.at,
  type: r.type,
  actor: r.actor,
  subject: r.subject,
  ip: r.ip,
  detail: JSON.parse(r.detail) as Record<string, unknown>,
});

function isUniqueViolation(e: unknown): boolean {
  return e instanceof Error && 'code' in e && (e as { code: string }).code.startsWith('SQLITE_CONSTRAINT');
}

function columns(row: object, skip: string[] = []): string[] {
  return Object.keys(row).filter((k) => !skip.includes(k));
}

/** Opens (creating when needed) the gate's SQLite database in WAL mode and brings its schema up to date. */
export function openSqliteStorage(file: string, opts: { migrationsDir?: string } = {}): SqliteStorage {
  if (file !== ':memory:') {
    const dir = dirname(file);
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  const db = new Database(file);
  if (file !== ':memory:') chmodSync(file, 0o600);
  db.pragma('journal_mode = WAL');
  // With WAL, NORMAL keeps every committed transaction across a crash of the process (SIGKILL);
  // only a power loss can take the last commits back. FULL would add an fsync to every commit.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db, readMigrations(opts.migrationsDir ?? migrationsDir));
  return new SqliteStorage(db);
}

const POLL_COLUMNS = ['interval_ms', 'last_poll_at', 'next_poll_at', 'last_poll_basic', 'last_answer'] as const;

interface GroupedWrite {
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class SqliteStorage implements Storage {
  private readonly nodeCols = columns(nodeToRow(newNode('', 0)));
  private readonly summaryCols = columns(nodeToRow(newNode('', 0)), ['config']).join(', ');
  private readonly requestCols = columns(requestToRow(blankRequest()), ['id']);
  private readonly stmt;

  constructor(readonly db: Database.Database) {
    this.runInTransaction = db.transaction((fn: () => unknown) => fn());
    const set = (cols: string[]) => cols.map((c) => `${c} = @${c}`).join(', ');
    const requestUpdateCols = this.requestCols;
    this.stmt = {
      insertNode: db.prepare(
        `INSERT INTO nodes (${this.nodeCols.join(', ')}) VALUES (${this.nodeCols.map((c) => `@${c}`).join(', ')})`,
      ),
      getNode: db.prepare('SELECT * FROM nodes WHERE id = ?'),
      deleteAbandonedNodes: db.prepare(
        // the conditions of the partial index nodes_abandoned, repeated so it applies; named, since
        // without statistics the planner prefers walking every pending node by status
        `DELETE FROM nodes WHERE id IN (
           SELECT id FROM nodes INDEXED BY nodes_abandoned
           WHERE status = 'pending' AND decided_at IS NULL AND profile IS NULL AND auto_approve = 0 AND requested_at < @before
             AND NOT EXISTS (SELECT 1 FROM device_requests r WHERE r.node_id = nodes.id AND r.expires_at >= @now)
           LIMIT @limit)`,
      ),
      pruneRequests: db.prepare(
        `DELETE FROM device_requests
         WHERE node_id = @node
           AND (status = 'denied' OR (status IN ('pending', 'approved') AND expires_at < @before))
           AND id NOT IN (SELECT id FROM device_requests WHERE node_id = @node ORDER BY id DESC LIMIT @keep)`,
      ),
      recordDownload: db.prepare(
        'UPDATE nodes SET config_downloads = config_downloads + 1, last_download_at = ?, last_download_ip = ? WHERE id = ?',
      ),
      updateNode: db.prepare(`UPDATE nodes SET ${set(this.nodeCols.filter((c) => c !== 'id'))} WHERE id = @id`),
      insertRequest: db.prepare(
        `INSERT INTO device_requests (${this.requestCols.join(', ')}) VALUES (${this.requestCols.map((c) => `@${c}`).join(', ')})`,
      ),
      getRequest: db.prepare('SELECT * FROM device_requests WHERE id = ?'),
      getRequestByHash: db.prepare('SELECT * FROM device_requests WHERE device_code_hash = ?'),
      getRequestByUserCode: db.prepare('SELECT * FROM device_requests WHERE user_code = ?'),
      updateRequest: db.prepare(`UPDATE device_requests SET ${set(requestUpdateCols)} WHERE id = @id`),
      recordPoll: db.prepare(
        `UPDATE device_requests SET ${POLL_COLUMNS.map((c) => `${c} = CASE WHEN @set_${c} THEN @${c} ELSE ${c} END`).join(', ')} WHERE id = @id`,
      ),
      countPendingInBucket: db.prepare(
        "SELECT COUNT(*) AS n FROM device_requests WHERE source_bucket = ? AND status = 'pending' AND expires_at > ?",
      ),
      insertToken: db.prepare(
        `INSERT INTO node_tokens (token_hash, node_id, device_request_id, issued_at, expires_at, revoked_at)
         VALUES (@token_hash, @node_id, @device_request_id, @issued_at, @expires_at, @revoked_at)`,
      ),
      getToken: db.prepare('SELECT * FROM node_tokens WHERE token_hash = ?'),
      revokeTokens: db.prepare('UPDATE node_tokens SET revoked_at = ? WHERE node_id = ? AND revoked_at IS NULL'),
      insertAudit: db.prepare(
        'INSERT INTO audit_events (at, type, actor, subject, ip, detail) VALUES (@at, @type, @actor, @subject, @ip, @detail)',
      ),
      listAudit: db.prepare('SELECT * FROM audit_events WHERE id < ? ORDER BY id DESC LIMIT ?'),
      gcRequests: db.prepare(
        // consumed requests stay while their token refers to them; the token's expiry removes both
        `DELETE FROM device_requests WHERE id IN (SELECT id FROM device_requests WHERE expires_at < ? AND status <> 'consumed' LIMIT ?)`,
      ),
      insertCertificate: db.prepare(
        `INSERT INTO certificates (serial, fingerprint, subject, email, common_name, issuer, roles, issued_at, expires_at, client_ip, source)
         VALUES (@serial, @fingerprint, @subject, @email, @common_name, @issuer, @roles, @issued_at, @expires_at, @client_ip, @source)`,
      ),
      blockSubject: db.prepare(
        'INSERT INTO blocked_subjects (subject, blocked_at, blocked_by, reason) VALUES (?, ?, ?, ?) ON CONFLICT (subject) DO NOTHING',
      ),
      unblockSubject: db.prepare('DELETE FROM blocked_subjects WHERE subject = ?'),
      deleteSessionsOfSubject: db.prepare('DELETE FROM web_sessions WHERE sub = ?'),
      revokeGrantsOfSubject: db.prepare('UPDATE operator_grants SET revoked_at = ?, revoked_reason = ? WHERE sub = ? AND revoked_at IS NULL'),
      getBlocked: db.prepare('SELECT * FROM blocked_subjects WHERE subject = ?'),
      listBlocked: db.prepare('SELECT * FROM blocked_subjects ORDER BY blocked_at DESC'),
      retainCertificates: db.prepare('DELETE FROM certificates WHERE expires_at < ?'),
      retainAudit: db.prepare('DELETE FROM audit_events WHERE at < ?'),
      insertSession: db.prepare(
        `INSERT INTO web_sessions (id_hash, created_at, last_seen_at, expires_at, login, sub, email, name, claims, is_admin, signed_in_at, idp_refresh_token)
         VALUES (@id_hash, @created_at, @last_seen_at, @expires_at, @login, @sub, @email, @name, @claims, @is_admin, @signed_in_at, @idp_refresh_token)`,
      ),
      getSession: db.prepare('SELECT * FROM web_sessions WHERE id_hash = ?'),
      updateSession: db.prepare(
        `UPDATE web_sessions SET last_seen_at = @last_seen_at, expires_at = @expires_at, login = @login, sub = @sub, email = @email,
           name = @name, claims = @claims, is_admin = @is_admin, signed_in_at = @signed_in_at, idp_refresh_token = @idp_refresh_token
         WHERE id_hash = @id_hash`,
      ),
      deleteSession: db.prepare('DELETE FROM web_sessions WHERE id_hash = ?'),
      insertGrant: db.prepare(
        `INSERT INTO operator_grants (id, client_id, sub, email, claims, idp_refresh_token, created_at, refreshed_at, expires_at, revoked_at, revoked_reason)
         VALUES (@id, @client_id, @sub, @email, @claims, @idp_refresh_token, @created_at, @refreshed_at, @expires_at, @revoked_at, @revoked_reason)`,
      ),
      getGrant: db.prepare('SELECT * FROM operator_grants WHERE id = ?'),
      updateGrant: db.prepare(
        `UPDATE operator_grants SET claims = @claims, email = @email, idp_refresh_token = @idp_refresh_token, refreshed_at = @refreshed_at,
           expires_at = @expires_at, revoked_at = @revoked_at, revoked_reason = @revoked_reason WHERE id = @id`,
      ),
      insertRefresh: db.prepare(
        'INSERT INTO refresh_tokens (token_hash, grant_id, issued_at, expires_at, used_at) VALUES (@token_hash, @grant_id, @issued_at, @expires_at, @used_at)',
      ),
      getRefresh: db.prepare('SELECT * FROM refresh_tokens WHERE token_hash = ?'),
      useRefresh: db.prepare('UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL'),
      releaseRefresh: db.prepare('UPDATE refresh_tokens SET used_at = NULL WHERE token_hash = ?'),
      gcGrants: db.prepare('DELETE FROM operator_grants WHERE rowid IN (SELECT rowid FROM operator_grants WHERE expires_at < ? LIMIT ?)'),
      insertFailure: db.prepare('INSERT INTO code_entry_failures (key, at) VALUES (?, ?)'),
      countFailures: db.prepare('SELECT COUNT(*) AS n, MIN(at) AS oldest FROM code_entry_failures WHERE key = ? AND at > ?'),
      gcSessions: db.prepare('DELETE FROM web_sessions WHERE rowid IN (SELECT rowid FROM web_sessions WHERE expires_at < ? LIMIT ?)'),
      gcFailures: db.prepare('DELETE FROM code_entry_failures WHERE rowid IN (SELECT rowid FROM code_entry_failures WHERE at < ? LIMIT ?)'),
      gcTokens: db.prepare('DELETE FROM node_tokens WHERE rowid IN (SELECT rowid FROM node_tokens WHERE expires_at < ? LIMIT ?)'),
      gcConsumed: db.prepare(
        `DELETE FROM device_requests WHERE id IN (
           SELECT id FROM device_requests WHERE status = 'consumed' AND expires_at < ?
             AND id NOT IN (SELECT device_request_id FROM node_tokens) LIMIT ?)`,
      ),
    };
  }

  // One transaction wrapper made once, taking the work as its argument: better-sqlite3 builds four
  // wrapper functions for every db.transaction(fn), which a booting rack's polls paid for every time.
  // Nested calls become savepoints, as with db.transaction.
  private readonly runInTransaction: Database.Transaction<(fn: () => unknown) => unknown>;

  transaction<T>(fn: () => T): T {
    // immediate: take the write lock at the start, so two gate processes never both read-then-write
    return this.runInTransaction.immediate(fn) as T;
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** A statement for SQL assembled from fixed fragments (values are always bound), prepared once. */
  private prepared(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  private group: GroupedWrite[] = [];

  groupedTransaction<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // setImmediate runs after the event loop has read every request that arrived in this turn
      if (this.group.length === 0) setImmediate(() => this.commitGroup());
      this.group.push({ fn, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  private commitGroup(): void {
    const group = this.group;
    this.group = [];
    if (group.length === 0) return;
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      this.transaction(() => {
        for (const write of group) {
          try {
            // nested: a savepoint, so one write's failure undoes only its own changes
            outcomes.push({ ok: true, value: this.runInTransaction(write.fn) });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
      });
    } catch (error) {
      for (const write of group) write.reject(error);
      return;
    }
    group.forEach((write, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok) write.resolve(outcome.value);
      else write.reject(outcome?.error);
    });
  }

  createNode(node: NodeRecord): NodeRecord {
    try {
      this.stmt.insertNode.run(nodeToRow(node));
    } catch (e) {
      if (isUniqueViolation(e)) throw new AlreadyExistsError(`node ${node.id}`);
      throw e;
    }
    return node;
  }

  getNode(id: string): NodeRecord | undefined {
    const row = this.stmt.getNode.get(id) as NodeRow | undefined;
    return row && nodeFromRow(row);
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
      .prepared(`SELECT ${this.summaryCols} FROM nodes WHERE ${w.sql}${after} ORDER BY created_at DESC, id DESC LIMIT ?`)
      .all(...args, page.limit) as Omit<NodeRow, 'config'>[];
    return rows.map(summaryFromRow);
  }

  countNodes(filter: NodeFilter): number {
    if (filter.decided && filter.status === undefined) {
      return DECIDED.reduce((sum, status) => sum + this.countNodes({ ...filter, status }), 0);
    }
    const w = nodeWhere(filter);
    return (this.prepared(`SELECT COUNT(*) AS n FROM nodes WHERE ${w.sql}`).get(...w.args) as { n: number }).n;
  }

  deleteAbandonedNodes(askedBefore: number, now: number, limit: number): number {
    return this.stmt.deleteAbandonedNodes.run({ before: askedBefore, now, limit }).changes;
  }

  recordConfigDownload(id: string, at: number, ip: string): void {
    if (this.stmt.recordDownload.run(at, ip, id).changes === 0) throw new NotFoundError(`node ${id}`);
  }

  countNodesByStatus(): Record<NodeRecord['status'], number> {
    const out: Record<NodeRecord['status'], number> = { pending: 0, approved: 0, denied: 0, revoked: 0 };
    for (const r of this.prepared('SELECT status, COUNT(*) AS n FROM nodes GROUP BY status').all() as { status: NodeRecord['status']; n: number }[]) {
      out[r.status] = r.n;
    }
    return out;
  }

  updateNode(id: string, updater: (old: NodeRecord) => NodeRecord): NodeRecord {
    return this.transaction(() => {
      const old = this.getNode(id);
      if (!old) throw new NotFoundError(`node ${id}`);
      const next = { ...updater(old), id };
      this.stmt.updateNode.run(nodeToRow(next));
      return next;
    });
  }

  deleteNode(id: string): boolean {
    return this.prepared('DELETE FROM nodes WHERE id = ?').run(id).changes === 1;
  }

  createDeviceRequest(req: NewDeviceRequest): DeviceRequestRecord {
    const full: DeviceRequestRecord = {
      ...req,
      id: 0,
      decidedAt: null,
      decidedBy: null,
      lastPollAt: null,
      nextPollAt: null,
      lastPollBasic: false,
      lastAnswer: null,
      grantId: null,
    };
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
    return (this.prepared(sql).all(...args) as DeviceRequestRow[]).map(requestFromRow);
  }

  updateDeviceRequest(id: number, updater: (old: DeviceRequestRecord) => DeviceRequestRecord): DeviceRequestRecord {
    return this.transaction(() => {
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
    for (const r of this.prepared('SELECT status, COUNT(*) AS n FROM device_requests GROUP BY status').all() as { status: DeviceRequestStatus; n: number }[]) {
      out[r.status] = r.n;
    }
    return out;
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
    const info = this.stmt.insertAudit.run({ ...event, detail: JSON.stringify(event.detail) });
    return { ...event, id: Number(info.lastInsertRowid) };
  }

  listAuditEvents(opts: { limit: number; beforeId?: number }): AuditEvent[] {
    const rows = this.stmt.listAudit.all(opts.beforeId ?? Number.MAX_SAFE_INTEGER, opts.limit) as AuditRow[];
    return rows.map(auditFromRow);
  }

  countAuditEvents(types: string[]): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries(types.map((t) => [t, 0]));
    if (types.length === 0) return out;
    const rows = this
      .prepared(`SELECT type, COUNT(*) AS n FROM audit_events WHERE type IN (${types.map(() => '?').join(', ')}) GROUP BY type`)
      .all(...types) as { type: string; n: number }[];
    for (const r of rows) out[r.type] = r.n;
    return out;
  }

  addCertificate(cert: NewCertificate): CertificateRecord {
    try {
      const info = this.stmt.insertCertificate.run({
        serial: cert.serial,
        fingerprint: cert.fingerprint,
        subject: cert.subject,
        email: cert.email,
        common_name: cert.commonName,
        issuer: cert.issuer,
        roles: JSON.stringify(cert.roles),
        issued_at: cert.issuedAt,
        expires_at: cert.expiresAt,
        client_ip: cert.clientIp,
        source: cert.source,
      });
      return { ...cert, id: Number(info.lastInsertRowid) };
    } catch (e) {
      if (isUniqueViolation(e)) throw new AlreadyExistsError(`certificate ${cert.serial}`);
      throw e;
    }
  }

  listCertificates(filter: CertificateFilter, page: { limit: number; beforeId?: number }): CertificateRecord[] {
    const w = certificateWhere(filter);
    const rows = this
      .prepared(`SELECT * FROM certificates WHERE ${w.sql} AND id < ? ORDER BY id DESC LIMIT ?`)
      .all(...w.args, page.beforeId ?? Number.MAX_SAFE_INTEGER, page.limit) as CertificateRow[];
    return rows.map(certificateFromRow);
  }

  countCertificates(filter: CertificateFilter): number {
    const w = certificateWhere(filter);
    return (this.prepared(`SELECT COUNT(*) AS n FROM certificates WHERE ${w.sql}`).get(...w.args) as { n: number }).n;
  }

  blockSubject(b: BlockedSubject): { added: boolean; webSessions: number; operatorLogins: number } {
    return this.transaction(() => ({
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
    return this.transaction(() => ({
      certificates: this.stmt.retainCertificates.run(certsBefore).changes,
      auditEvents: this.stmt.retainAudit.run(auditBefore).changes,
    }));
  }

  createWebSession(s: WebSessionRecord): WebSessionRecord {
    this.stmt.insertSession.run(sessionToRow(s));
    return s;
  }

  getWebSession(idHash: string): WebSessionRecord | undefined {
    const row = this.stmt.getSession.get(idHash) as WebSessionRow | undefined;
    return row && sessionFromRow(row);
  }

  updateWebSession(idHash: string, updater: (old: WebSessionRecord) => WebSessionRecord): WebSessionRecord {
    return this.transaction(() => {
      const old = this.getWebSession(idHash);
      if (!old) throw new NotFoundError('web session');
      const next = { ...updater(old), idHash };
      this.stmt.updateSession.run(sessionToRow(next));
      return next;
    });
  }

  deleteWebSession(idHash: string): void {
    this.stmt.deleteSession.run(idHash);
  }

  createOperatorGrant(g: OperatorGrantRecord): OperatorGrantRecord {
    this.stmt.insertGrant.run(grantToRow(g));
    return g;
  }

  getOperatorGrant(id: string): OperatorGrantRecord | undefined {
    const row = this.stmt.getGrant.get(id) as GrantRow | undefined;
    return row && grantFromRow(row);
  }

  updateOperatorGrant(id: string, updater: (old: OperatorGrantRecord) => OperatorGrantRecord): OperatorGrantRecord {
    return this.transaction(() => {
      const old = this.getOperatorGrant(id);
      if (!old) throw new NotFoundError(`operator grant ${id}`);
      const next = { ...updater(old), id };
      this.stmt.updateGrant.run(grantToRow(next));
      return next;
    });
  }

  createRefreshToken(t: RefreshTokenRecord): RefreshTokenRecord {
    this.stmt.insertRefresh.run({ token_hash: t.tokenHash, grant_id: t.grantId, issued_at: t.issuedAt, expires_at: t.expiresAt, used_at: t.usedAt });
    return t;
  }

  getRefreshToken(hash: string): RefreshTokenRecord | undefined {
    const r = this.stmt.getRefresh.get(hash) as RefreshRow | undefined;
    return r && { tokenHash: r.token_hash, grantId: r.grant_id, issuedAt: r.issued_at, expiresAt: r.expires_at, usedAt: r.used_at };
  }

  useRefreshToken(hash: string, at: number): boolean {
    return this.stmt.useRefresh.run(at, hash).changes === 1;
  }

  releaseRefreshToken(hash: string): void {
    this.stmt.releaseRefresh.run(hash);
  }

  addCodeEntryFailure(keys: string[], at: number): void {
    this.transaction(() => keys.forEach((k) => this.stmt.insertFailure.run(k, at)));
  }

  countCodeEntryFailures(key: string, since: number): number {
    return (this.stmt.countFailures.get(key, since) as { n: number }).n;
  }

  oldestCodeEntryFailure(key: string, since: number): number | undefined {
    return (this.stmt.countFailures.get(key, since) as { oldest: number | null }).oldest ?? undefined;
  }

  garbageCollect(now: number, limit = -1): { deviceRequests: number; nodeTokens: number; webSessions: number } {
    // LIMIT -1 is no limit in SQLite
    return this.transaction(() => {
      const nodeTokens = this.stmt.gcTokens.run(now, limit).changes;
      const deviceRequests = this.stmt.gcRequests.run(now, limit).changes + this.stmt.gcConsumed.run(now, limit).changes;
      const webSessions = this.stmt.gcSessions.run(now, limit).changes;
      this.stmt.gcGrants.run(now, limit);
      // failures older than a day no longer count towards any lockout window
      this.stmt.gcFailures.run(now - 86_400_000, limit);
      return { deviceRequests, nodeTokens, webSessions };
    });
  }

  close(): void {
    this.commitGroup(); // what was asked for before close is committed, not lost
    if (this.db.open) this.db.close();
  }
}


function blankRequest(): DeviceRequestRecord {
  return {
    id: 0,
    deviceCodeHash: '',
    userCode: '',
    clientId: '',
    kind: 'node',
    nodeId: null,
    variables: {},
    scope: null,
    audience: null,
    sourceIp: '',
    sourceBucket: '',
    createdAt: 0,
    expiresAt: 0,
    intervalMs: 0,
    status: 'pending',
    decidedAt: null,
    decidedBy: null,
    lastPollAt: null,
    nextPollAt: null,
    lastPollBasic: false,
    lastAnswer: null,
    grantId: null,
  };
}
