import { setTimeout as sleep } from 'node:timers/promises';
import { issueIntoTalosconfig } from './certificate.js';
import { GateApiError, refreshGateToken, type ExchangeResult, type GateConnection } from './gate-api.js';
import { refreshIdp } from './idp-login.js';
import { saveLogin, type CachedLogin } from './token-cache.js';

/** A renewal the login will not survive: the IdP or the gate said no for good. */
export class LoginEndedError extends Error {}

/** A fresh credential for /exchange: a new ID token from the IdP, or a new gate access token. */
export async function freshCredential(conn: GateConnection, login: CachedLogin): Promise<{ credential: string; login: CachedLogin }> {
  if (!login.refreshToken) throw new LoginEndedError('no refresh token: log in again');
  if (login.kind === 'browser') {
    try {
      const t = await refreshIdp(login.issuer, login.clientId, login.refreshToken);
      return { credential: t.idToken, login: { ...login, refreshToken: t.refreshToken } };
    } catch (e) {
      const code = (e as { error?: string }).error;
      if (code === 'invalid_grant' || code === 'invalid_client' || code === 'unauthorized_client') {
        throw new LoginEndedError(`the identity provider refused to renew the login (${code}): log in again`);
      }
      throw e;
    }
  }
  try {
    const t = await refreshGateToken(conn, login.clientId, login.refreshToken);
    return {
      credential: t.access_token,
      login: { ...login, refreshToken: t.refresh_token, accessToken: t.access_token, accessTokenExpiresAt: Date.now() + t.expires_in * 1000 },
    };
  } catch (e) {
    if (e instanceof GateApiError && e.permanent) throw new LoginEndedError(`the gate refused to renew the login: ${e.message}`);
    throw e;
  }
}

/** One renewal: fresh credential, new certificate into the talosconfig, cache updated. */
export async function renewOnce(conn: GateConnection, login: CachedLogin, ttlSeconds?: number): Promise<{ result: ExchangeResult; login: CachedLogin }> {
  const fresh = await freshCredential(conn, login);
  // the rotated refresh token is saved before anything else can fail
  await saveLogin(fresh.login);
  let result: ExchangeResult;
  try {
    result = await issueIntoTalosconfig(conn, fresh.credential, {
      talosconfig: login.talosconfig,
      context: login.context,
      nodes: login.nodes,
      switchContext: false,
      ttlSeconds,
    });
  } catch (e) {
    if (e instanceof GateApiError && e.permanent) throw new LoginEndedError(`the gate refused a new certificate: ${e.message}`);
    throw e;
  }
  const next = { ...fresh.login, subject: result.subject, roles: result.roles, certExpiresAt: Date.parse(result.expires_at) };
  await saveLogin(next);
  return { result, login: next };
}

/** When to renew: two thirds into the certificate's life, at least 30 s before its end when it can, never before half. */
export function renewDelayMs(ttlMs: number): number {
  return Math.max(ttlMs / 2, Math.min((ttlMs * 2) / 3, ttlMs - 30_000));
}

/**
 * --watch: renews well before expiry until stopped. Transient errors are retried with backoff; a
 * login that ended (revoked, user removed at the IdP, no role any more) stops the loop with an error.
 */
export async function watch(
  conn: GateConnection,
  start: { login: CachedLogin; ttlMs: number },
  opts: { log: (line: string) => void; signal: AbortSignal; ttlSeconds?: number | undefined },
): Promise<void> {
  let { login, ttlMs } = start;
  let delay = renewDelayMs(ttlMs);
  let failures = 0;
  for (;;) {
    try {
      await sleep(delay, undefined, { signal: opts.signal });
    } catch {
      return; // stopped (Ctrl-C)
    }
    try {
      const r = await renewOnce(conn, login, opts.ttlSeconds);
      login = r.login;
      ttlMs = r.result.ttl_seconds * 1000;
      failures = 0;
      delay = renewDelayMs(ttlMs);
      opts.log(`${new Date().toISOString()} renewed ${r.result.subject} [${r.result.roles.join(', ')}], valid until ${r.result.expires_at}`);
    } catch (e) {
      if (e instanceof LoginEndedError) throw e;
      failures++;
      delay = Math.min(5_000 * 2 ** (failures - 1), 60_000);
      opts.log(`${new Date().toISOString()} renewal failed (${(e as Error).message}); retrying in ${Math.round(delay / 1000)} s`);
    }
  }
}
