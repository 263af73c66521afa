// The SQLite backend: the async Storage interface over better-sqlite3's one synchronous connection.
// rows.ts maps rows to records, statements.ts holds the SQL, operations.ts runs it, transactions.ts
// keeps transactions apart and commits groups; this file opens the database and binds them.
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { sqliteMigrationsDir } from '../../paths.js';
import { migrate, readMigrations } from '../migrate.js';
import type { RowCipher } from '../rows.js';
import {
  AlreadyExistsError,
  type AuditEvent,
  type AuditFilter,
  type AuditRange,
  type BlockedSubject,
  type CertificateFilter,
  type CertificateRecord,
  type DecisionPlan,
  type DeviceCodeAsk,
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
  type NodeTokenWithNode,
  type OperatorGrantRecord,
  type PollOutcome,
  type RefreshTokenRecord,
  type SealedColumn,
  type SealedValueRow,
  type SigningKeyRecord,
  type Storage,
  type StoredSecret,
  type StorageTx,
  type WebSessionRecord,
} from '../storage.js';
import { SqliteOperations } from './operations.js';
import { TransactionQueue } from './transactions.js';
import { matchOutboxTriggers, SqliteWebhookOutbox } from './webhooks.js';

/** Opens (creating when needed) the gate's SQLite database in WAL mode and brings its schema up to date. */
export function openSqliteStorage(file: string, opts: { cipher: RowCipher; migrationsDir?: string }): SqliteStorage {
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
  // Every grouped write runs in a savepoint (transactions.ts), and an insert into audit_events fires
  // the webhook triggers: both keep a sub-journal of the pages they change, which SQLite spills to a
  // temporary file past 64 KiB (better-sqlite3 builds with SQLITE_TEMP_STORE=1, files by default), a
  // write system call per page from then on. A group commit of exchanges passes 64 KiB at once. In
  // memory, an exchange cost the gate 0.251 ms of CPU instead of 0.293 ms (docs/performance.md,
  // "Sub-journals in memory"). What else uses temporary storage here (sorts
  // of the admin lists, index builds in migrations) is small beside the page cache.
  db.pragma('temp_store = MEMORY');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db, readMigrations(opts.migrationsDir ?? sqliteMigrationsDir));
  matchOutboxTriggers(db);
  return new SqliteStorage(db, opts.cipher);
}

/** Every operation of the interface, each run on the operations by `run`: alone, or in a transaction. */
abstract class SqliteView implements StorageTx {
  protected abstract run<T>(op: (o: SqliteOperations) => T): Promise<T>;
  abstract transaction<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T>;

  createNode(node: NodeRecord): Promise<NodeRecord> {
    return this.run((o) => o.createNode(node));
  }

  getNode(id: string): Promise<NodeRecord | undefined> {
    return this.run((o) => o.getNode(id));
  }

  listNodes(filter: NodeFilter, page: NodePage): Promise<NodeSummary[]> {
    return this.run((o) => o.listNodes(filter, page));
  }

  countNodes(filter: NodeFilter): Promise<number> {
    return this.run((o) => o.countNodes(filter));
  }

  countNodesByStatus(): Promise<Record<NodeStatus, number>> {
    return this.run((o) => o.countNodesByStatus());
  }

  updateNode(id: string, updater: (old: NodeRecord) => NodeRecord): Promise<NodeRecord> {
    return this.run((o) => o.updateNode(id, updater));
  }

  recordConfigDownload(id: string, at: number, ip: string): Promise<void> {
    return this.run((o) => o.recordConfigDownload(id, at, ip));
  }

  deleteNode(id: string): Promise<boolean> {
    return this.run((o) => o.deleteNode(id));
  }

  deleteAbandonedNodes(askedBefore: number, now: number, limit: number): Promise<number> {
    return this.run((o) => o.deleteAbandonedNodes(askedBefore, now, limit));
  }

  createDeviceRequest(req: NewDeviceRequest): Promise<DeviceRequestRecord> {
    return this.run((o) => o.createDeviceRequest(req));
  }

  getDeviceRequest(id: number): Promise<DeviceRequestRecord | undefined> {
    return this.run((o) => o.getDeviceRequest(id));
  }

  getDeviceRequestByCodeHash(hash: string): Promise<DeviceRequestRecord | undefined> {
    return this.run((o) => o.getDeviceRequestByCodeHash(hash));
  }

  getDeviceRequestByUserCode(userCode: string): Promise<DeviceRequestRecord | undefined> {
    return this.run((o) => o.getDeviceRequestByUserCode(userCode));
  }

  listDeviceRequests(filter: { nodeId?: string; nodeIds?: string[]; status?: DeviceRequestStatus }): Promise<DeviceRequestRecord[]> {
    return this.run((o) => o.listDeviceRequests(filter));
  }

