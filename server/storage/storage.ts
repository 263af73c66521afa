// The one storage interface of the gate. Two backends implement it: SQLite (server/storage/sqlite/,
// the embedded default) and PostgreSQL (server/storage/postgres/, database.url); any backend must
// pass test/storage/conformance.ts. The contract, as Dex's
// storage.go states its own:
// - Every method is asynchronous and atomic on its own: an `update…(id, updater)` reads, checks and
//   writes inside one transaction. Updaters get the stored record and return the new one; they must
//   be pure (no I/O, no side effects, the same answer for the same record), because a backend may call
//   them more than once (a serialization failure retried, a row read again under its lock). An
//   updater refuses by throwing; nothing is written then, and the error reaches the caller.
// - Explicit transactions: `transaction(async (tx) => …)` runs the function with `tx`, the view of
//   the storage bound to that one transaction (one database connection); everything done through
//   `tx` commits together or not at all. Work in a transaction goes through `tx` only, one call after
//   the other (await each), and does no slow I/O: it holds the write lock (SQLite) or a connection
//   and row locks (a server database) meanwhile. A transaction inside one is a savepoint. A backend
//   may run a transaction's fn again after a serialization failure or deadlock (PostgreSQL), so
//   like an updater fn must not act outside `tx` before it resolves.
// - Errors: NotFoundError and AlreadyExistsError below; StorageUnavailableError when the database
//   cannot be reached (a server database gone away: the request may be tried again later); anything
//   else is the backend's failure.

export type NodeStatus = 'pending' | 'approved' | 'denied' | 'revoked';
export type DeviceRequestStatus = 'pending' | 'approved' | 'denied' | 'consumed';
export type DeviceKind = 'node' | 'operator';

/** What a node sent in its device authorization request, exactly as it came. */
export type NodeVariables = Record<string, string>;

/** A patch as given at approval: a strategic merge patch (map), an RFC 6902 patch (list) or YAML text. */
export type PatchSpec = string | Record<string, unknown> | unknown[];

export interface NodeRecord {
  id: string;
  uuid: string | null;
  mac: string | null;
  variables: NodeVariables;
  status: NodeStatus;
  profile: string | null;
  hostname: string | null;
  patches: PatchSpec[];
  /** Armed: the next request that matches the registration is approved without a click, once. */
  autoApprove: boolean;
  /** IPs or CIDR blocks an auto-approved request must come from; empty: any address. */
  autoApproveCidrs: string[];
  config: string | null;
  createdAt: number;
  requestedAt: number | null;
  sourceIp: string | null;
  decidedAt: number | null;
  decidedBy: string | null;
  configDownloads: number;
  lastDownloadAt: number | null;
  lastDownloadIp: string | null;
}

/** A node without its rendered config (up to 1 MiB each): what lists of nodes carry. */
export type NodeSummary = Omit<NodeRecord, 'config'>;

/** A node with nothing known or decided yet; callers set what they know. */
export function newNode(id: string, createdAt: number, known: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id,
    uuid: null,
    mac: null,
    variables: {},
    status: 'pending',
    profile: null,
    hostname: null,
    patches: [],
    autoApprove: false,
    autoApproveCidrs: [],
    config: null,
    createdAt,
    requestedAt: null,
    sourceIp: null,
    decidedAt: null,
    decidedBy: null,
    configDownloads: 0,
    lastDownloadAt: null,
    lastDownloadIp: null,
    ...known,
  };
}

export interface DeviceRequestRecord {
  id: number;
  deviceCodeHash: string;
  userCode: string;
  clientId: string;
  kind: DeviceKind;
  nodeId: string | null;
  variables: NodeVariables;
  scope: string | null;
  audience: string | null;
  sourceIp: string;
  /** The address bucket of sourceIp that per-address limits count (server/client-ip.ts addressBucket). */
  sourceBucket: string;
  createdAt: number;
  expiresAt: number;
  intervalMs: number;
  status: DeviceRequestStatus;
  decidedAt: number | null;
  decidedBy: string | null;
  lastPollAt: number | null;
  /** When the next poll is due (see device/poll.ts). */
  nextPollAt: number | null;
  lastPollBasic: boolean;
  /** The OAuth error last answered to a poll, so the immediate twin of a poll gets the same answer. */
  lastAnswer: string | null;
  /** For operator logins: the grant made when the user approved. */
  grantId: string | null;
}

