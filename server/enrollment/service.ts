import type { DeviceAuthorizationRequest } from '../../device/authorization-request.js';
import { isUnfilled } from '../../device/authorization-request.js';
import { OAuthError } from '../../device/errors.js';
import { decidePoll, type PollPolicy } from '../../device/poll.js';
import { generateSecret, hashSecret, secretsEqual } from '../../device/secrets.js';
import type { ClientCredentials, DeviceTokenRequest } from '../../device/token-request.js';
import { formatUserCode, generateUserCode, normalizeUserCode } from '../../device/user-code.js';
import { ApiError } from '../api-error.js';
import { SEARCH_PREFIX } from '../storage/prefix-range.js';
import { addressBucket, inCidrs, parseCidr } from '../client-ip.js';
import type { AuditEntry, AuditLog } from '../audit.js';
import { RenderError, type MachineConfigRenderer } from '../machine-config/render.js';
import type { OperatorService, OperatorTokens } from '../operators/service.js';
import {
  AlreadyExistsError,
  newDeviceRequest,
  newNode,
  type DeviceRequestRecord,
  type NodeCursor,
  type NodeFilter,
  type NodeRecord,
  type NodeStatus,
  type NodeSummary,
  type PatchSpec,
  StorageUnavailableError,
  type DecisionPlan,
  type DeviceCodeAsk,
  type DeviceCodePlan,
  type Storage,
} from '../storage/storage.js';

export interface EnrollmentSettings {
  publicUrl: string;
  nodeClients: { client_id: string; client_secret?: string | undefined }[];
  /** Public clients of `talos-gate login --device`. */
  operatorClients: { client_id: string }[];
  codeTtlMs: number;
  intervalMs: number;
  tokenTtlMs: number;
  maxPendingPerIp: number;
  poll: PollPolicy;
}

export interface DeviceAuthorizationResponse {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  interval: number;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

export interface Decision {
  profile?: string | undefined;
  hostname?: string | undefined;
  patches?: PatchSpec[] | undefined;
}

export interface Registration extends Decision {
  uuid?: string | undefined;
  mac?: string | undefined;
  /** From inventory, kept for search until the node sends its own (variables.serial). */
  serial?: string | undefined;
  autoApprove?: boolean | undefined;
  /** IPs or CIDR blocks the auto-approved request must come from (as clientIp computes it). */
  autoApproveCidrs?: string[] | undefined;
}

/** A registration checked and in stored form (EnrollmentService.checkRegistration). */
export interface CheckedRegistration {
  id: string;
  uuid: string | null;
  mac: string | null;
  serial: string | null;
  profile: string;
  hostname: string | null;
  patches: PatchSpec[];
  autoApprove: boolean;
  autoApproveCidrs: string[];
}

/** What an inventory import did (or, dry, would do). */
export interface ImportSummary {
  created: number;
  updated: number;
  unchanged: number;
}

/** A refused row of an import, by its line in the file. */
export interface RowProblem {
  line: number;
  error: string;
}

/** A node as the admin API shows it, with its pending request's user code when one waits. */
/**
 * What an admin sees a node as: its status, except that a node registered from inventory that never
 * asked is `registered` (its status is pending, but nobody is waiting).
 */
export type NodeState = NodeStatus | 'registered';

export const NODE_STATES: readonly NodeState[] = ['registered', 'pending', 'approved', 'denied', 'revoked'];

export interface NodeView extends Omit<NodeRecord, 'config' | 'autoApprove'> {
  state: NodeState;
  autoApprove: boolean;
  /** Its newest pending, unexpired requests (at most PENDING_SHOWN), oldest first. */
  pending: { userCode: string; requestedAt: number; expiresAt: number; sourceIp: string }[];
  /** How many pending, unexpired requests it has in all. */
  pendingCount: number;
}

/**
 * Pending requests shown per node: anyone repeating a node's uuid from many addresses can give it
 * thousands, and a page of nodes must stay a page.
 */
const PENDING_SHOWN = 10;

/** Finished requests a node keeps (the newest); older ones go as the node asks again. */
const REQUESTS_KEPT_PER_NODE = 8;

/** Nodes per page of the admin API: by default, and at most (a page of 1,000 is about 1 MB of JSON). */
export const NODE_PAGE_DEFAULT = 100;
export const NODE_PAGE_MAX = 1000;
/** Device requests a node page lists (the newest); a node keeps few finished ones, but pending ones can be many. */
const REVIEW_REQUESTS = 50;

/** A node as its admin page shows it (EnrollmentService.reviewNode). */
export interface NodeReview {
  node: NodeView;
  /** The config it is handed: rendered at approval or at its last re-render; null when it has none. */
  config: string | null;
  /** What its templates render now from its stored profile, hostname and patches; null when it has no config to compare. */
  renderedNow: { config: string } | { error: string } | null;
  /** Its newest device requests (at most REVIEW_REQUESTS), newest first; requestCount says how many it has. */
  requests: DeviceRequestRecord[];
  requestCount: number;
}


export interface NodeList {
  nodes: NodeView[];
  /** Where the next page starts, opaque; null on the last page. */
  nextCursor: string | null;
}

/** What the dashboard's tabs count (EnrollmentService.stateCounts). */
export interface StateCounts {
  /** Node requests waiting for a decision now. */
  waiting: number;
  registered: number;
  approved: number;
  denied: number;
  revoked: number;
}

/** An opaque page cursor: the sort key of the last node of a page, base64url-encoded JSON. */
export function encodeNodeCursor(c: NodeCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id])).toString('base64url');
}

export function decodeNodeCursor(cursor: string): NodeCursor {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    v = undefined;
  }
  if (Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && typeof v[1] === 'string' && v[1].length <= 64) {
    return { createdAt: v[0] as number, id: v[1] };
  }
  throw new ApiError('invalid_request', 'cursor is not one this gate handed out (use next_cursor as it came)');
}

