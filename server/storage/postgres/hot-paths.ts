// The device flow's hot paths on PostgreSQL, each at most two network round trips (a read, then one
// write), where composing the generic operations would cost BEGIN, a locked read, the writes, the
// audit insert and COMMIT, one round trip each:
// - a poll: its read, then one conditional UPDATE; concurrent polls share both (PollBatcher below);
// - a redemption: one statement whose data-modifying CTEs consume the request, insert the token and
//   the audit event (docs 7.8.4, "Data-Modifying Statements in WITH"); a statement is atomic on its
//   own, so no BEGIN/COMMIT;
// - a config download: the token joined to its node, then one statement counting the download and
//   writing its audit event;
// - a node's /device/code: its node(s) read, then one statement that counts the bucket's pending
//   requests under the bucket's lock (migration 006's tg_bucket_admission: shared far from the
//   limit, exclusive near it), creates or updates the
//   node, inserts the request and its audit events and prunes the node's old requests;
// - the storage part of an exchange: one statement reading the block list under the subject's lock
//   (migration 004's tg_subject_blocked) and inserting the certificate and its audit events.
//
// A poll's write is optimistic instead of holding a row lock across two round trips: it carries the
// row version it decided on (the system column xmin, the id of the transaction that wrote the row
// version, docs 5.6 "System Columns") and updates only while the row still has that version. An
// UPDATE under READ COMMITTED re-checks its WHERE on the newest row version after waiting for a
// concurrent writer (docs 13.2.1), so of two instances judging the same request at once one writes
// and the other finds the version changed, reads again and decides again, on what the first wrote:
// the twin of a poll on instance A, arriving at instance B, sees A's bookkeeping.
import type { QueryResult, QueryResultRow } from 'pg';
import {
  NODE_COLUMNS,
  REQUEST_COLUMNS,
  auditFromRow,
  certificateFromRow,
  certificateToRow,
  nodeFromRow,
  nodeToRow,
  requestFromRow,
  requestToRow,
  tokenFromRow,
  type AuditRow,
  type CertificateRow,
  type DeviceRequestRow,
  type NodeRow,
  type NodeTokenRow,
  type RowCipher,
} from '../rows.js';
import {
  NotFoundError,
  type AuditEvent,
  type CertificateRecord,
  type DecisionPlan,
  type DeviceCodeAsk,
  type DeviceRequestRecord,
  type NewAuditEvent,
  type NewCertificate,
  type NodeRecord,
  type NodeTokenRecord,
  type NodeTokenWithNode,
  type PollOutcome,
} from '../storage.js';
import { isRetryable, isUniqueViolation } from './errors.js';

/** Runs one statement on the pool: its own autocommit transaction. */
export type PoolQuery = <R extends QueryResultRow>(text: string, values: unknown[]) => Promise<QueryResult<R>>;

/** Polls in one statement at most: a bound array each, so the statement's text never changes. */
const BATCH_MAX = 500;

const READ_POLLED = 'SELECT *, xmin::text AS row_version FROM device_requests WHERE device_code_hash = ANY($1::text[])';

// Every poll column is written from the decided record: the row is unchanged since it was read
// (xmin), so writing back a column the decision kept loses nothing.
const WRITE_POLLS = `UPDATE device_requests d
  SET interval_ms = u.interval_ms, last_poll_at = u.last_poll_at, next_poll_at = u.next_poll_at,
      last_poll_basic = u.last_poll_basic, last_answer = u.last_answer
  FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::boolean[], $7::text[])
    AS u(id, row_version, interval_ms, last_poll_at, next_poll_at, last_poll_basic, last_answer)
  WHERE d.id = u.id AND d.xmin::text = u.row_version
  RETURNING d.id`;

interface PolledRow extends DeviceRequestRow {
  row_version: string;
}

interface Read {
  hash: string;
  resolve: (row: PolledRow | undefined) => void;
  reject: (e: unknown) => void;
}