export type NewDeviceRequest = Omit<
  DeviceRequestRecord,
  'id' | 'decidedAt' | 'decidedBy' | 'lastPollAt' | 'nextPollAt' | 'lastPollBasic' | 'lastAnswer' | 'grantId'
>;

/** A request with nothing decided or polled yet; its id (0 here) is given by the storage. */
export function newDeviceRequest(req: NewDeviceRequest): DeviceRequestRecord {
  return { ...req, id: 0, decidedAt: null, decidedBy: null, lastPollAt: null, nextPollAt: null, lastPollBasic: false, lastAnswer: null, grantId: null };
}

export interface OperatorGrantRecord {
  id: string;
  clientId: string;
  sub: string;
  email: string | null;
  claims: Record<string, unknown>;
  idpRefreshToken: string | null;
  createdAt: number;
  refreshedAt: number | null;
  expiresAt: number;
  revokedAt: number | null;
  revokedReason: string | null;
}

export interface RefreshTokenRecord {
  tokenHash: string;
  grantId: string;
  issuedAt: number;
  expiresAt: number;
  usedAt: number | null;
}

/**
 * A named secret that every process of one gate shares (docs/ha.md). `value` is the secret itself:
 * the backends seal it with secrets.system, bound to its name, on the way in (rows.ts).
 */
export interface StoredSecret {
  name: string;
  value: Buffer;
  createdAt: number;
}

/** A gate-token signing key (server/operators/gate-tokens.ts): `privateKey` PKCS#8 DER (sealed in the database, like every secret). */
export interface SigningKeyRecord {
  kid: string;
  privateKey: Buffer;
  createdAt: number;
  /** It signs from then on; it is published (JWKS) and verifies from createdAt. */
  activatesAt: number;
}