  pruneDeviceRequests(nodeId: string, keep: number, finishedBefore: number): Promise<number> {
    return this.run((o) => o.pruneDeviceRequests(nodeId, keep, finishedBefore));
  }

  updateDeviceRequest(id: number, updater: (old: DeviceRequestRecord) => DeviceRequestRecord): Promise<DeviceRequestRecord> {
    return this.run((o) => o.updateDeviceRequest(id, updater));
  }

  recordPoll(id: number, fields: DevicePollFields): Promise<void> {
    return this.run((o) => o.recordPoll(id, fields));
  }

  countPendingDeviceRequestsInBucket(bucket: string, now: number): Promise<number> {
    return this.run((o) => o.countPendingDeviceRequestsInBucket(bucket, now));
  }

  countDeviceRequestsByStatus(): Promise<Record<DeviceRequestStatus, number>> {
    return this.run((o) => o.countDeviceRequestsByStatus());
  }

  waitingNodeRequests(now: number): Promise<{ count: number; oldestAt: number | null }> {
    return this.run((o) => o.waitingNodeRequests(now));
  }

  createNodeToken(token: NodeTokenRecord): Promise<NodeTokenRecord> {
    return this.run((o) => o.createNodeToken(token));
  }

  getNodeToken(hash: string): Promise<NodeTokenRecord | undefined> {
    return this.run((o) => o.getNodeToken(hash));
  }

  revokeNodeTokens(nodeId: string, at: number): Promise<number> {
    return this.run((o) => o.revokeNodeTokens(nodeId, at));
  }

  addAuditEvent(event: NewAuditEvent): Promise<AuditEvent> {
    return this.run((o) => o.addAuditEvent(event));
  }

  listAuditEvents(opts: AuditRange & AuditFilter): Promise<AuditEvent[]> {
    return this.run((o) => o.listAuditEvents(opts));
  }

  countAuditEvents(types: string[]): Promise<Record<string, number>> {
    return this.run((o) => o.countAuditEvents(types));
  }

  addCertificate(cert: NewCertificate): Promise<CertificateRecord> {
    return this.run((o) => o.addCertificate(cert));
  }

  listCertificates(filter: CertificateFilter, page: { limit: number; beforeId?: number }): Promise<CertificateRecord[]> {
    return this.run((o) => o.listCertificates(filter, page));
  }

  countCertificates(filter: CertificateFilter): Promise<number> {
    return this.run((o) => o.countCertificates(filter));
  }

  blockSubject(b: BlockedSubject): Promise<{ added: boolean; webSessions: number; operatorLogins: number }> {
    return this.run((o) => o.blockSubject(b));
  }

  unblockSubject(subject: string): Promise<boolean> {
    return this.run((o) => o.unblockSubject(subject));
  }

  getBlockedSubject(subject: string): Promise<BlockedSubject | undefined> {
    return this.run((o) => o.getBlockedSubject(subject));
  }

  listBlockedSubjects(): Promise<BlockedSubject[]> {
    return this.run((o) => o.listBlockedSubjects());
  }

  createWebSession(s: WebSessionRecord): Promise<WebSessionRecord> {
    return this.run((o) => o.createWebSession(s));
  }

  getWebSession(idHash: string): Promise<WebSessionRecord | undefined> {
    return this.run((o) => o.getWebSession(idHash));
  }

  updateWebSession(idHash: string, updater: (old: WebSessionRecord) => WebSessionRecord): Promise<WebSessionRecord> {
    return this.run((o) => o.updateWebSession(idHash, updater));
  }

  deleteWebSession(idHash: string): Promise<void> {
    return this.run((o) => o.deleteWebSession(idHash));
  }

  createOperatorGrant(g: OperatorGrantRecord): Promise<OperatorGrantRecord> {
    return this.run((o) => o.createOperatorGrant(g));
  }

  getOperatorGrant(id: string): Promise<OperatorGrantRecord | undefined> {
    return this.run((o) => o.getOperatorGrant(id));
  }

  updateOperatorGrant(id: string, updater: (old: OperatorGrantRecord) => OperatorGrantRecord): Promise<OperatorGrantRecord> {
    return this.run((o) => o.updateOperatorGrant(id, updater));
  }

  createRefreshToken(t: RefreshTokenRecord): Promise<RefreshTokenRecord> {
    return this.run((o) => o.createRefreshToken(t));
  }

  getRefreshToken(hash: string): Promise<RefreshTokenRecord | undefined> {
    return this.run((o) => o.getRefreshToken(hash));
  }

  useRefreshToken(hash: string, at: number): Promise<boolean> {
    return this.run((o) => o.useRefreshToken(hash, at));
  }