interface Write {
  request: DeviceRequestRecord;
  version: string;
  resolve: (written: boolean) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit for polls: the reads asked for while one read statement runs go out together as the
 * next one (`= ANY($1)`), and the writes likewise as one `UPDATE … FROM unnest(…)`. One poll alone
 * costs one read and at most one write; a burst of a rack's polls costs a few statements in all.
 */
export class PollBatcher {
  private reads: Read[] = [];
  private writes: Write[] = [];
  private reading = false;
  private writing = false;

  constructor(private readonly query: PoolQuery) {}

  async poll<T>(codeHash: string, decide: (r: DeviceRequestRecord) => PollOutcome<T>): Promise<{ request: DeviceRequestRecord; result: T } | undefined> {
    for (;;) {
      const row = await this.read(codeHash);
      if (!row) return undefined;
      const stored = requestFromRow(row);
      const { update, result } = decide(stored);
      const request = { ...stored, ...update };
      if (Object.keys(update).length === 0) return { request, result };
      // changed since read (another poll, an approval, another instance): judge it again as it is now
      if (await this.write(request, row.row_version)) return { request, result };
    }
  }

  private read(hash: string): Promise<PolledRow | undefined> {
    return new Promise((resolve, reject) => {
      this.reads.push({ hash, resolve, reject });
      void this.flushReads();
    });
  }

  private write(request: DeviceRequestRecord, version: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.writes.push({ request, version, resolve, reject });
      void this.flushWrites();
    });
  }

  private async flushReads(): Promise<void> {
    if (this.reading || this.reads.length === 0) return;
    this.reading = true;
    const batch = this.reads.splice(0, BATCH_MAX);
    try {
      const res = await this.query<PolledRow>(READ_POLLED, [[...new Set(batch.map((r) => r.hash))]]);
      const byHash = new Map(res.rows.map((r) => [r.device_code_hash, r]));
      for (const r of batch) r.resolve(byHash.get(r.hash));
    } catch (e) {
      for (const r of batch) r.reject(e);
    } finally {
      this.reading = false;
      void this.flushReads();
    }
  }

  private async flushWrites(): Promise<void> {
    if (this.writing || this.writes.length === 0) return;
    this.writing = true;
    // one write per request in a statement: of two for the same row, which one an UPDATE … FROM
    // applies is unspecified (docs: UPDATE), so the second waits for the next statement
    const batch: Write[] = [];
    const ids = new Set<number>();
    const rest: Write[] = [];
    for (const w of this.writes) {
      if (batch.length < BATCH_MAX && !ids.has(w.request.id)) {
        ids.add(w.request.id);
        batch.push(w);
      } else rest.push(w);
    }
    this.writes = rest;
    try {
      const col = <V>(f: (r: DeviceRequestRecord) => V) => batch.map((w) => f(w.request));
      const res = await this.query<{ id: number }>(WRITE_POLLS, [
        col((r) => r.id),
        batch.map((w) => w.version),
        col((r) => r.intervalMs),
        col((r) => r.lastPollAt),
        col((r) => r.nextPollAt),
        col((r) => r.lastPollBasic),
        col((r) => r.lastAnswer),
      ]);
      const written = new Set(res.rows.map((r) => r.id));
      for (const w of batch) w.resolve(written.has(w.request.id));
    } catch (e) {
      for (const w of batch) w.reject(e);
    } finally {
      this.writing = false;
      void this.flushWrites();
    }
  }
}

const REDEEM = `WITH consumed AS (
    UPDATE device_requests SET status = 'consumed' WHERE id = $1 AND status = 'approved' RETURNING id, node_id
  ), token AS (
    INSERT INTO node_tokens (token_hash, node_id, device_request_id, issued_at, expires_at, revoked_at)
    SELECT $2, node_id, id, $3, $4, NULL FROM consumed
  )
  INSERT INTO audit_events (at, type, actor, subject, ip, detail)
  SELECT $5, $6, $7, $8, $9, $10 FROM consumed
  RETURNING *`;