/** Whether a node's armed auto-approval applies to a request: undefined when the node is not armed. */
type AutoApproval = 'ok' | { refused: string } | undefined;

/**
 * An armed registration approves a request only when the request presents every identifier the
 * registration has (a uuid and a mac registered together must both match: either alone is easy to
 * learn or spoof on the node network) and comes from one of its source CIDRs, when it has any.
 */
function autoApprovalFor(node: NodeRecord, req: DeviceAuthorizationRequest, ip: string): 'ok' | { refused: string } {
  for (const key of ['uuid', 'mac'] as const) {
    const registered = node[key];
    if (registered === null) continue;
    if (req[key] === null) return { refused: `the request has no ${key}; the registration has one` };
    if (req[key] !== registered) return { refused: `the ${key} does not match the registration` };
  }
  if (node.autoApproveCidrs.length > 0 && !inCidrs(ip, node.autoApproveCidrs)) {
    return { refused: `source address ${ip} is outside auto_approve_cidrs` };
  }
  return 'ok';
}

/** Checks and normalizes auto_approve_cidrs (lower-case, each a valid IP or CIDR block). */
function checkCidrs(cidrs: string[] | undefined): string[] | undefined {
  if (cidrs === undefined) return undefined;
  if (cidrs.length > 64) throw new ApiError('invalid_request', 'auto_approve_cidrs has more than 64 entries');
  return cidrs.map((c) => {
    if (!parseCidr(c)) throw new ApiError('invalid_request', `auto_approve_cidrs: ${JSON.stringify(c.slice(0, 80))} is not an IP address or CIDR`);
    return c.toLowerCase();
  });
}

interface Approval {
  profile: string;
  hostname: string;
  patches: PatchSpec[];
  config: string;
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5,19}$/;
const NODE_ID = /^[0-9a-z._:-]{1,64}$/;

/**
 * Node enrollment: the RFC 8628 grant as Talos metal nodes use it, approvals, and the per-node
 * machine config. Knows nothing of HTTP; routes parse, call, and map the errors it throws.
 */
export class EnrollmentService {
  constructor(
    private readonly storage: Storage,
    private readonly renderer: MachineConfigRenderer,
    private readonly audit: AuditLog,
    private readonly settings: EnrollmentSettings,
    private readonly now: () => number,
    private readonly operators?: OperatorService,
  ) {}

  // --- the device flow -------------------------------------------------------------------

  /** Which kind of device client this is: a Talos node, or the talos-gate CLI of an operator. */
  clientKind(clientId: string): 'node' | 'operator' {
    if (this.settings.nodeClients.some((c) => c.client_id === clientId)) return 'node';
    if (this.operators && this.settings.operatorClients.some((c) => c.client_id === clientId)) return 'operator';
    throw new OAuthError('invalid_client', 'unknown client_id');
  }

  authenticateClient(creds: Pick<ClientCredentials, 'clientId' | 'clientSecret'>, requireSecret: boolean): void {
    if (this.clientKind(creds.clientId) === 'operator') return; // public clients (RFC 8252)
    const client = this.settings.nodeClients.find((c) => c.client_id === creds.clientId);
    if (!client) throw new OAuthError('invalid_client', 'unknown client_id');
    if (requireSecret && client.client_secret !== undefined) {
      if (creds.clientSecret === undefined || !secretsEqual(creds.clientSecret, client.client_secret)) {
        throw new OAuthError('invalid_client', 'client authentication failed');
      }
    }
  }

  private response(deviceCode: string, userCode: string): DeviceAuthorizationResponse {
    const verificationUri = `${this.settings.publicUrl}/device`;
    return {
      device_code: deviceCode,
      user_code: formatUserCode(userCode),
      verification_uri: verificationUri,
      verification_uri_complete: `${verificationUri}?user_code=${formatUserCode(userCode)}`,
      expires_in: Math.floor(this.settings.codeTtlMs / 1000),
      interval: Math.ceil(this.settings.intervalMs / 1000),
    };
  }

  async requestDeviceCode(req: DeviceAuthorizationRequest, ip: string): Promise<DeviceAuthorizationResponse> {
    // RFC 8628 §3.1: the device authorization request carries no client secret, even for Talos
    // nodes booted with talos.config.oauth.client_secret; it is checked at /token.
    if (this.clientKind(req.clientId) !== 'node') throw new OAuthError('invalid_client', 'not a node client');
    const now = this.now();
    const deviceCode = generateSecret();
    // One storage operation (two round trips on PostgreSQL): the pending limit counted with the
    // request it admits, the node found or made, the request decided on arrival, the audit events,
    // and the pruning of the node's old requests: a node asking again and again (a denied one at
    // every boot, or anyone repeating its uuid) keeps only its newest requests once they are finished.
    const issued = await this.issue(ip, now, req.mac !== null && req.uuid !== null ? [req.nodeId, req.mac] : [req.nodeId], (found, userCode) =>
      this.planDeviceCode(req, ip, now, hashSecret(deviceCode), found, userCode),
    );
    // A denied node is told at once (the request stays recorded): Talos ends its flow on an error
    // here without showing a code, instead of showing one that can only be refused at the first poll.
    if (issued.request.status === 'denied') throw new OAuthError('access_denied', 'an admin denied this node; forget it to let it ask again');
    return this.response(deviceCode, issued.request.userCode);
  }

  /** A device code for `talos-gate login --device`: no node, the signed-in user approves it. */
  async requestOperatorCode(clientId: string, scope: string | null, ip: string): Promise<DeviceAuthorizationResponse> {
    if (this.clientKind(clientId) !== 'operator') throw new OAuthError('invalid_client', 'not an operator client');
    const now = this.now();
    const deviceCode = generateSecret();
    // the same one storage operation as a node's code: the pending limit counted with the request it
    // admits, and the audit event, with no node to find or write
    const issued = await this.issue(ip, now, [], (_found, userCode) => ({
      node: null,
      created: false,
      request: this.newPendingRequest({ deviceCodeHash: hashSecret(deviceCode), userCode, clientId, kind: 'operator', nodeId: null, variables: {}, scope, audience: null }, ip, now),
      audit: [this.audit.event({ type: 'device_code_issued', subject: clientId, ip, detail: { user_code: formatUserCode(userCode), kind: 'operator' } })],
    }));
    return this.response(deviceCode, issued.request.userCode);
  }