  releaseRefreshToken(hash: string): Promise<void> {
    return this.run((o) => o.releaseRefreshToken(hash));
  }

  instanceSecret(name: string, value: Buffer, at: number): Promise<StoredSecret> {
    return this.run((o) => o.instanceSecret(name, value, at));
  }

  replaceInstanceSecret(name: string, expected: Buffer, value: Buffer, at: number): Promise<boolean> {
    return this.run((o) => o.replaceInstanceSecret(name, expected, value, at));
  }

  listSigningKeys(): Promise<SigningKeyRecord[]> {
    return this.run((o) => o.listSigningKeys());
  }

  addSigningKey(key: SigningKeyRecord, unlessCreatedAfter: number): Promise<boolean> {
    return this.run((o) => o.addSigningKey(key, unlessCreatedAfter));
  }

  deleteSigningKey(kid: string): Promise<boolean> {
    return this.run((o) => o.deleteSigningKey(kid));
  }

  addCodeEntryFailure(keys: string[], at: number): Promise<void> {
    return this.run((o) => o.addCodeEntryFailure(keys, at));
  }

  countCodeEntryFailures(key: string, since: number): Promise<number> {
    return this.run((o) => o.countCodeEntryFailures(key, since));
  }

  oldestCodeEntryFailure(key: string, since: number): Promise<number | undefined> {
    return this.run((o) => o.oldestCodeEntryFailure(key, since));
  }

  garbageCollect(now: number, limit?: number): Promise<{ deviceRequests: number; nodeTokens: number; webSessions: number }> {
    return this.run((o) => o.garbageCollect(now, limit));
  }

  applyRetention(certsBefore: number, auditBefore: number): Promise<{ certificates: number; auditEvents: number }> {
    return this.run((o) => o.applyRetention(certsBefore, auditBefore));
  }

  scanSealedColumn(column: SealedColumn, afterId: string | null, limit: number, head?: number): Promise<SealedValueRow[]> {
    return this.run((o) => o.scanSealedColumn(column, afterId, limit, head));
  }

  replaceSealedValue(column: SealedColumn, id: string, expected: string, next: string): Promise<boolean> {
    return this.run((o) => o.replaceSealedValue(column, id, expected, next));
  }
}

/** The `tx` of one transaction: its operations run at once, on the connection the transaction holds. */
class SqliteTx extends SqliteView {
  private open = true;

  constructor(
    private readonly ops: SqliteOperations,
    private readonly queue: TransactionQueue,
  ) {
    super();
  }