const auditValues = (e: NewAuditEvent) => [e.at, e.type, e.actor, e.subject, e.ip, JSON.stringify(e.detail)];

export async function redeemDeviceCode(query: PoolQuery, requestId: number, token: NodeTokenRecord, audit: NewAuditEvent): Promise<AuditEvent | undefined> {
  // the token's node is the request's own (token.nodeId is the caller's copy of it)
  const res = await query<AuditRow>(REDEEM, [requestId, token.tokenHash, token.issuedAt, token.expiresAt, ...auditValues(audit)]);
  const row = res.rows[0];
  return row && auditFromRow(row);
}

const TOKEN_COLUMNS = ['token_hash', 'node_id', 'device_request_id', 'issued_at', 'expires_at', 'revoked_at'] as const;
const TOKEN_WITH_NODE = `SELECT ${TOKEN_COLUMNS.map((c) => `t.${c} AS t_${c}`).join(', ')}, n.*
  FROM node_tokens t LEFT JOIN nodes n ON n.id = t.node_id WHERE t.token_hash = $1`;

type TokenWithNodeRow = NodeRow & { [K in (typeof TOKEN_COLUMNS)[number] as `t_${K}`]: NodeTokenRow[K] };

export async function getNodeTokenWithNode(query: PoolQuery, cipher: RowCipher, tokenHash: string): Promise<NodeTokenWithNode | undefined> {
  const row = (await query<TokenWithNodeRow>(TOKEN_WITH_NODE, [tokenHash])).rows[0];
  if (!row) return undefined;
  const token = tokenFromRow({
    token_hash: row.t_token_hash,
    node_id: row.t_node_id,
    device_request_id: row.t_device_request_id,
    issued_at: row.t_issued_at,
    expires_at: row.t_expires_at,
    revoked_at: row.t_revoked_at,
  });
  // a LEFT JOIN without a node gives its columns as NULL; id is never NULL in a row that exists
  return { token, node: (row.id as string | null) === null ? undefined : nodeFromRow(row, cipher) };
}

const DOWNLOAD = `WITH counted AS (
    UPDATE nodes SET config_downloads = config_downloads + 1, last_download_at = $2, last_download_ip = $3 WHERE id = $1 RETURNING id
  )
  INSERT INTO audit_events (at, type, actor, subject, ip, detail)
  SELECT $4, $5, $6, $7, $8, $9 FROM counted
  RETURNING *`;

export async function recordConfigDownloadAudited(query: PoolQuery, id: string, at: number, ip: string, audit: NewAuditEvent): Promise<AuditEvent> {
  const row = (await query<AuditRow>(DOWNLOAD, [id, at, ip, ...auditValues(audit)])).rows[0];
  if (!row) throw new NotFoundError(`node ${id}`);
  return auditFromRow(row);
}

const READ_NODES = 'SELECT *, xmin::text AS row_version FROM nodes WHERE id = ANY($1::text[])';