  /** Issues a device code through the one storage operation (storage.ts issueDeviceCode), within device.max_pending_per_ip. */
  private async issue(ip: string, now: number, nodeIds: string[], plan: DeviceCodeAsk['plan']): Promise<{ request: DeviceRequestRecord }> {
    const issued = await this.storage.issueDeviceCode({
      nodeIds,
      bucket: addressBucket(ip),
      now,
      maxPending: this.settings.maxPendingPerIp,
      keepPerNode: REQUESTS_KEPT_PER_NODE,
      finishedBefore: now - this.settings.poll.expiryGraceMs,
      newUserCode: generateUserCode,
      plan,
    });
    if (issued === 'too_many_pending') throw new OAuthError('slow_down', 'too many pending device requests from this address', 429);
    for (const e of issued.audit) this.audit.published(e);
    return issued;
  }

  /** A pending request as it is first stored: its address, bucket, expiry and interval are the gate's. */
  private newPendingRequest(
    fields: Pick<DeviceRequestRecord, 'deviceCodeHash' | 'userCode' | 'clientId' | 'kind' | 'nodeId' | 'variables' | 'scope' | 'audience'>,
    ip: string,
    now: number,
  ): DeviceRequestRecord {
    return newDeviceRequest({
      ...fields,
      sourceIp: ip,
      sourceBucket: addressBucket(ip),
      createdAt: now,
      expiresAt: now + this.settings.codeTtlMs,
      intervalMs: this.settings.intervalMs,
      status: 'pending',
    });
  }

  /**
   * What a node's device authorization request writes, decided on the nodes found under its ids (by
   * uuid, then by a mac-only pre-registration): the node found, or a new one; the request, decided
   * on arrival when the node is denied (a denial sticks until an admin approves) or armed for
   * auto-approval that this request satisfies; and the audit events. Pure (the storage may ask twice).
   */
  private planDeviceCode(
    req: DeviceAuthorizationRequest,
    ip: string,
    now: number,
    deviceCodeHash: string,
    found: (NodeRecord | undefined)[],
    userCode: string,
  ): DeviceCodePlan {
    const existing = found[0] ?? found[1];
    const isNew = !existing || (existing.id === req.mac && existing.uuid !== null && existing.uuid !== req.uuid);
    // judged on the node as registered, before this request teaches it a missing uuid or mac
    const autoApproval: AutoApproval = !isNew && existing.autoApprove && existing.status !== 'denied' ? autoApprovalFor(existing, req, ip) : undefined;
    let node: NodeRecord = isNew
      ? newNode(req.nodeId, now, { uuid: req.uuid, mac: req.mac, variables: req.variables, requestedAt: now, sourceIp: ip })
      : {
          ...existing,
          uuid: existing.uuid ?? req.uuid,
          mac: existing.mac ?? req.mac,
          variables: req.variables,
          requestedAt: now,
          sourceIp: ip,
          // A denial sticks until an admin approves; anything else waits for a decision again, since a
          // uuid or mac alone proves nothing about who asks; an armed auto-approval that this request
          // satisfies is decided below.
          status: existing.status === 'denied' ? 'denied' : autoApproval === 'ok' ? existing.status : 'pending',
        };
    let request = this.newPendingRequest(
      { deviceCodeHash, userCode, clientId: req.clientId, kind: 'node', nodeId: node.id, variables: req.variables, scope: req.scope, audience: req.audience },
      ip,
      now,
    );
    const shown = formatUserCode(userCode);
    const audit: AuditEntry[] = [{ type: 'device_code_issued', subject: node.id, ip, detail: { user_code: shown, variables: req.variables, client_id: req.clientId } }];
    if (node.status === 'denied') {
      request = { ...request, status: 'denied', decidedAt: now, decidedBy: 'denied node' };
    } else if (autoApproval === 'ok') {
      try {
        // approving uses the auto-approval up: one registration, one config handed out unseen
        const { profile, hostname, patches, config } = this.prepareApproval(node, {});
        const actor = 'auto-approve';
        request = { ...request, status: 'approved', decidedAt: now, decidedBy: actor };
        node = { ...node, status: 'approved', autoApprove: false, profile, hostname, patches, config, decidedAt: now, decidedBy: actor };
        audit.push({ type: 'device_approved', actor, subject: node.id, detail: { user_code: shown, profile, hostname } });
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        // the request waits for an admin, pending
        node = { ...node, status: 'pending' };
        audit.push({ type: 'node_render_error', subject: node.id, detail: { error: e.description } });
      }
    } else if (autoApproval !== undefined) {
      // the request waits for an admin; the registration stays armed for the machine it describes
      audit.push({ type: 'auto_approve_refused', subject: node.id, ip, detail: { user_code: shown, reason: autoApproval.refused } });
    }
    return { node, created: isNew, request, audit: audit.map((e) => this.audit.event(e)) };
  }