export interface NodeTokenRecord {
  tokenHash: string;
  nodeId: string;
  deviceRequestId: number;
  issuedAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

export interface AuditEvent {
  id: number;
  at: number;
  type: string;
  actor: string | null;
  subject: string | null;
  ip: string | null;
  detail: Record<string, unknown>;
}

export type NewAuditEvent = Omit<AuditEvent, 'id'>;

/**
 * Which audit events a list covers: each field given is an exact match, and all apply. Each backend
 * indexes type and actor with the id, so such a page is read from an index in id order instead of a
 * scan of the trail; the subject has no index (sqlite migration 014 says why), so a subject filter
 * comes with an `afterId` that bounds the stretch read (server/reports.ts auditPage).
 */
/** A stretch of the trail by id: below `beforeId`, above `afterId` (each exclusive), newest first, at most `limit`. */
export interface AuditRange {
  limit: number;
  beforeId?: number;
  afterId?: number;
}

export interface AuditFilter {
  type?: string | undefined;
  subject?: string | undefined;
  actor?: string | undefined;
}

export interface CertificateRecord {
  id: number;
  serial: string;
  fingerprint: string;
  subject: string;
  email: string | null;
  commonName: string;
  issuer: string;
  roles: string[];
  issuedAt: number;
  expiresAt: number;
  clientIp: string | null;
  source: string;
}

export type NewCertificate = Omit<CertificateRecord, 'id'>;

export interface CertificateFilter {
  /** Only certificates still valid at this time. */
  activeAt?: number;
  subject?: string;
}

export interface BlockedSubject {
  subject: string;
  blockedAt: number;
  blockedBy: string | null;
  reason: string | null;
}

export class NotFoundError extends Error {
  constructor(what: string) {
    super(`${what} not found`);
    this.name = 'NotFoundError';
  }
}

export class AlreadyExistsError extends Error {
  constructor(what: string) {
    super(`${what} already exists`);
    this.name = 'AlreadyExistsError';
  }
}

/**
 * The database cannot be reached right now (connection refused or lost, server shutting down or
 * starting up, too many connections): nothing of the operation was committed, and the same request
 * may succeed once the database is back. The wire answers 503 with Retry-After.
 */
export class StorageUnavailableError extends Error {
  constructor(readonly reason: string, options?: { cause?: unknown }) {
    super(`the database is unavailable: ${reason}`, options);
    this.name = 'StorageUnavailableError';
  }
}

/** Which nodes a list or count covers; the fields given all apply. */
export interface NodeFilter {
  status?: NodeStatus;
  /** Only nodes decided on: status approved, denied or revoked. */
  decided?: boolean;
  /**
   * Nodes waiting for a decision at this time: status pending and asked at least once (a registered
   * node that never asked is not waiting), or a pending device request not expired at this time (a
   * decided node that asked again).
   */
  awaitingDecisionAt?: number;
  /** Nodes with a pending device request not expired at this time: the ones an admin can approve now. */
  askingAt?: number;
  /** Registered by an admin and never asked yet: status pending, requestedAt null (the wire's state `registered`). */
  registered?: boolean;
  /**
   * Nodes whose uuid, mac, serial (variables.serial), hostname (decided, or variables.hostname as
   * sent) or source IP starts with this, ignoring ASCII case. Printable ASCII only, lower-case
   * (the service checks and lowers it). Each backend indexes these so a prefix is found without a
   * scan of the fleet.
   */
  prefix?: string;
}

/** Where a page of nodes starts: after this node, in the order newest first by (createdAt, id). */
export interface NodeCursor {
  createdAt: number;
  id: string;
}

export interface NodePage {
  limit: number;
  after?: NodeCursor | undefined;
}

export interface PendingLogin {
  state: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string;
  startedAt: number;
}

export interface WebSessionRecord {
  idHash: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  login: PendingLogin | null;
  sub: string | null;
  email: string | null;
  name: string | null;
  claims: Record<string, unknown> | null;
  isAdmin: boolean;
  signedInAt: number | null;
  /** The IdP's refresh token from sign-in (offline_access), handed to operator logins approved in this session. */
  idpRefreshToken: string | null;
}

/** A column whose values are sealed (rows.ts SEALED_COLUMNS), with the column naming its row (stable across backends). */
export interface SealedColumn {
  table: 'nodes' | 'web_sessions' | 'operator_grants' | 'instance_secrets' | 'gate_signing_keys';
  column: string;
  idColumn: string;
}

/** A stored value of a sealed column as it is on disk (sealed, or plaintext from before sealing). */
export interface SealedValueRow {
  id: string;
  value: string;
}

/** What one poll at /token changes on its device request (RFC 8628 §3.5 interval and slow_down bookkeeping). */
export type DevicePollFields = Partial<Pick<DeviceRequestRecord, 'intervalMs' | 'lastPollAt' | 'nextPollAt' | 'lastPollBasic' | 'lastAnswer'>>;

/**
 * What can be done on the storage, either on its own (each call its own transaction) or as part of a
 * transaction (the `tx` given to transaction()'s function). Code that takes a StorageTx works both
 * ways: called with the storage, or with a transaction it belongs to.
 */
export interface StorageTx {
  /**
   * Runs fn atomically with `tx` bound to the transaction: what fn does through `tx` commits together
   * or not at all, after fn's promise resolves; fn's rejection undoes it and is passed on. Called on a
   * transaction's `tx`, it is a savepoint inside that transaction: a rejection undoes only its part.
   */
  transaction<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T>;

  createNode(node: NodeRecord): Promise<NodeRecord>;
  getNode(id: string): Promise<NodeRecord | undefined>;
  /**
   * A page of nodes, newest first by (createdAt, id): a key that never changes, so following
   * `after` from page to page sees every node that existed when the walk began exactly once, however
   * many are added or deleted meanwhile.
   */
  listNodes(filter: NodeFilter, page: NodePage): Promise<NodeSummary[]>;
  countNodes(filter: NodeFilter): Promise<number>;
  countNodesByStatus(): Promise<Record<NodeStatus, number>>;
  updateNode(id: string, updater: (old: NodeRecord) => NodeRecord): Promise<NodeRecord>;
  /** Counts one config download: only the counters, not the rest of the row (which holds the rendered config). */
  recordConfigDownload(id: string, at: number, ip: string): Promise<void>;
  /** Deletes the node with its device requests and tokens. Returns false when there was none. */
  deleteNode(id: string): Promise<boolean>;
  /**
   * Deletes at most `limit` abandoned nodes, with their device requests: nodes nobody decided on or
   * registered (status pending, no decision, no profile, not auto-approved) that last asked before
   * `askedBefore` and have no device request unexpired at `now`. Returns how many.
   */
  deleteAbandonedNodes(askedBefore: number, now: number, limit: number): Promise<number>;