// Rows go in as JSON and come out of jsonb_populate_record typed as the table's columns, so no
// parameter needs a cast and the column lists are rows.ts's own. The sub-statements of one WITH see
// one snapshot and run in the order their references ask for (docs 7.8.4): the count (and its lock)
// before any write, the node before the request, the request before its events and the pruning.
// A node changed since it was read updates nothing (xmin), so nothing else is written either.
const ISSUE = `WITH
  lim AS (SELECT tg_bucket_admission($1::text, $2::bigint, $3::bigint, $11::boolean) AS n),
  ok AS (SELECT 1 FROM lim WHERE n >= 0 AND n < $3::bigint),
  node_new AS (
    INSERT INTO nodes (${NODE_COLUMNS.join(', ')})
    SELECT ${NODE_COLUMNS.map((c) => `r.${c}`).join(', ')} FROM ok, jsonb_populate_record(NULL::nodes, $6::jsonb) r
    WHERE $4::text IS NULL AND $5::text IS NOT NULL
    RETURNING id),
  node_set AS (
    UPDATE nodes n SET ${NODE_COLUMNS.filter((c) => c !== 'id').map((c) => `${c} = r.${c}`).join(', ')}
    FROM jsonb_populate_record(NULL::nodes, $6::jsonb) r
    WHERE n.id = $5::text AND n.xmin::text = $4::text AND EXISTS (SELECT 1 FROM ok)
    RETURNING n.id),
  -- an operator's code has no node ($5 NULL): its request needs only the count's admission
  node_done AS (SELECT id FROM node_new UNION ALL SELECT id FROM node_set UNION ALL SELECT NULL::text FROM ok WHERE $5::text IS NULL),
  req AS (
    INSERT INTO device_requests (${REQUEST_COLUMNS.join(', ')})
    SELECT ${REQUEST_COLUMNS.map((c) => `r.${c}`).join(', ')} FROM node_done, jsonb_populate_record(NULL::device_requests, $7::jsonb) r
    RETURNING id),
  events AS (
    INSERT INTO audit_events (at, type, actor, subject, ip, detail)
    SELECT e.at, e.type, e.actor, e.subject, e.ip, e.detail FROM req, jsonb_to_recordset($8::jsonb)
      AS e(at BIGINT, type TEXT, actor TEXT, subject TEXT, ip TEXT, detail TEXT)
    RETURNING *),
  pruned AS (
    -- the new request is not in this snapshot: keep one fewer of the old ones
    DELETE FROM device_requests
    WHERE node_id = $5::text AND EXISTS (SELECT 1 FROM req)
      AND (status = 'denied' OR (status IN ('pending', 'approved') AND expires_at < $9::bigint))
      AND id NOT IN (SELECT id FROM device_requests WHERE node_id = $5::text ORDER BY id DESC LIMIT $10::bigint)
    RETURNING 1)
  SELECT (SELECT n FROM lim) AS pending, (SELECT id FROM req) AS request_id,
    (SELECT COALESCE(json_agg(events ORDER BY id), '[]') FROM events) AS events`;

interface NodeVersionRow extends NodeRow {
  row_version: string;
}

/** How many times a /device/code is planned again (a node changed under it, a user code taken) before it fails. */
const ISSUE_ATTEMPTS = 8;

export async function issueDeviceCode(query: PoolQuery, cipher: RowCipher, ask: DeviceCodeAsk): Promise<{ request: DeviceRequestRecord; audit: AuditEvent[] } | 'too_many_pending'> {
  // near the bucket's limit the count needs the bucket to itself (migration 006)
  let exclusive = false;
  for (let attempt = 1; ; attempt++) {
    // an operator's code asks for no node: one round trip in all
    const rows = ask.nodeIds.length === 0 ? [] : (await query<NodeVersionRow>(READ_NODES, [ask.nodeIds])).rows;
    const byId = new Map(rows.map((r) => [r.id, r]));
    const found: (NodeRecord | undefined)[] = ask.nodeIds.map((id) => {
      const r = byId.get(id);
      return r && nodeFromRow(r, cipher);
    });
    const plan = ask.plan(found, ask.newUserCode());
    const node = plan.node;
    const version = !node || plan.created ? null : (byId.get(node.id)?.row_version ?? null);
    if (node && !plan.created && version === null) throw new Error(`storage: issueDeviceCode: the plan updates node ${node.id}, which was not read`);
    const events = plan.audit.map((e) => ({ ...e, detail: JSON.stringify(e.detail) }));
    let res: QueryResult<{ pending: number; request_id: number | null; events: AuditRow[] }>;
    try {
      res = await query(ISSUE, [
        ask.bucket,
        ask.now,
        ask.maxPending,
        version,
        node?.id ?? null,
        node ? JSON.stringify(nodeToRow(node, cipher)) : '{}',
        JSON.stringify(requestToRow(plan.request)),
        JSON.stringify(events),
        ask.finishedBefore,
        Math.max(0, ask.keepPerNode - 1),
        exclusive,
      ]);
    } catch (e) {
      // the node created meanwhile by another request (another instance), or the user code drawn is
      // taken: nothing was written; plan again on what is there now
      if (!isUniqueViolation(e) || attempt >= ISSUE_ATTEMPTS) throw e;
      continue;
    }
    const row = res.rows[0] as { pending: number; request_id: number | null; events: AuditRow[] };
    if (row.pending < 0) {
      // nothing was written: ask again, counting exclusively (not an attempt of the ones below)
      exclusive = true;
      attempt--;
      continue;
    }
    if (row.pending >= ask.maxPending) return 'too_many_pending';
    if (row.request_id !== null) {
      return { request: { ...plan.request, id: row.request_id }, audit: row.events.map(auditFromRow) };
    }
    if (attempt >= ISSUE_ATTEMPTS) throw new Error(`storage: node ${node?.id ?? '(none)'} kept changing while its device code was issued`);
  }
}