  /**
   * One poll of POST /token with a device code. When the database cannot be reached, the answer is
   * authorization_pending, not 503: Talos' client (golang.org/x/oauth2 deviceauth.go at 05b174e5,
   * Config.DeviceAccessToken, the `switch e.ErrorCode` in its ticker loop) keeps polling only on
   * authorization_pending ("Do nothing") and slow_down and returns every other error, a 503's
   * temporarily_unavailable included (internal/token.go doTokenRoundTrip makes any non-2xx a
   * RetrieveError with the body's error code), and Talos then abandons the attempt
   * (siderolabs/talos internal/app/machined/pkg/runtime/v1alpha1/platform/metal/oauth2/oauth2.go at
   * 27d208c2, DeviceAuthFlow: "failed to get device access token"), so a database
   * restart of a few seconds would send every booting node back to the start, each to a new code an
   * admin must approve again. slow_down would keep it polling too, but adds 5 s to its interval for
   * the rest of the attempt. Nothing is decided meanwhile: a poll that could not be judged changes
   * nothing, and the next one, once the database is back, is judged as usual.
   */
  async pollToken(tr: DeviceTokenRequest): Promise<TokenResponse | OperatorTokens> {
    this.authenticateClient(tr.client, true);
    try {
      return await this.judgePoll(tr);
    } catch (e) {
      if (!(e instanceof StorageUnavailableError)) throw e;
      throw new OAuthError('authorization_pending', 'the gate cannot reach its database right now; keep polling');
    }
  }

  private async judgePoll(tr: DeviceTokenRequest): Promise<TokenResponse | OperatorTokens> {
    const now = this.now();
    // One storage operation: the request read and its poll bookkeeping written only if no other poll
    // (on this instance or another) changed it meanwhile; decide runs again if one did. A booting
    // rack polls thousands of times a second, so the storage batches these (group commit on SQLite,
    // one statement per burst on PostgreSQL).
    const polled = await this.storage.pollDeviceCode(hashSecret(tr.deviceCode), (current) => {
      // refusals answer before any bookkeeping: a wrong client's poll says nothing of the real one's pace
      if (current.clientId !== tr.client.clientId) return { update: {}, result: 'wrong_client' as const };
      const d = decidePoll(current, { now, basic: tr.client.basic }, this.settings.poll);
      return { update: d.update, result: d.answer };
    });
    if (!polled) throw new OAuthError('invalid_grant', 'unknown device_code');
    const { request: stored, result: answer } = polled;
    switch (answer) {
      case 'wrong_client':
        throw new OAuthError('invalid_grant', 'device_code was issued to another client');
      case 'grant':
        if (stored.kind === 'operator' && this.operators) return this.operators.redeem(stored);
        return this.redeem(stored, now);
      case 'authorization_pending':
        throw new OAuthError('authorization_pending', 'waiting for an admin to approve this node');
      case 'slow_down':
        throw new OAuthError('slow_down', `poll at most every ${Math.ceil(stored.intervalMs / 1000)} s`);
      case 'access_denied':
        throw new OAuthError('access_denied', 'an admin denied this node');
      case 'expired_token':
        throw new OAuthError('expired_token', 'the device code expired; the node will start a new request');
      case 'invalid_grant':
        throw new OAuthError('invalid_grant', 'device_code was already used');
    }
  }

  /** Marks the code used and issues the node's token in one storage operation: one code, one token. */
  private async redeem(request: DeviceRequestRecord, now: number): Promise<TokenResponse> {
    const token = generateSecret();
    const nodeId = request.nodeId as string;
    const event = await this.storage.redeemDeviceCode(
      request.id,
      { tokenHash: hashSecret(token), nodeId, deviceRequestId: request.id, issuedAt: now, expiresAt: now + this.settings.tokenTtlMs, revokedAt: null },
      this.audit.event({ type: 'node_token_issued', subject: nodeId, ip: request.sourceIp }),
    );
    if (!event) throw new OAuthError('invalid_grant', 'device_code was already used');
    this.audit.published(event);
    return { access_token: token, token_type: 'Bearer', expires_in: Math.floor(this.settings.tokenTtlMs / 1000) };
  }

  // --- machine config download -------------------------------------------------------------

  /**
   * The config for the node a bearer token is bound to. Query values, when present, must match what
   * the node sent, so a token never fetches another node's config by asking for it.
   */
  async fetchConfig(bearer: string | undefined, query: Record<string, string | undefined>, ip: string): Promise<string> {
    if (!bearer) throw new OAuthError('invalid_token', 'a Bearer access token is required');
    // the token and its node in one read, the count and its audit event in one write
    const found = await this.storage.getNodeTokenWithNode(hashSecret(bearer));
    const now = this.now();
    if (!found || found.token.revokedAt !== null || found.token.expiresAt <= now) {
      throw new OAuthError('invalid_token', 'the access token is unknown, expired or revoked');
    }
    const { token, node } = found;
    if (!node || node.status !== 'approved' || node.config === null) {
      await this.audit.record({ type: 'config_refused', subject: token.nodeId, ip, detail: { reason: `node is ${node?.status}` } });
      throw new ApiError('forbidden', 'this node is not approved');
    }
    for (const key of ['uuid', 'mac', 'serial', 'hostname'] as const) {
      const asked = query[key];
      const sent = node.variables[key];
      if (isUnfilled(asked) || isUnfilled(sent)) continue;
      const same = key === 'uuid' || key === 'mac' ? asked?.toLowerCase() === sent?.toLowerCase() : asked === sent;
      if (!same) {
        await this.audit.record({ type: 'config_refused', subject: node.id, ip, detail: { reason: `${key} does not match the token's node` } });
        throw new ApiError('forbidden', `${key} does not match the node this token was issued to`);
      }
    }
    this.audit.published(await this.storage.recordConfigDownloadAudited(node.id, now, ip, this.audit.event({ type: 'config_downloaded', subject: node.id, ip })));
    return node.config;
  }

  // --- admin ---------------------------------------------------------------------------------

  profileNames(): string[] {
    return Object.keys(this.renderer.profiles);
  }

  /** The profile approvals without one get (marked default: true), if the config has one. */
  defaultProfile(): string | undefined {
    return this.renderer.defaultProfile;
  }