  /** Throws AlreadyExistsError when the device code hash or user code is taken. */
  createDeviceRequest(req: NewDeviceRequest): Promise<DeviceRequestRecord>;
  getDeviceRequest(id: number): Promise<DeviceRequestRecord | undefined>;
  getDeviceRequestByCodeHash(hash: string): Promise<DeviceRequestRecord | undefined>;
  getDeviceRequestByUserCode(userCode: string): Promise<DeviceRequestRecord | undefined>;
  /** In creation order. `nodeIds`: the requests of any of these nodes. */
  listDeviceRequests(filter: { nodeId?: string; nodeIds?: string[]; status?: DeviceRequestStatus }): Promise<DeviceRequestRecord[]>;
  /**
   * Bounds the request rows of one node: deletes its finished requests (denied, or pending or approved
   * and expired before `finishedBefore`; never consumed ones, whose tokens refer to them) except the
   * newest `keep` requests of the node. Returns how many.
   */
  pruneDeviceRequests(nodeId: string, keep: number, finishedBefore: number): Promise<number>;
  updateDeviceRequest(id: number, updater: (old: DeviceRequestRecord) => DeviceRequestRecord): Promise<DeviceRequestRecord>;
  /** Writes only a poll's bookkeeping: every poll of a booting rack does this, so it skips the rest of the row. */
  recordPoll(id: number, fields: DevicePollFields): Promise<void>;
  /** Pending, unexpired requests from one address bucket (sourceBucket). */
  countPendingDeviceRequestsInBucket(bucket: string, now: number): Promise<number>;
  countDeviceRequestsByStatus(): Promise<Record<DeviceRequestStatus, number>>;
  /** Node requests (kind node) pending and unexpired at `now`: how many, and when the oldest was made (for /metrics and its alert rules). */
  waitingNodeRequests(now: number): Promise<{ count: number; oldestAt: number | null }>;

  /** Throws AlreadyExistsError when the device request already yielded a token. */
  createNodeToken(token: NodeTokenRecord): Promise<NodeTokenRecord>;
  getNodeToken(hash: string): Promise<NodeTokenRecord | undefined>;
  revokeNodeTokens(nodeId: string, at: number): Promise<number>;

  addAuditEvent(event: NewAuditEvent): Promise<AuditEvent>;
  /** Newest first; `beforeId` pages on (ids never change, so a walk is stable under inserts); the filter's fields all apply. */
  listAuditEvents(opts: AuditRange & AuditFilter): Promise<AuditEvent[]>;

  /** Counts of audit events by type, for the given types. */
  countAuditEvents(types: string[]): Promise<Record<string, number>>;

  addCertificate(cert: NewCertificate): Promise<CertificateRecord>;
  /** Newest first; `beforeId` pages on. */
  listCertificates(filter: CertificateFilter, page: { limit: number; beforeId?: number }): Promise<CertificateRecord[]>;
  countCertificates(filter: CertificateFilter): Promise<number>;

  /**
   * Blocks a subject and ends what it holds, in one transaction: its web sessions are deleted and its
   * operator logins revoked (revokedReason "subject blocked"). `added` is false when the subject was
   * blocked already; its sessions and logins are ended all the same.
   */
  blockSubject(b: BlockedSubject): Promise<{ added: boolean; webSessions: number; operatorLogins: number }>;
  /** Returns false when the subject was not blocked. */
  unblockSubject(subject: string): Promise<boolean>;
  getBlockedSubject(subject: string): Promise<BlockedSubject | undefined>;
  listBlockedSubjects(): Promise<BlockedSubject[]>;

  createWebSession(s: WebSessionRecord): Promise<WebSessionRecord>;
  getWebSession(idHash: string): Promise<WebSessionRecord | undefined>;
  updateWebSession(idHash: string, updater: (old: WebSessionRecord) => WebSessionRecord): Promise<WebSessionRecord>;
  deleteWebSession(idHash: string): Promise<void>;