const CERT_COLUMNS = ['serial', 'fingerprint', 'subject', 'email', 'common_name', 'issuer', 'roles', 'issued_at', 'expires_at', 'client_ip', 'source'] as const;

const RECORD_CERTIFICATE = `WITH
  check_block AS (SELECT tg_subject_blocked($1::text) AS blocked),
  cert AS (
    INSERT INTO certificates (${CERT_COLUMNS.join(', ')})
    SELECT ${CERT_COLUMNS.map((c) => `r.${c}`).join(', ')} FROM check_block, jsonb_populate_record(NULL::certificates, $2::jsonb) r
    WHERE NOT check_block.blocked
    RETURNING *),
  events AS (
    INSERT INTO audit_events (at, type, actor, subject, ip, detail)
    SELECT e.at, e.type, e.actor, e.subject, e.ip, e.detail FROM cert, jsonb_to_recordset($3::jsonb)
      AS e(at BIGINT, type TEXT, actor TEXT, subject TEXT, ip TEXT, detail TEXT)
    RETURNING *)
  SELECT (SELECT blocked FROM check_block) AS blocked, (SELECT row_to_json(cert) FROM cert) AS cert,
    (SELECT COALESCE(json_agg(events ORDER BY id), '[]') FROM events) AS events`;

export async function recordCertificate(
  query: PoolQuery,
  cert: NewCertificate,
  audit: NewAuditEvent[],
): Promise<{ cert: CertificateRecord; audit: AuditEvent[] } | 'blocked'> {
  const row = certificateToRow(cert) satisfies Record<(typeof CERT_COLUMNS)[number], unknown>;
  const res = await query<{ blocked: number; cert: CertificateRow | null; events: AuditRow[] }>(RECORD_CERTIFICATE, [
    cert.subject,
    JSON.stringify(row),
    JSON.stringify(audit.map((e) => ({ ...e, detail: JSON.stringify(e.detail) }))),
  ]);
  const out = res.rows[0] as { blocked: number; cert: CertificateRow | null; events: AuditRow[] };
  // BOOLEAN comes as 1 or 0 (pool.ts)
  if (out.blocked || out.cert === null) return 'blocked';
  return { cert: certificateFromRow(out.cert), audit: out.events.map(auditFromRow) };
}

/** The node columns a decision writes (migration 009's tg_decide_node_request); a plan that changes any other is refused. */
const DECIDED_NODE_COLUMNS = new Set(['status', 'auto_approve', 'profile', 'hostname', 'patches', 'config', 'decided_at', 'decided_by']);
/** And the request's. */
const DECIDED_REQUEST_COLUMNS = new Set(['status', 'decided_at', 'decided_by']);