  /**
   * A page of nodes, newest first, optionally by state and a search prefix. "pending" means waiting
   * for a decision: a node that asked and was not decided, or an unexpired pending request of a node
   * decided before (it asked again while an older code was approved); "registered": registered by an
   * admin and never asked. `q` is a prefix of uuid, mac, serial, hostname or source IP, any case.
   * `cursor` is a page's nextCursor, as it came.
   */
  async listNodes(
    query: { state?: NodeState | undefined; q?: string | undefined } = {},
    page: { limit?: number | undefined; cursor?: string | undefined } = {},
  ): Promise<NodeList> {
    const limit = Math.min(Math.max(1, page.limit ?? NODE_PAGE_DEFAULT), NODE_PAGE_MAX);
    const { state } = query;
    const filter: NodeFilter =
      state === 'pending' ? { awaitingDecisionAt: this.now() } : state === 'registered' ? { registered: true } : state ? { status: state } : {};
    if (query.q !== undefined && query.q !== '') {
      const q = query.q.trim().toLowerCase();
      if (!SEARCH_PREFIX.test(q)) throw new ApiError('invalid_request', 'q must be 1-128 printable ASCII characters');
      filter.prefix = q;
    }
    // one more than asked: whether it comes says whether there is a next page
    const rows = await this.storage.listNodes(filter, { limit: limit + 1, after: page.cursor === undefined ? undefined : decodeNodeCursor(page.cursor) });
    const nodes = rows.slice(0, limit);
    const last = nodes[nodes.length - 1];
    return { nodes: await this.views(nodes), nextCursor: rows.length > limit && last ? encodeNodeCursor(last) : null };
  }

  /**
   * How many nodes the dashboard's tabs hold, from index ranges, never a pass over the rows of the
   * whole fleet (the dashboard asks at every load, with 10,000 nodes and more): nodes by status (one
   * pass over the status index), registered ones (the pending nodes' range of it), and
   * for the waiting tab the node requests waiting now, as /metrics counts them (the unexpired range
   * of the requests' expiry index; a node that asked twice counts twice).
   */
  async stateCounts(): Promise<StateCounts> {
    const byStatus = await this.storage.countNodesByStatus();
    return {
      waiting: (await this.storage.waitingNodeRequests(this.now())).count,
      registered: await this.storage.countNodes({ registered: true }),
      approved: byStatus.approved,
      denied: byStatus.denied,
      revoked: byStatus.revoked,
    };
  }

  async getNode(id: string): Promise<NodeView> {
    return this.view(await this.mustGetNode(id));
  }

  /** The pending request behind a user code typed by a person, for the confirm step. */
  async findPendingByUserCode(input: string): Promise<{ request: DeviceRequestRecord; node: NodeRecord | undefined }> {
    const code = normalizeUserCode(input);
    const request = code === undefined ? undefined : await this.storage.getDeviceRequestByUserCode(code);
    if (!request || request.status !== 'pending' || request.expiresAt < this.now()) {
      throw new ApiError('not_found', 'no pending request has this code');
    }
    return { request, node: request.nodeId === null ? undefined : await this.mustGetNode(request.nodeId) };
  }

  /** Like findPendingByUserCode, for node requests only (the admin API approves machines, not logins). */
  async findPendingMachine(input: string): Promise<{ request: DeviceRequestRecord; node: NodeRecord }> {
    const { request, node } = await this.findPendingByUserCode(input);
    if (!node) throw new ApiError('not_found', 'no pending machine has this code');
    return { request, node };
  }

  async approveByUserCode(userCode: string, decision: Decision, actor: string): Promise<NodeView> {
    const code = normalizeUserCode(userCode);
    if (code === undefined) throw new ApiError('not_found', 'no pending request has this code');
    return this.approve({ userCode: code }, decision, actor, 'no pending machine has this code');
  }

  async approveNode(id: string, decision: Decision, actor: string): Promise<NodeView> {
    const node = await this.mustGetNode(id);
    const request = await this.onlyPendingRequest(node);
    return this.approve({ requestId: request.id }, decision, actor, `node ${node.id} has no pending request; it asks again when it boots`);
  }

  /**
   * One storage operation (two round trips on PostgreSQL): the request and its node read, the
   * approval planned on them (the config rendered from what was read), and the request, the node
   * and the audit event written together, only if neither changed meanwhile (else planned again).
   */
  private async approve(find: { requestId: number } | { userCode: string }, decision: Decision, actor: string, notFound: string): Promise<NodeView> {
    const decided = await this.storage.decideNodeRequest(find, (request, node) => this.planApproval(request, node, decision, actor));
    if (!decided) throw new ApiError('not_found', notFound);
    for (const e of decided.audit) this.audit.published(e);
    return this.view(decided.node);
  }

  private async onlyPendingRequest(node: NodeRecord): Promise<DeviceRequestRecord> {
    const now = this.now();
    const pending = (await this.storage.listDeviceRequests({ nodeId: node.id, status: 'pending' })).filter((r) => r.expiresAt >= now);
    if (pending.length === 0) {
      throw new ApiError('conflict', `node ${node.id} has no pending request; it asks again when it boots`);
    }
    if (pending.length > 1) {
      // Two machines claim the same uuid/mac (or one rebooted): only the code on the console tells which.
      throw new ApiError('conflict', `node ${node.id} has ${pending.length} pending requests; approve by user_code`);
    }
    return pending[0] as DeviceRequestRecord;
  }

  /** What an approval writes: the profile, hostname and patches decided on, and the config they render. */
  private prepareApproval(node: NodeRecord, decision: Decision): Approval {
    const profile = decision.profile ?? node.profile ?? this.renderer.defaultProfile;
    if (!profile) throw new ApiError('invalid_request', 'profile is required (no profile is marked default: true in the config)');
    if (!this.renderer.hasProfile(profile)) {
      throw new ApiError('invalid_request', `unknown profile ${JSON.stringify(profile)} (known: ${Object.keys(this.renderer.profiles).join(', ')})`);
    }
    const hostname = checkHostname(decision.hostname) ?? node.hostname ?? defaultHostname(node);
    const patches = decision.patches ?? node.patches;
    const config = this.render(node, profile, hostname, patches);
    return { profile, hostname, patches, config };
  }

