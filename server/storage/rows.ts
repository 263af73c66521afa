// Rows as the databases give them, and their conversion to the records of storage.ts: the one place
// where a column's representation (0/1 for booleans, JSON text for lists and maps, numbers for
// millisecond times) is known. SQLite stores exactly this; the PostgreSQL backend's pool parses its
// BOOLEAN and BIGINT columns into the same shape (server/storage/postgres/pool.ts), so both backends
// share these converters.
//
// Sealed columns (SEALED_COLUMNS below) hold AES-GCM ciphertext bound to their row (server/secrets/
// sealed-box.ts): the converters seal on the way in and open on the way out with the RowCipher the
// backend was opened with, so nothing above storage ever sees a sealed value, and nothing below it a
// plaintext one.
import type { SealedAt } from '../secrets/sealed-box.js';
import {
  newDeviceRequest,
  newNode,
  type AuditEvent,
  type BlockedSubject,
  type CertificateRecord,
  type NewCertificate,
  type DeviceRequestRecord,
  type DeviceRequestStatus,
  type NodeRecord,
  type NodeSummary,
  type NodeTokenRecord,
  type OperatorGrantRecord,
  type RefreshTokenRecord,
  type SealedColumn,
  type WebSessionRecord,
} from './storage.js';

/** Seals and opens the values of sealed columns (a SealedBox); open throws SealedValueError. */
export interface RowCipher {
  seal(plaintext: string, at: SealedAt): string;
  open(sealed: string, at: SealedAt): string;
}

/**
 * Every sealed column. Machine configs and per-node patches carry cluster secrets (CA keys, tokens);
 * IdP refresh tokens let their holder act as the user at the IdP; a pending sign-in holds the PKCE
 * verifier and nonce. Hashes (device codes, tokens) are hashes already; searchable fields (uuid, mac,
 * hostname) stay plain so they can be looked up.
 */
export const SEALED_COLUMNS: readonly SealedColumn[] = [
  { table: 'nodes', column: 'config', idColumn: 'id' },
  { table: 'nodes', column: 'patches', idColumn: 'id' },
  { table: 'web_sessions', column: 'login', idColumn: 'id_hash' },
  { table: 'web_sessions', column: 'idp_refresh_token', idColumn: 'id_hash' },
  { table: 'operator_grants', column: 'idp_refresh_token', idColumn: 'id' },
  { table: 'instance_secrets', column: 'value', idColumn: 'name' },
  { table: 'gate_signing_keys', column: 'private_key', idColumn: 'kid' },
];

/** The entry of SEALED_COLUMNS for a column, so SQL only ever names the tables and columns of that list. */
export function sealedColumn(col: SealedColumn): SealedColumn {
  const c = SEALED_COLUMNS.find((x) => x.table === col.table && x.column === col.column);
  if (!c) throw new Error(`storage: ${col.table}.${col.column} is not a sealed column`);
  return c;
}

const sealNullable = (c: RowCipher, v: string | null, at: SealedAt): string | null => (v === null ? null : c.seal(v, at));
const openNullable = (c: RowCipher, v: string | null, at: SealedAt): string | null => (v === null ? null : c.open(v, at));
const at = (table: SealedColumn['table'], column: string, rowId: string): SealedAt => ({ table, column, rowId });

// The shared secrets (cookie secret, admin token, TLS keys: server/secrets/instance-secrets.ts) and
// the gate-token signing keys are bytes, sealed as their base64 text bound to their name or kid.
export const sealInstanceSecret = (c: RowCipher, name: string, value: Buffer): string => c.seal(value.toString('base64'), at('instance_secrets', 'value', name));
export const openInstanceSecret = (c: RowCipher, name: string, stored: string): Buffer => Buffer.from(c.open(stored, at('instance_secrets', 'value', name)), 'base64');
export const sealSigningKey = (c: RowCipher, kid: string, pkcs8: Buffer): string => c.seal(pkcs8.toString('base64'), at('gate_signing_keys', 'private_key', kid));
export const openSigningKey = (c: RowCipher, kid: string, stored: string): Buffer => Buffer.from(c.open(stored, at('gate_signing_keys', 'private_key', kid)), 'base64');

