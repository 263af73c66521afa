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
  listAuditEvents(opts: { limit: number; beforeId?: number }): Promise<AuditEvent[]>;

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
   * Deletes what no longer matters: expired device requests and tokens, sessions, logins. With
   * `limit`, at most that many rows of each kind, so a caller can delete a backlog in short batches.
   * Returns counts.
   */
  garbageCollect(now: number, limit?: number): Promise<{ deviceRequests: number; nodeTokens: number; webSessions: number }>;
  /** Deletes certificate records that expired before certsBefore and audit events older than auditBefore. */
  applyRetention(certsBefore: number, auditBefore: number): Promise<{ certificates: number; auditEvents: number }>;
}

/** The storage as the gate opens it: a StorageTx outside any transaction, with group commit and close. */
export interface Storage extends StorageTx {
  /** Which backend this is: names the size gauge of /metrics (talos_gate_<backend>_bytes). */
  readonly backend: 'sqlite' | 'postgres';
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
  /** Waits for what was asked for (grouped transactions included), commits it, then closes. */
  close(): Promise<void>;
}