  /** What an admin's approval writes, planned on the request and node as read: pure but for the render (it may run twice). */
  private planApproval(request: DeviceRequestRecord, node: NodeRecord, decision: Decision, actor: string): DecisionPlan {
    const now = this.now();
    // a code that is not pending (decided, used, or a login's) is no code to approve, as the confirm page says
    if (request.status !== 'pending' || request.expiresAt < now) throw new ApiError('not_found', 'no pending request has this code');
    const { profile, hostname, patches, config } = this.prepareApproval(node, decision);
    return {
      request: { ...request, status: 'approved', decidedAt: now, decidedBy: actor },
      node: {
        ...node,
        status: 'approved',
        // the first approval, automatic or by an admin, uses up a registration's auto-approval
        autoApprove: false,
        profile,
        hostname,
        patches,
        config,
        decidedAt: now,
        decidedBy: actor,
      },
      audit: [this.audit.event({ type: 'device_approved', actor, subject: node.id, detail: { user_code: formatUserCode(request.userCode), profile, hostname } })],
    };
  }

  private render(node: NodeRecord, profile: string, hostname: string, patches: PatchSpec[]): string {
    try {
      return this.renderer.render(
        profile,
        {
          uuid: node.uuid,
          mac: node.mac,
          serial: isUnfilled(node.variables.serial) ? null : (node.variables.serial as string),
          hostname,
        },
        patches,
      );
    } catch (e) {
      if (e instanceof RenderError) throw new ApiError('invalid_config', e.message);
      throw e;
    }
  }

  async denyNode(id: string, actor: string): Promise<NodeView> {
    const node = await this.mustGetNode(id);
    return this.view(await this.deny(node, actor));
  }

  async denyByUserCode(userCode: string, actor: string): Promise<NodeView> {
    const { node } = await this.findPendingMachine(userCode);
    return this.view(await this.deny(node, actor));
  }

  private async deny(node: NodeRecord, actor: string): Promise<NodeRecord> {
    if (node.status === 'denied') throw new ApiError('conflict', `node ${node.id} is already denied`);
    const now = this.now();
    return this.storage.transaction(async (tx) => {
      for (const r of await tx.listDeviceRequests({ nodeId: node.id, status: 'pending' })) {
        await tx.updateDeviceRequest(r.id, (x) => ({ ...x, status: 'denied', decidedAt: now, decidedBy: actor }));
      }
      await tx.revokeNodeTokens(node.id, now);
      const updated = await tx.updateNode(node.id, (n) => ({ ...n, status: 'denied', autoApprove: false, decidedAt: now, decidedBy: actor }));
      await this.audit.record({ type: 'device_denied', actor, subject: node.id }, tx);
      return updated;
    });
  }

  async revokeNode(id: string, actor: string): Promise<NodeView> {
    const node = await this.mustGetNode(id);
    if (node.status !== 'approved') throw new ApiError('conflict', `only an approved node can be revoked; node ${id} is ${node.status}`);
    const now = this.now();
    const updated = await this.storage.transaction(async (tx) => {
      const tokens = await tx.revokeNodeTokens(node.id, now);
      const n = await tx.updateNode(node.id, (x) => ({ ...x, status: 'revoked', autoApprove: false, decidedAt: now, decidedBy: actor }));
      await this.audit.record({ type: 'node_revoked', actor, subject: node.id, detail: { tokens_revoked: tokens } }, tx);
      return n;
    });
    return this.view(updated);
  }

  /**
   * Forgets a node: its record, requests and tokens. Its next boot starts afresh as pending; this is
   * how a denial is undone, and how a machine that left the fleet is cleaned up.
   */
  async forgetNode(id: string, actor: string): Promise<void> {
    const node = await this.mustGetNode(id);
    await this.storage.deleteNode(node.id);
    await this.audit.record({ type: 'node_forgotten', actor, subject: node.id, detail: { status: node.status } });
  }

  /**
   * Checks a registration and puts it in stored form (lower-case ids, the default profile when it
   * names none); throws ApiError naming the first problem. Touches nothing.
   */
  checkRegistration(reg: Registration): CheckedRegistration {
    const uuid = reg.uuid?.toLowerCase();
    const mac = reg.mac?.toLowerCase();
    if (uuid !== undefined && !NODE_ID.test(uuid)) throw new ApiError('invalid_request', 'uuid must be 1-64 letters, digits, ".", "_", ":" or "-"');
    if (mac !== undefined && !MAC.test(mac)) throw new ApiError('invalid_request', 'mac must be in colon form, e.g. 52:54:00:ab:cd:ef');
    const id = uuid ?? mac;
    if (id === undefined) throw new ApiError('invalid_request', 'uuid or mac is required');
    const profile = reg.profile || this.renderer.defaultProfile;
    if (!profile) throw new ApiError('invalid_request', 'profile is required (no profile is marked default: true in the config)');
    if (!this.renderer.hasProfile(profile)) throw new ApiError('invalid_request', `unknown profile ${JSON.stringify(profile)}`);
    const hostname = checkHostname(reg.hostname) ?? null;
    const cidrs = checkCidrs(reg.autoApproveCidrs) ?? [];
    if (cidrs.length > 0 && reg.autoApprove !== true) throw new ApiError('invalid_request', 'auto_approve_cidrs needs auto_approve: true');
    if (reg.serial !== undefined && !/^[\x20-\x7e]{1,128}$/.test(reg.serial)) throw new ApiError('invalid_request', 'serial must be 1-128 printable ASCII characters');
    const patches = reg.patches ?? [];
    try {
      this.renderer.checkPatches(patches);
    } catch (e) {
      if (e instanceof RenderError) throw new ApiError('invalid_config', e.message);
      throw e;
    }
    return { id, uuid: uuid ?? null, mac: mac ?? null, serial: reg.serial ?? null, profile, hostname, patches, autoApprove: reg.autoApprove === true, autoApproveCidrs: cidrs };
  }