  createOperatorGrant(g: OperatorGrantRecord): Promise<OperatorGrantRecord>;
  getOperatorGrant(id: string): Promise<OperatorGrantRecord | undefined>;
  updateOperatorGrant(id: string, updater: (old: OperatorGrantRecord) => OperatorGrantRecord): Promise<OperatorGrantRecord>;
  createRefreshToken(t: RefreshTokenRecord): Promise<RefreshTokenRecord>;
  getRefreshToken(hash: string): Promise<RefreshTokenRecord | undefined>;
  /** Marks a refresh token used; false when it already was (a replay). */
  useRefreshToken(hash: string, at: number): Promise<boolean>;
  /** Makes a used refresh token usable again (its refresh failed for a passing reason). */
  releaseRefreshToken(hash: string): Promise<void>;

  addCodeEntryFailure(keys: string[], at: number): Promise<void>;
  countCodeEntryFailures(key: string, since: number): Promise<number>;
  /** When the oldest failure in the window happened, to say when entry opens again. */
  oldestCodeEntryFailure(key: string, since: number): Promise<number | undefined>;

  /**
   * The secret NAME as stored; when there is none yet, `value` is stored first. Of callers racing
   * (two instances starting at once) exactly one value is stored and every caller gets that one.
   */
  instanceSecret(name: string, value: Buffer, at: number): Promise<StoredSecret>;
  /** Replaces NAME's value only while it still is `expected` (compare-and-set); false when another caller replaced it first. */
  replaceInstanceSecret(name: string, expected: Buffer, value: Buffer, at: number): Promise<boolean>;
  /** Every signing key, oldest first. */
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /**
   * Adds a signing key unless a key was created after `unlessCreatedAfter` (checked and inserted
   * atomically, so instances rotating at the same moment add one key); true when added.
   */
  addSigningKey(key: SigningKeyRecord, unlessCreatedAfter: number): Promise<boolean>;
  deleteSigningKey(kid: string): Promise<boolean>;

  /**
   * Deletes what no longer matters: expired device requests and tokens, sessions, logins. With
   * `limit`, at most that many rows of each kind, so a caller can delete a backlog in short batches.
   * Returns counts.
   */
  garbageCollect(now: number, limit?: number): Promise<{ deviceRequests: number; nodeTokens: number; webSessions: number }>;
  /** Deletes certificate records that expired before certsBefore and audit events older than auditBefore. */
  applyRetention(certsBefore: number, auditBefore: number): Promise<{ certificates: number; auditEvents: number }>;

