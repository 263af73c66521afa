import { setTimeout as sleep } from 'node:timers/promises';
import { request, type HttpResponse } from './http.js';
import type { DeviceCodeResponse as DeviceCode } from './talos-node.js';
import type { ExchangeResponse } from '../server/exchange/service.js';

// The gate's HTTP API as the CLI uses it. The CLI talks to the gate only through this.

export interface GateConnection {
  server: string;
  /** PEM the gate's certificate must chain to (--server-ca); the system CAs otherwise. */
  ca?: string | undefined;
  /**
   * Whether /exchange takes our key (the gate's discovery, client_keys): false when Talos signs
   * and makes the key itself. Unknown (an older gate) counts as true.
   */
  clientKeys?: boolean | undefined;
}

export class GateApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(description ? `${error}: ${description}` : error || `HTTP ${status}`);
    this.name = 'GateApiError';
  }

  /** Refusals that trying again will not fix: the login is over. */
  get permanent(): boolean {
    return ['invalid_grant', 'access_denied', 'expired_token', 'invalid_token', 'invalid_client', 'unauthorized_client'].includes(this.error) || this.status === 401 || this.status === 403;
  }
}

export interface Discovery {
  issuer: string;
  idp_issuer: string | null;
  cli_client_id: string | null;
  cli_scopes: string[];
  operator_client_id: string | null;
  device_authorization_endpoint: string;
  token_endpoint: string;
  revocation_endpoint: string;
  exchange_endpoint: string;
  endpoints: string[];
  cert_ttl_seconds: number;
  /** Absent from gates before the Talos API signer: they take client keys. */
  signer?: 'ca' | 'talos-api';
  client_keys?: boolean;
}

/** The /exchange response, as the gate defines it. */
export type { ExchangeResponse as ExchangeResult } from '../server/exchange/service.js';

export interface GateTokens {
  access_token: string;
  token_type: string;
  expires_in: number;
  refresh_token: string;
}

function fail(res: HttpResponse): never {
  let body: { error?: string; error_description?: string } = {};
  try {
    body = JSON.parse(res.body) as typeof body;
  } catch {
    // not JSON: say the status
  }
  throw new GateApiError(res.status, body.error ?? '', body.error_description ?? res.body.slice(0, 200));
}

async function json<T>(conn: GateConnection, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<T> {
  const res = await request(`${conn.server}${path}`, { ...opts, ca: conn.ca });
  if (res.status < 200 || res.status > 299) fail(res);
  return (res.body ? JSON.parse(res.body) : undefined) as T;
}

const form = (v: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(v).toString(),
});

export function discover(conn: GateConnection): Promise<Discovery> {
  return json<Discovery>(conn, '/.well-known/talos-gate');
}

/** A certificate for our public key; with no key (the gate's signer makes it), the answer carries the key. */
export function exchange(conn: GateConnection, credential: string, publicKeyPem: string | undefined, ttlSeconds?: number): Promise<ExchangeResponse> {
  return json<ExchangeResponse>(conn, '/exchange', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` },
    body: JSON.stringify({ ...(publicKeyPem !== undefined ? { public_key: publicKeyPem } : {}), ...(ttlSeconds ? { ttl_seconds: ttlSeconds } : {}) }),
  });
}


/** RFC 8628 against the gate: one request per poll, slow_down adds 5 s, gives up at expires_in. */
export async function deviceLogin(conn: GateConnection, clientId: string, onCode: (c: DeviceCode) => void, signal?: AbortSignal): Promise<GateTokens> {
  const code = await json<DeviceCode>(conn, '/device/code', form({ client_id: clientId, scope: 'talos' }));
  onCode(code);
  const deadline = Date.now() + code.expires_in * 1000;
  let interval = (code.interval ?? 5) * 1000;
  for (;;) {
    await sleep(interval, undefined, { signal });
    if (Date.now() > deadline) throw new GateApiError(400, 'expired_token', 'the code expired before it was approved');
    const res = await request(`${conn.server}/token`, {
      ...form({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: code.device_code, client_id: clientId }),
      ca: conn.ca,
    });
    if (res.status === 200) return JSON.parse(res.body) as GateTokens;
    const err = (() => {
      try {
        return (JSON.parse(res.body) as { error?: string }).error;
      } catch {
        return undefined;
      }
    })();
    if (err === 'authorization_pending') continue;
    if (err === 'slow_down') {
      interval += 5000;
      continue;
    }
    fail(res);
  }
}

export function refreshGateToken(conn: GateConnection, clientId: string, refreshToken: string): Promise<GateTokens> {
  return json<GateTokens>(conn, '/token', form({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId }));
}

export async function revokeGateToken(conn: GateConnection, clientId: string, refreshToken: string): Promise<void> {
  await json<unknown>(conn, '/revoke', form({ token: refreshToken, token_type_hint: 'refresh_token', client_id: clientId }));
}

export function adminCall<T>(conn: GateConnection, token: string, method: string, path: string, body?: unknown): Promise<T> {
  return json<T>(conn, `/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}