  /** The node a checked registration makes: armed registrations count as approved, as they always did. */
  private registeredNode(c: CheckedRegistration, createdAt: number, actor: string): NodeRecord {
    const now = this.now();
    return newNode(c.id, createdAt, {
      uuid: c.uuid,
      mac: c.mac,
      // the inventory's serial, so a search finds the node before it boots; what it sends replaces it
      variables: c.serial === null ? {} : { serial: c.serial },
      status: c.autoApprove ? 'approved' : 'pending',
      profile: c.profile,
      hostname: c.hostname,
      patches: c.patches,
      autoApprove: c.autoApprove,
      autoApproveCidrs: c.autoApproveCidrs,
      decidedAt: c.autoApprove ? now : null,
      decidedBy: c.autoApprove ? actor : null,
    });
  }

  /** Pre-registers a node from inventory so it is decided without a click when it boots. */
  async register(reg: Registration, actor: string): Promise<NodeView> {
    const c = this.checkRegistration(reg);
    let node: NodeRecord;
    try {
      node = await this.storage.createNode(this.registeredNode(c, this.now(), actor));
    } catch (e) {
      if (e instanceof AlreadyExistsError) throw new ApiError('conflict', `node ${c.id} already exists`);
      throw e;
    }
    await this.audit.record({
      type: 'node_registered',
      actor,
      subject: c.id,
      detail: { profile: c.profile, auto_approve: node.autoApprove, ...(c.autoApproveCidrs.length ? { auto_approve_cidrs: c.autoApproveCidrs } : {}) },
    });
    return this.view(node);
  }

  /**
   * Registers checked registrations, or updates the nodes they name, all in one transaction: any row
   * refused (a denied node to auto-approve, a uuid and mac naming two different nodes) undoes every
   * row, and the refusals come back with their lines. A node that never asked is registered afresh
   * from its row; one that asked keeps what it sent and gets the row's profile, hostname and
   * auto-approval. With dryRun the same runs and is rolled back, so it answers exactly what an import
   * would do.
   */
  async importRegistrations(rows: { line: number; reg: CheckedRegistration }[], actor: string, dryRun: boolean): Promise<ImportSummary> {
    const rollBack = Symbol('dry run');
    let summary: ImportSummary = { created: 0, updated: 0, unchanged: 0 };
    try {
      await this.storage.transaction(async (tx) => {
        const problems: RowProblem[] = [];
        const events: { id: string; reg: CheckedRegistration; updated: boolean }[] = [];
        const counts: ImportSummary = { created: 0, updated: 0, unchanged: 0 };
        for (const { line, reg } of rows) {
          const existing = (await tx.getNode(reg.id)) ?? (reg.uuid !== null && reg.mac !== null ? await tx.getNode(reg.mac) : undefined);
          if (!existing) {
            await tx.createNode(this.registeredNode(reg, this.now(), actor));
            counts.created++;
            events.push({ id: reg.id, reg, updated: false });
            continue;
          }
          for (const key of ['uuid', 'mac'] as const) {
            if (reg[key] !== null && existing[key] !== null && existing[key] !== reg[key]) {
              problems.push({ line, error: `node ${existing.id} has ${key} ${existing[key]}, not ${reg[key]}` });
            }
          }
          if (existing.status === 'denied' && reg.autoApprove) problems.push({ line, error: `node ${existing.id} is denied; forget it before arming auto_approve` });
          if (problems.length > 0) continue;
          const next: NodeRecord =
            existing.requestedAt === null
              ? { ...this.registeredNode(reg, existing.createdAt, actor), id: existing.id, uuid: reg.uuid ?? existing.uuid, mac: reg.mac ?? existing.mac }
              : {
                  ...existing,
                  uuid: existing.uuid ?? reg.uuid,
                  mac: existing.mac ?? reg.mac,
                  profile: reg.profile,
                  hostname: reg.hostname ?? existing.hostname,
                  autoApprove: reg.autoApprove,
                  autoApproveCidrs: reg.autoApproveCidrs,
                };
          const same = (['uuid', 'mac', 'profile', 'hostname', 'autoApprove', 'status'] as const).every((k) => next[k] === existing[k]) &&
            JSON.stringify(next.autoApproveCidrs) === JSON.stringify(existing.autoApproveCidrs) &&
            JSON.stringify(next.variables) === JSON.stringify(existing.variables);
          if (same) {
            counts.unchanged++;
            continue;
          }
          await tx.updateNode(existing.id, (n) => ({ ...next, configDownloads: n.configDownloads, lastDownloadAt: n.lastDownloadAt, lastDownloadIp: n.lastDownloadIp }));
          counts.updated++;
          events.push({ id: existing.id, reg, updated: true });
        }
        if (problems.length > 0) throw new ApiError('invalid_request', `${problems.length} of ${rows.length} rows refused; nothing was imported`, problems);
        summary = counts;
        if (dryRun) throw rollBack;
        // audited only once every row is in: the audit sink hears of an event as it is written
        for (const e of events) {
          await this.audit.record(
            { type: 'node_registered', actor, subject: e.id, detail: { profile: e.reg.profile, auto_approve: e.reg.autoApprove, imported: true, updated: e.updated } },
            tx,
          );
        }
      });
    } catch (e) {
      if (e !== rollBack) throw e;
    }
    return summary;
  }

  /**
   * Arms a node's auto-approval again (it is used up by the node's first approval): its next request
   * that presents every identifier the node has, from one of `cidrs` when given, is approved without a
   * click, once. `cidrs` undefined keeps the node's current list; [] allows any source.
   */
  async armAutoApprove(id: string, cidrs: string[] | undefined, actor: string): Promise<NodeView> {
    const node = await this.mustGetNode(id);
    const list = checkCidrs(cidrs) ?? node.autoApproveCidrs;
    if (node.status === 'denied') throw new ApiError('conflict', `node ${node.id} is denied; forget it first`);
    if (node.profile === null) throw new ApiError('conflict', `node ${node.id} has no profile yet; approve it once or register it`);
    const updated = await this.storage.updateNode(node.id, (n) => ({ ...n, autoApprove: true, autoApproveCidrs: list }));
    await this.audit.record({ type: 'auto_approve_armed', actor, subject: node.id, detail: { auto_approve_cidrs: list } });
    return this.view(updated);
  }