  /**
   * The stored values of one sealed column as they are on disk, never opened: rows with a value
   * (not NULL) whose id sorts after `afterId`, in id order, at most `limit`; with `head`, only each
   * value's first `head` characters. For the start-up check and `db reencrypt` (server/secrets/).
   */
  scanSealedColumn(column: SealedColumn, afterId: string | null, limit: number, head?: number): Promise<SealedValueRow[]>;
  /**
   * Writes `next` into one row's sealed column if it still holds `expected` (compare and set, so a
   * re-encryption running beside the gate never overwrites a newer value). False when it changed or
   * the row is gone.
   */
  replaceSealedValue(column: SealedColumn, id: string, expected: string, next: string): Promise<boolean>;
}

/** What one poll decided (device/poll.ts): the bookkeeping to write (empty: nothing) and the caller's answer. */
export interface PollOutcome<T> {
  update: DevicePollFields;
  result: T;
}

/** A node's access token with the node it is bound to (undefined when the node was deleted meanwhile). */
export interface NodeTokenWithNode {
  token: NodeTokenRecord;
  node: NodeRecord | undefined;
}

/** What one node's POST /device/code writes, decided on the node as stored (see Storage.issueDeviceCode). */
export interface DeviceCodePlan {
  /** The node as it is to be stored; null for an operator's code (`talos-gate login --device`), which has none. */
  node: NodeRecord | null;
  /** Whether the node is new (created), else an update of the node read under node.id. */
  created: boolean;
  /** The request to store, with its decision when it is decided on arrival; its id is the storage's. */
  request: DeviceRequestRecord;
  /** The audit events to write with it. */
  audit: NewAuditEvent[];
}

/** What a decision on a node's request writes (an admin's approval): both records as they are to be stored, and the audit events. */
export interface DecisionPlan {
  request: DeviceRequestRecord;
  node: NodeRecord;
  audit: NewAuditEvent[];
}

export interface DeviceCodeAsk {
  /** The nodes the request may be for, in order of preference (by uuid, then by mac); none for an operator's code. */
  nodeIds: string[];
  /** The address bucket whose pending requests are counted (device.max_pending_per_ip). */
  bucket: string;
  now: number;
  maxPending: number;
  /** After storing, the node keeps only its newest `keepPerNode` requests that finished before `finishedBefore`. */
  keepPerNode: number;
  finishedBefore: number;
  /** A fresh user code; asked again when the one drawn is taken. */
  newUserCode: () => string;
  /** Decides what to write on the nodes found (undefined: none under that id); pure, it may run more than once. */
  plan: (found: (NodeRecord | undefined)[], userCode: string) => DeviceCodePlan;
}

/**
 * The storage as the gate opens it: a StorageTx outside any transaction, with group commit and close,
 * and the hot paths of the device flow as one operation each. Those are what a booting rack does
 * thousands of times a minute; on a server database each costs at most two network round trips
 * (test/storage/round-trips.test.ts counts them), so none is built from the generic calls above.
 */
export interface Storage extends StorageTx {
  /** Which backend this is: names the size gauge of /metrics (talos_gate_<backend>_bytes). */
  readonly backend: 'sqlite' | 'postgres';
  /** The webhook outbox: the dispatcher's, outside any transaction (the triggers fill it inside them). */
  readonly webhooks: WebhookOutbox;
  /** The database's size on disk in bytes, for /metrics. */
  databaseBytes(): Promise<number>;
  /**
   * Runs fn atomically as transaction() does, but may commit it together with the other grouped
   * transactions asked for at about the same time (group commit), so a burst of small writes (a rack's
   * polls) costs one commit. Resolves with fn's result only once committed; rejects with fn's own
   * error (its part undone, the others' kept) or with the commit's error (all undone). fn may be
   * retried on a backend that retries failed commits, so like an updater it must not act outside
   * `tx` before it resolves.
   */
  groupedTransaction<T>(fn: (tx: StorageTx) => Promise<T>): Promise<T>;
  /**
   * Runs fn unless another process of the gate runs the job of that name right now, in which case it
   * returns { ran: false } at once (background maintenance on one instance at a time). PostgreSQL:
   * a session-level advisory lock held on a connection of its own for fn's duration. SQLite: within
   * this process only (the workers elect one maintainer; a SQLite gate is one machine).
   */
  exclusively<T>(job: string, fn: () => Promise<T>): Promise<{ ran: true; value: T } | { ran: false }>;
  /** Waits for what was asked for (grouped transactions included), commits it, then closes. */
  close(): Promise<void>;