export interface NodeRow {
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

export interface DeviceRequestRow {
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

export interface NodeTokenRow {
  token_hash: string;
  node_id: string;
  device_request_id: number;
  issued_at: number;
  expires_at: number;
  revoked_at: number | null;
}

export interface AuditRow {
  id: number;
  at: number;
  type: string;
  actor: string | null;
  subject: string | null;
  ip: string | null;
  detail: string;
}

export interface CertificateRow {
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

export interface BlockedRow {
  subject: string;
  blocked_at: number;
  blocked_by: string | null;
  reason: string | null;
}

export const certificateFromRow = (r: CertificateRow): CertificateRecord => ({
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

/** A new certificate record as its row, without the id the database gives it. */
export const certificateToRow = (c: NewCertificate): Omit<CertificateRow, 'id'> => ({
  serial: c.serial,
  fingerprint: c.fingerprint,
  subject: c.subject,
  email: c.email,
  common_name: c.commonName,
  issuer: c.issuer,
  roles: JSON.stringify(c.roles),
  issued_at: c.issuedAt,
  expires_at: c.expiresAt,
  client_ip: c.clientIp,
  source: c.source,
});

export const blockedFromRow = (r: BlockedRow): BlockedSubject => ({
  subject: r.subject,
  blockedAt: r.blocked_at,
  blockedBy: r.blocked_by,
  reason: r.reason,
});

export interface WebSessionRow {
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

export const sessionFromRow = (r: WebSessionRow, c: RowCipher): WebSessionRecord => sessionFromOpenRow({
  ...r,
  login: openNullable(c, r.login, at('web_sessions', 'login', r.id_hash)),
  idp_refresh_token: openNullable(c, r.idp_refresh_token, at('web_sessions', 'idp_refresh_token', r.id_hash)),
});

const sessionFromOpenRow = (r: WebSessionRow): WebSessionRecord => ({
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

export const sessionToRow = (s: WebSessionRecord, c: RowCipher): WebSessionRow => {
  const r = sessionToOpenRow(s);
  return {
    ...r,
    login: sealNullable(c, r.login, at('web_sessions', 'login', r.id_hash)),
    idp_refresh_token: sealNullable(c, r.idp_refresh_token, at('web_sessions', 'idp_refresh_token', r.id_hash)),
  };
};

const sessionToOpenRow = (s: WebSessionRecord): WebSessionRow => ({
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

export interface GrantRow {
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

export const grantFromRow = (r: GrantRow, c: RowCipher): OperatorGrantRecord => ({
  id: r.id,
  clientId: r.client_id,
  sub: r.sub,
  email: r.email,
  claims: JSON.parse(r.claims) as Record<string, unknown>,
  idpRefreshToken: openNullable(c, r.idp_refresh_token, at('operator_grants', 'idp_refresh_token', r.id)),
  createdAt: r.created_at,
  refreshedAt: r.refreshed_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  revokedReason: r.revoked_reason,
});

export const grantToRow = (g: OperatorGrantRecord, c: RowCipher): GrantRow => ({
  id: g.id,
  client_id: g.clientId,
  sub: g.sub,
  email: g.email,
  claims: JSON.stringify(g.claims),
  idp_refresh_token: sealNullable(c, g.idpRefreshToken, at('operator_grants', 'idp_refresh_token', g.id)),
  created_at: g.createdAt,
  refreshed_at: g.refreshedAt,
  expires_at: g.expiresAt,
  revoked_at: g.revokedAt,
  revoked_reason: g.revokedReason,
});

export interface RefreshRow {
  token_hash: string;
  grant_id: string;
  issued_at: number;
  expires_at: number;
  used_at: number | null;
}

export const nodeFromRow = (r: NodeRow, c: RowCipher): NodeRecord => ({
  id: r.id,
  uuid: r.uuid,
  mac: r.mac,
  variables: JSON.parse(r.variables) as NodeRecord['variables'],
  status: r.status,
  profile: r.profile,
  hostname: r.hostname,
  patches: JSON.parse(c.open(r.patches, at('nodes', 'patches', r.id))) as NodeRecord['patches'],
  autoApprove: r.auto_approve === 1,
  autoApproveCidrs: JSON.parse(r.auto_approve_cidrs) as string[],
  config: openNullable(c, r.config, at('nodes', 'config', r.id)),
  createdAt: r.created_at,
  requestedAt: r.requested_at,
  sourceIp: r.source_ip,
  decidedAt: r.decided_at,
  decidedBy: r.decided_by,
  configDownloads: r.config_downloads,
  lastDownloadAt: r.last_download_at,
  lastDownloadIp: r.last_download_ip,
});

export const summaryFromRow = (r: Omit<NodeRow, 'config'>, c: RowCipher): NodeSummary => {
  const { config: _config, ...summary } = nodeFromRow({ ...r, config: null }, c);
  return summary;
};


export const nodeToRow = (n: NodeRecord, c: RowCipher): NodeRow => ({
  id: n.id,
  uuid: n.uuid,
  mac: n.mac,
  variables: JSON.stringify(n.variables),
  status: n.status,
  profile: n.profile,
  hostname: n.hostname,
  patches: c.seal(JSON.stringify(n.patches), at('nodes', 'patches', n.id)),
  auto_approve: n.autoApprove ? 1 : 0,
  auto_approve_cidrs: JSON.stringify(n.autoApproveCidrs),
  config: sealNullable(c, n.config, at('nodes', 'config', n.id)),
  created_at: n.createdAt,
  requested_at: n.requestedAt,
  source_ip: n.sourceIp,
  decided_at: n.decidedAt,
  decided_by: n.decidedBy,
  config_downloads: n.configDownloads,
  last_download_at: n.lastDownloadAt,
  last_download_ip: n.lastDownloadIp,
});

export const requestFromRow = (r: DeviceRequestRow): DeviceRequestRecord => ({
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

export const requestToRow = (r: DeviceRequestRecord): DeviceRequestRow => ({
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

export const tokenFromRow = (r: NodeTokenRow): NodeTokenRecord => ({
  tokenHash: r.token_hash,
  nodeId: r.node_id,
  deviceRequestId: r.device_request_id,
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
});

export const auditFromRow = (r: AuditRow): AuditEvent => ({
  id: r.id,
  at: r.at,
  type: r.type,
  actor: r.actor,
  subject: r.subject,
  ip: r.ip,
  detail: JSON.parse(r.detail) as Record<string, unknown>,
});

export function columns(row: object, skip: string[] = []): string[] {
  return Object.keys(row).filter((k) => !skip.includes(k));
}

/** A request as stored when created: nothing decided or polled yet; the backend assigns the id. */
/** A request as createDeviceRequest stores it: nothing decided or polled yet (its id is the storage's). */
export const newRequestRecord = newDeviceRequest;

export function blankRequest(): DeviceRequestRecord {
  return newDeviceRequest({
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
  });
}


export const refreshFromRow = (r: RefreshRow): RefreshTokenRecord => ({
  tokenHash: r.token_hash,
  grantId: r.grant_id,
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
  usedAt: r.used_at,
});

/** The columns of each table written from a record, in one fixed order. */
const NO_CIPHER: RowCipher = { seal: (v) => v, open: (v) => v }; // only to list the columns below
export const NODE_COLUMNS = columns(nodeToRow(newNode('', 0), NO_CIPHER));
export const NODE_SUMMARY_COLUMNS = columns(nodeToRow(newNode('', 0), NO_CIPHER), ['config']);
export const REQUEST_COLUMNS = columns(requestToRow(blankRequest()), ['id']);