  private async mustGetNode(id: string): Promise<NodeRecord> {
    const node = await this.storage.getNode(id.toLowerCase());
    if (!node) throw new ApiError('not_found', `node ${id} not found`);
    return node;
  }

  /** A node as the API shows it; `requests` are its pending requests when the caller fetched them already. */
  private async view(n: NodeRecord | NodeSummary, requests?: DeviceRequestRecord[]): Promise<NodeView> {
    return this.viewWith(n, requests ?? (await this.storage.listDeviceRequests({ nodeId: n.id, status: 'pending' })));
  }

  private viewWith(n: NodeRecord | NodeSummary, requests: DeviceRequestRecord[]): NodeView {
    const now = this.now();
    const { config: _config, ...rest } = n as NodeRecord; // why the cast: a summary simply has no config to leave out
    const live = requests.filter((r) => r.expiresAt >= now);
    const pending = live
      .slice(-PENDING_SHOWN)
      .map((r) => ({ userCode: formatUserCode(r.userCode), requestedAt: r.createdAt, expiresAt: r.expiresAt, sourceIp: r.sourceIp }));
    const state: NodeState = n.status === 'pending' && n.requestedAt === null ? 'registered' : n.status;
    return { ...rest, state, pending, pendingCount: live.length };
  }

  /** Views of many nodes with one query for all their pending requests, not one per node. */
  private async views(nodes: NodeSummary[]): Promise<NodeView[]> {
    const byNode = new Map<string, DeviceRequestRecord[]>();
    if (nodes.length === 0) return [];
    for (const r of await this.storage.listDeviceRequests({ nodeIds: nodes.map((n) => n.id), status: 'pending' })) {
      if (r.nodeId === null) continue;
      const list = byNode.get(r.nodeId);
      if (list) list.push(r);
      else byNode.set(r.nodeId, [r]);
    }
    return nodes.map((n) => this.viewWith(n, byNode.get(n.id) ?? []));
  }

  /** The rendered config of a node, for admins checking what a node gets. */
  async nodeConfig(id: string): Promise<string> {
    const node = await this.mustGetNode(id);
    if (node.config === null) throw new ApiError('not_found', `node ${id} has no rendered config (it is ${node.status})`);
    return node.config;
  }

  /**
   * Everything an admin's node page shows: the node, the config it is handed, what its templates
   * render for it now (to tell whether an edit of a template would change it), and its device
   * requests. Renders, stores nothing.
   */
  async reviewNode(id: string): Promise<NodeReview> {
    const node = await this.mustGetNode(id);
    const requests = await this.storage.listDeviceRequests({ nodeId: node.id });
    return {
      node: await this.view(node, requests.filter((r) => r.status === 'pending')),
      config: node.config,
      renderedNow: node.config === null ? null : this.renderAsStored(node),
      requests: requests.slice(-REVIEW_REQUESTS).reverse(),
      requestCount: requests.length,
    };
  }

  /** What the templates render now for a node's stored profile, hostname and patches, or why they cannot. */
  private renderAsStored(node: NodeRecord): { config: string } | { error: string } {
    if (node.profile === null) return { error: `node ${node.id} has no profile` };
    try {
      return { config: this.render(node, node.profile, node.hostname ?? defaultHostname(node), node.patches) };
    } catch (e) {
      if (e instanceof ApiError) return { error: e.description };
      throw e;
    }
  }

  /**
   * Stores what the templates render now as an approved node's config: the way a template edit
   * reaches nodes approved before it (a config is rendered once, at approval). Same profile, hostname
   * and patches; refused when any of them changed between the render and the write.
   */
  async rerenderNode(id: string, actor: string): Promise<{ node: NodeView; changed: boolean }> {
    const node = await this.mustGetNode(id);
    if (node.status !== 'approved' || node.profile === null) {
      throw new ApiError('conflict', `only an approved node is re-rendered; node ${node.id} is ${node.status}`);
    }
    const hostname = node.hostname ?? defaultHostname(node);
    const config = this.render(node, node.profile, hostname, node.patches);
    const changed = config !== node.config;
    const updated = await this.storage.transaction(async (tx) => {
      const n = await tx.updateNode(node.id, (x) => {
        if (x.status !== 'approved') throw new ApiError('conflict', `node ${x.id} is ${x.status} now`);
        if (x.profile !== node.profile || x.hostname !== node.hostname || JSON.stringify(x.patches) !== JSON.stringify(node.patches)) {
          throw new ApiError('conflict', `node ${x.id} changed while it was rendered; try again`);
        }
        return { ...x, config };
      });
      await this.audit.record({ type: 'node_rerendered', actor, subject: node.id, detail: { profile: node.profile, hostname, changed } }, tx);
      return n;
    });
    return { node: await this.view(updated), changed };
  }
}

function checkHostname(h: string | undefined): string | undefined {
  if (h === undefined || h === '') return undefined;
  const lower = h.toLowerCase();
  if (!HOSTNAME.test(lower)) throw new ApiError('invalid_request', `hostname ${JSON.stringify(h.slice(0, 80))} is not a valid DNS name`);
  return lower;
}

/** The node's own hostname when it sent a usable one, else talos-<last 6 hex of mac or 8 of uuid>. */
export function defaultHostname(node: Pick<NodeRecord, 'uuid' | 'mac' | 'variables'>): string {
  const sent = node.variables.hostname;
  if (!isUnfilled(sent) && HOSTNAME.test((sent as string).toLowerCase())) return (sent as string).toLowerCase();
  if (node.mac) return `talos-${node.mac.replace(/:/g, '').slice(-6)}`;
  const hex = (node.uuid ?? '').replace(/[^0-9a-z]/g, '').slice(0, 8);
  return `talos-${hex || 'node'}`;
}