  protected run<T>(op: (o: SqliteOperations) => T): Promise<T> {
    // a tx kept past its transaction would write into whatever transaction holds the connection next
    if (!this.open) return Promise.reject(new Error('storage: this transaction has ended'));
    try {
      return Promise.resolve(op(this.ops));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  transaction<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T> {
    if (!this.open) return Promise.reject(new Error('storage: this transaction has ended'));
    return this.queue.savepoint(() => fn(this));
  }

  end(): void {
    this.open = false;
  }
}

export class SqliteStorage extends SqliteView implements Storage {
  readonly backend = 'sqlite';
  private readonly ops: SqliteOperations;
  private readonly queue: TransactionQueue;
  readonly webhooks: SqliteWebhookOutbox;

  constructor(
    readonly db: Database.Database,
    cipher: RowCipher,
  ) {
    super();
    this.ops = new SqliteOperations(db, cipher);
    this.queue = new TransactionQueue(db);
    this.webhooks = new SqliteWebhookOutbox(db, this.queue);
  }

  protected run<T>(op: (o: SqliteOperations) => T): Promise<T> {
    return this.queue.alone(() => op(this.ops));
  }

  transaction<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T> {
    return this.queue.transaction(() => this.bound(fn));
  }

  groupedTransaction<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T> {
    return this.queue.grouped(() => this.bound(fn));
  }

  private readonly runningJobs = new Set<string>();

  async exclusively<T>(job: string, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }> {
    if (this.runningJobs.has(job)) return { ran: false };
    this.runningJobs.add(job);
    try {
      return { ran: true, value: await fn() };
    } finally {
      this.runningJobs.delete(job);
    }
  }

  /** The database file with its write-ahead log. */
  async databaseBytes(): Promise<number> {
    if (this.db.memory) return 0;
    const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
    return size(this.db.name) + size(`${this.db.name}-wal`);
  }

  async close(): Promise<void> {
    await this.queue.commitGroup(); // what was asked for before close is committed, not lost
    if (this.db.open) this.db.close();
  }

  // The device flow's hot paths: each one grouped transaction, so a booting rack's polls, redemptions
  // and downloads share commits (transactions.ts).

  issueDeviceCode(ask: DeviceCodeAsk): Promise<{ request: DeviceRequestRecord; audit: AuditEvent[] } | 'too_many_pending'> {
    // a rack boots at once: its requests share commits
    return this.groupedTransaction(async (tx) => {
      if ((await tx.countPendingDeviceRequestsInBucket(ask.bucket, ask.now)) >= ask.maxPending) return 'too_many_pending';
      const found: (NodeRecord | undefined)[] = [];
      for (const id of ask.nodeIds) found.push(await tx.getNode(id));
      for (;;) {
        const plan = ask.plan(found, ask.newUserCode());
        try {
          // a savepoint: a user code taken undoes only this attempt
          return await tx.transaction(async (t) => {
            const node = plan.node;
            if (node && plan.created) await t.createNode(node);
            else if (node) await t.updateNode(node.id, () => node);
            const { id: _id, decidedAt, decidedBy, lastPollAt: _l, nextPollAt: _n, lastPollBasic: _b, lastAnswer: _a, grantId: _g, ...fresh } = plan.request;
            let request = await t.createDeviceRequest(fresh);
            if (decidedAt !== null || decidedBy !== null) request = await t.updateDeviceRequest(request.id, (r) => ({ ...r, decidedAt, decidedBy }));
            const audit: AuditEvent[] = [];
            for (const e of plan.audit) audit.push(await t.addAuditEvent(e));
            if (node) await t.pruneDeviceRequests(node.id, ask.keepPerNode, ask.finishedBefore);
            return { request, audit };
          });
        } catch (e) {
          if (!(e instanceof AlreadyExistsError) || (plan.node && plan.created)) throw e;
        }
      }
    });
  }

  pollDeviceCode<T>(codeHash: string, decide: (r: DeviceRequestRecord) => PollOutcome<T>): Promise<{ request: DeviceRequestRecord; result: T } | undefined> {
    return this.groupedTransaction(async (tx) => {
      const stored = await tx.getDeviceRequestByCodeHash(codeHash);
      if (!stored) return undefined;
      const { update, result } = decide(stored);
      if (Object.keys(update).length > 0) await tx.recordPoll(stored.id, update);
      return { request: { ...stored, ...update }, result };
    });
  }

  decideNodeRequest(
    find: { requestId: number } | { userCode: string },
    plan: (request: DeviceRequestRecord, node: NodeRecord) => DecisionPlan,
  ): Promise<{ request: DeviceRequestRecord; node: NodeRecord; audit: AuditEvent[] } | undefined> {
    return this.transaction(async (tx) => {
      const stored = 'requestId' in find ? await tx.getDeviceRequest(find.requestId) : await tx.getDeviceRequestByUserCode(find.userCode);
      const node = stored?.nodeId ? await tx.getNode(stored.nodeId) : undefined;
      if (!stored || !node) return undefined;
      const p = plan(stored, node);
      const request = await tx.updateDeviceRequest(stored.id, () => p.request);
      const updated = await tx.updateNode(node.id, () => p.node);
      const audit: AuditEvent[] = [];
      for (const e of p.audit) audit.push(await tx.addAuditEvent(e));
      return { request, node: updated, audit };
    });
  }

  redeemDeviceCode(requestId: number, token: NodeTokenRecord, audit: NewAuditEvent): Promise<AuditEvent | undefined> {
    return this.groupedTransaction(async (tx) => {
      const r = await tx.getDeviceRequest(requestId);
      if (!r || r.status !== 'approved') return undefined;
      await tx.updateDeviceRequest(requestId, (x) => ({ ...x, status: 'consumed' }));
      await tx.createNodeToken(token);
      return tx.addAuditEvent(audit);
    });
  }

  getNodeTokenWithNode(tokenHash: string): Promise<NodeTokenWithNode | undefined> {
    return this.run((o) => {
      const token = o.getNodeToken(tokenHash);
      return token && { token, node: o.getNode(token.nodeId) };
    });
  }

  recordConfigDownloadAudited(id: string, at: number, ip: string, audit: NewAuditEvent): Promise<AuditEvent> {
    return this.groupedTransaction(async (tx) => {
      await tx.recordConfigDownload(id, at, ip);
      return tx.addAuditEvent(audit);
    });
  }

  recordCertificate(cert: NewCertificate, audit: NewAuditEvent[]): Promise<{ cert: CertificateRecord; audit: AuditEvent[] } | 'blocked'> {
    // committed together with the other exchanges of this moment: when every operator's --watch
    // renews at once, one commit serves many
    return this.queue.groupedSync(() => this.ops.recordCertificate(cert, audit));
  }

  private async bound<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T> {
    const tx = new SqliteTx(this.ops, this.queue);
    try {
      return await fn(tx);
    } finally {
      tx.end();
    }
  }
}