const READ_REQUEST_BY_ID = 'SELECT *, xmin::text AS row_version FROM device_requests WHERE id = $1';
const READ_REQUEST_BY_CODE = 'SELECT *, xmin::text AS row_version FROM device_requests WHERE user_code = $1';
const READ_NODE_OF_REQUEST_BY_ID = 'SELECT n.*, n.xmin::text AS row_version FROM nodes n WHERE n.id = (SELECT node_id FROM device_requests WHERE id = $1)';
const READ_NODE_OF_REQUEST_BY_CODE = 'SELECT n.*, n.xmin::text AS row_version FROM nodes n WHERE n.id = (SELECT node_id FROM device_requests WHERE user_code = $1)';
const DECIDE = 'SELECT tg_decide_node_request($1::bigint, $2::text, $3::jsonb, $4::text, $5::text, $6::jsonb, $7::jsonb) AS events';

/** How many times a decision is planned again (the request or node changed under it) before it fails. */
const DECIDE_ATTEMPTS = 8;

function changedColumns(before: Record<string, unknown>, after: Record<string, unknown>, allowed: Set<string>): string[] {
  return Object.keys(after).filter((c) => !allowed.has(c) && JSON.stringify(after[c]) !== JSON.stringify(before[c]));
}

export async function decideNodeRequest(
  query: PoolQuery,
  cipher: RowCipher,
  find: { requestId: number } | { userCode: string },
  plan: (request: DeviceRequestRecord, node: NodeRecord) => DecisionPlan,
): Promise<{ request: DeviceRequestRecord; node: NodeRecord; audit: AuditEvent[] } | undefined> {
  const [byRequest, byNode, key] =
    'requestId' in find ? [READ_REQUEST_BY_ID, READ_NODE_OF_REQUEST_BY_ID, find.requestId] : [READ_REQUEST_BY_CODE, READ_NODE_OF_REQUEST_BY_CODE, find.userCode];
  for (let attempt = 1; ; attempt++) {
    // the two reads go out together: one round trip's wait
    const [reqRes, nodeRes] = await Promise.all([query<PolledRow>(byRequest, [key]), query<NodeVersionRow>(byNode, [key])]);
    const reqRow = reqRes.rows[0];
    const nodeRow = nodeRes.rows[0];
    if (!reqRow || !nodeRow) return undefined;
    const stored = requestFromRow(reqRow);
    const node = nodeFromRow(nodeRow, cipher);
    const p = plan(stored, node);
    const reqAfter = requestToRow(p.request) as unknown as Record<string, unknown>;
    const nodeAfter = nodeToRow(p.node, cipher) as unknown as Record<string, unknown>;
    const stray = [
      ...changedColumns(requestToRow(stored) as unknown as Record<string, unknown>, reqAfter, DECIDED_REQUEST_COLUMNS),
      ...changedColumns(nodeToRow(node, cipher) as unknown as Record<string, unknown>, nodeAfter, DECIDED_NODE_COLUMNS),
    ];
    if (stray.length > 0 || p.node.id !== node.id || p.request.id !== stored.id) {
      throw new Error(`storage: decideNodeRequest: a decision writes only the decision's columns, not ${stray.join(', ') || 'another row'}`);
    }
    const events = p.audit.map((e) => ({ ...e, detail: JSON.stringify(e.detail) }));
    let written: AuditRow[] | null;
    try {
      const res = await query<{ events: AuditRow[] | null }>(DECIDE, [stored.id, reqRow.row_version, JSON.stringify(reqAfter), node.id, nodeRow.row_version, JSON.stringify(nodeAfter), JSON.stringify(events)]);
      written = res.rows[0]?.events ?? null;
    } catch (e) {
      // the node changed since it was read (migration 009 raises, and nothing was written)
      if (!isRetryable(e) || attempt >= DECIDE_ATTEMPTS) throw e;
      continue;
    }
    if (written !== null) return { request: p.request, node: p.node, audit: written.map(auditFromRow) };
    if (attempt >= DECIDE_ATTEMPTS) throw new Error(`storage: request ${stored.id} kept changing while it was decided`);
  }
}