  /**
   * One poll of a device code at /token: reads the request by the code's hash, lets `decide` judge it,
   * and writes decide's bookkeeping only if the request is still as decide saw it; if another poll or
   * a decision changed it meanwhile (another instance, maybe), it reads again and decides again, so
   * `decide` must be pure. Polls asked for at about the same time may share their reads and writes
   * (one statement for a burst). Undefined when no request has this hash. `request` is as written.
   */
  /**
   * A node's POST /device/code as one storage operation: counts the pending requests of the bucket
   * (refusing with 'too_many_pending' at maxPending), reads the nodes, lets `plan` decide, and writes
   * the node, the request, the audit events and the pruning together, only if the node is still as
   * plan saw it (else it reads and plans again): the count and the writes are atomic against every
   * other /device/code of the bucket or node, on any instance.
   */
  issueDeviceCode(ask: DeviceCodeAsk): Promise<{ request: DeviceRequestRecord; audit: AuditEvent[] } | 'too_many_pending'>;
  pollDeviceCode<T>(codeHash: string, decide: (r: DeviceRequestRecord) => PollOutcome<T>): Promise<{ request: DeviceRequestRecord; result: T } | undefined>;
  /**
   * Redeems an approved node device code: marks the request consumed, stores the token and writes the
   * audit event, all or nothing. Undefined (and nothing written) when the request is no longer
   * approved: one code, one token, whichever instance asks.
   */
  redeemDeviceCode(requestId: number, token: NodeTokenRecord, audit: NewAuditEvent): Promise<AuditEvent | undefined>;
  /**
   * Decides a node's device request (an admin's approval): reads the request, found by id or by its
   * user code, and its node; `plan` says what both become (pure, it may run again when either
   * changed meanwhile; it throws to refuse, and nothing is written); then writes the request, the
   * node and the audit events, all or nothing. Undefined when no request or no node is found. Two
   * network round trips on PostgreSQL (a read, one statement), one transaction on SQLite.
   */
  decideNodeRequest(find: { requestId: number } | { userCode: string }, plan: (request: DeviceRequestRecord, node: NodeRecord) => DecisionPlan): Promise<{ request: DeviceRequestRecord; node: NodeRecord; audit: AuditEvent[] } | undefined>;
  /** A node token and its node, read together (GET /config). */
  getNodeTokenWithNode(tokenHash: string): Promise<NodeTokenWithNode | undefined>;
  /** Counts one config download (as recordConfigDownload) and writes its audit event, together. */
  recordConfigDownloadAudited(id: string, at: number, ip: string, audit: NewAuditEvent): Promise<AuditEvent>;
  /**
   * The storage part of POST /exchange: records an issued certificate with its audit events, unless
   * its subject is blocked ('blocked', nothing written). The block list is read atomically with the
   * writes: a block commits before (this answers 'blocked') or after, never in between.
   */
  recordCertificate(cert: NewCertificate, audit: NewAuditEvent[]): Promise<{ cert: CertificateRecord; audit: AuditEvent[] } | 'blocked'>;
}

// Webhook notifications (server/notifications/, docs/notifications.md): the outbox that triggers on
// audit_events fill (migrations sqlite 011, postgres 002), and what the dispatcher does with it.

/** One webhook's interest in one audit type, as synced from the config. */
export interface WebhookSubscription {
  auditType: string;
  /** The webhook's key (server/notifications/webhooks.ts). */
  webhook: string;
  /** The event name the receiver sees. */
  event: string;
  /** auth_failure only: the failures in one minute that make one event. */
  burst: number | null;
}

/** One event for one webhook: the audit row's fields as the trigger copied them, and the delivery state. */
export interface WebhookDelivery {
  id: number;
  webhook: string;
  event: string;
  auditId: number;
  at: number;
  actor: string | null;
  subject: string | null;
  ip: string | null;
  detail: Record<string, unknown>;
  status: 'pending' | 'dead';
  /** Attempts so far, this one included once claimed. */
  attempts: number;
  nextAt: number;
  lastError: string | null;
}

export interface WebhookBacklog {
  pending: number;
  dead: number;
  /** When the oldest pending event happened; undefined when none is pending. */
  oldestPendingAt: number | undefined;
}

/**
 * The webhook outbox. Every method is atomic on its own. Rows are claimed with a lease, so
 * dispatchers in several processes (workers, or several gates on one PostgreSQL database) never
 * deliver one row at the same time; a claim whose process died ends with its lease.
 */
export interface WebhookOutbox {
  /** Replaces every subscription with these, and deletes the pending rows of webhooks no longer listed. */
  syncSubscriptions(subs: WebhookSubscription[]): Promise<void>;
  /**
   * Claims up to `limit` pending rows of one webhook due at `now` and not claimed by anyone, oldest
   * first: sets their lease to `claimUntil` and counts the attempt. Returns them.
   */
  claim(webhook: string, now: number, claimUntil: number, limit: number): Promise<WebhookDelivery[]>;
  /** The row was delivered: it is deleted. */
  delivered(id: number): Promise<void>;
  /** The attempt failed: the row is due again at nextAt, and its lease ends. */
  retry(id: number, nextAt: number, error: string): Promise<void>;
  /** Gives up on the row: kept as dead (for the operator to see) until pruned. */
  giveUp(id: number, error: string): Promise<void>;
  /** Ends a lease without counting the attempt (a dispatcher stopping mid-delivery). */
  release(id: number): Promise<void>;
  backlog(): Promise<WebhookBacklog>;
  /** Deletes dead rows of events before deadBefore and failure windows before windowsBefore; at most `limit` of each. */
  prune(deadBefore: number, windowsBefore: number, limit: number): Promise<number>;
}
