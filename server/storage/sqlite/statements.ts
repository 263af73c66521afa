// Every SQL statement of the SQLite backend: the fixed ones, prepared once when the database opens,
// and the WHERE clauses assembled from filters (fixed fragments only; values are always bound).
import type Database from 'better-sqlite3';
import type { CertificateFilter, NodeFilter, NodeStatus } from '../storage.js';
import { NODE_COLUMNS, REQUEST_COLUMNS } from '../rows.js';
import { prefixRange, SQLITE_SEARCH_COLUMNS } from '../prefix-range.js';

/** The columns one poll may write (recordPoll). */
export const POLL_COLUMNS = ['interval_ms', 'last_poll_at', 'next_poll_at', 'last_poll_basic', 'last_answer'] as const;

export const DECIDED: NodeStatus[] = ['approved', 'denied', 'revoked'];

const set = (cols: string[]) => cols.map((c) => `${c} = @${c}`).join(', ');

export function prepareStatements(db: Database.Database) {
  return {
    insertNode: db.prepare(
      `INSERT INTO nodes (${NODE_COLUMNS.join(', ')}) VALUES (${NODE_COLUMNS.map((c) => `@${c}`).join(', ')})`,
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
    updateNode: db.prepare(`UPDATE nodes SET ${set(NODE_COLUMNS.filter((c) => c !== 'id'))} WHERE id = @id`),
    insertRequest: db.prepare(
      `INSERT INTO device_requests (${REQUEST_COLUMNS.join(', ')}) VALUES (${REQUEST_COLUMNS.map((c) => `@${c}`).join(', ')})`,
    ),
    getRequest: db.prepare('SELECT * FROM device_requests WHERE id = ?'),
    getRequestByHash: db.prepare('SELECT * FROM device_requests WHERE device_code_hash = ?'),
    getRequestByUserCode: db.prepare('SELECT * FROM device_requests WHERE user_code = ?'),
    updateRequest: db.prepare(`UPDATE device_requests SET ${set(REQUEST_COLUMNS)} WHERE id = @id`),
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
      'INSERT INTO audit_events (at, type, actor, subject, ip, detail) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    listAudit: db.prepare('SELECT * FROM audit_events WHERE id < ? ORDER BY id DESC LIMIT ?'),
    gcRequests: db.prepare(
      // consumed requests stay while their token refers to them; the token's expiry removes both
      `DELETE FROM device_requests WHERE id IN (SELECT id FROM device_requests WHERE expires_at < ? AND status <> 'consumed' LIMIT ?)`,
    ),
    insertCertificate: db.prepare(
      `INSERT INTO certificates (serial, fingerprint, subject, email, common_name, issuer, roles, issued_at, expires_at, client_ip, source)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
    insertSecret: db.prepare('INSERT INTO instance_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING'),
    getSecret: db.prepare('SELECT name, value, created_at FROM instance_secrets WHERE name = ?'),
    replaceSecret: db.prepare('UPDATE instance_secrets SET value = ?, created_at = ? WHERE name = ? AND value = ?'),
    listSigningKeys: db.prepare('SELECT kid, private_key, created_at, activates_at FROM gate_signing_keys ORDER BY created_at, kid'),
    newestSigningKey: db.prepare('SELECT MAX(created_at) AS newest FROM gate_signing_keys'),
    insertSigningKey: db.prepare('INSERT INTO gate_signing_keys (kid, private_key, created_at, activates_at) VALUES (?, ?, ?, ?)'),
    deleteSigningKey: db.prepare('DELETE FROM gate_signing_keys WHERE kid = ?'),
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

export type Statements = ReturnType<typeof prepareStatements>;

/** Statements for SQL assembled from fixed fragments (values are always bound), each prepared once. */
export class StatementCache {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  get(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }
}

/** WHERE clause and arguments for a node filter; fixed fragments only, values bound. */
export function nodeWhere(filter: NodeFilter): { sql: string; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  const live = "EXISTS (SELECT 1 FROM device_requests r WHERE r.node_id = nodes.id AND r.status = 'pending' AND r.expires_at >= ?)";
  if (filter.status !== undefined) {
    where.push('status = ?');
    args.push(filter.status);
  }
  if (filter.decided) where.push("status <> 'pending'");
  if (filter.awaitingDecisionAt !== undefined) {
    where.push(`((status = 'pending' AND requested_at IS NOT NULL) OR ${live})`);
    args.push(filter.awaitingDecisionAt);
  }
  if (filter.askingAt !== undefined) {
    where.push(live);
    args.push(filter.askingAt);
  }
  if (filter.registered) where.push("status = 'pending' AND requested_at IS NULL");
  if (filter.prefix !== undefined) {
    // one index range per column (server/storage/prefix-range.ts); SQLite reads each range and unions them
    const { from, to } = prefixRange(filter.prefix);
    where.push(`(${SQLITE_SEARCH_COLUMNS.map((c) => `(${c} >= ? AND ${c} < ?)`).join(' OR ')})`);
    for (const _ of SQLITE_SEARCH_COLUMNS) args.push(from, to);
  }
  return { sql: where.length ? where.join(' AND ') : '1 = 1', args };
}

/** WHERE clause and arguments for a certificate filter. */
export function certificateWhere(filter: CertificateFilter): { sql: string; args: unknown[] } {
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
