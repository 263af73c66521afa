import { randomUUID } from 'node:crypto';
import { OAuthError } from '../../device/errors.js';
import { generateSecret, hashSecret } from '../../device/secrets.js';
import type { AuditLog } from '../audit.js';
import { ExchangeError } from '../exchange/errors.js';
import type { DeviceRequestRecord, OperatorGrantRecord, Storage, WebSessionRecord } from '../storage/storage.js';
import { AlreadyExistsError } from '../storage/storage.js';
import type { SubjectBlocks } from '../access/subject-blocks.js';
import type { GateTokenSigner } from './gate-tokens.js';

export interface OperatorSettings {
  accessTokenTtlMs: number;
  /** A login lasts at most this long; refreshing does not extend it. */
  grantTtlMs: number;
}

/**
 * Re-asks the IdP about a user with the refresh token from their web sign-in. The claims are who the
 * user is now, in full (never a partial update); an IdP that answers without saying that throws an
 * error with an OAuth-style `error` string, as an IdP refusal does.
 */
export interface IdpRefresher {
  refresh(refreshToken: string, expectedSub: string): Promise<{ claims: Record<string, unknown>; refreshToken: string }>;
}

export interface OperatorTokens {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
}

export interface OperatorIdentity {
  sub: string;
  email: string | null;
  claims: Record<string, unknown>;
  grantId: string;
}

/**
 * Logins of talosctl operators through the gate's own device flow ("talos-gate login --device"):
 * a signed-in user approves their own request on /device, the CLI gets a short gate access token and
 * a rotating refresh token. A refresh token used twice revokes the whole login (theft shows itself);
 * each refresh re-checks the user at the IdP when the web sign-in gave the gate a refresh token.
 */
export class OperatorService {
  constructor(
    private readonly storage: Storage,
    private readonly audit: AuditLog,
    private readonly signer: GateTokenSigner,
    private readonly idp: IdpRefresher | undefined,
    private readonly settings: OperatorSettings,
    private readonly now: () => number,
    private readonly blocks: SubjectBlocks,
  ) {}

  /** The signed-in user approves their own CLI login. */
  async approve(request: DeviceRequestRecord, session: WebSessionRecord, expiryGraceMs: number): Promise<void> {
    if (!session.sub || !session.claims) throw new OAuthError('access_denied', 'not signed in');
    const now = this.now();
    const grantId = randomUUID();
    await this.storage.transaction(async (tx) => {
      await tx.createOperatorGrant({
        id: grantId,
        clientId: request.clientId,
        sub: session.sub as string,
        email: session.email,
        claims: session.claims as Record<string, unknown>,
        idpRefreshToken: session.idpRefreshToken,
        createdAt: now,
        refreshedAt: null,
        expiresAt: now + this.settings.grantTtlMs,
        revokedAt: null,
        revokedReason: null,
      });
      await tx.updateDeviceRequest(request.id, (r) => {
        if (r.status !== 'pending' || r.expiresAt + expiryGraceMs < now) throw new OAuthError('invalid_grant', `this login request is ${r.status === 'pending' ? 'expired' : r.status}`);
        return { ...r, status: 'approved', decidedAt: now, decidedBy: session.email ?? session.sub, grantId };
      });
    });
    await this.audit.record({ type: 'operator_login_approved', actor: session.email ?? session.sub, subject: session.sub, ip: request.sourceIp, detail: { grant: grantId } });
  }

  async deny(request: DeviceRequestRecord, actor: string): Promise<void> {
    const now = this.now();
    await this.storage.updateDeviceRequest(request.id, (r) => (r.status === 'pending' ? { ...r, status: 'denied', decidedAt: now, decidedBy: actor } : r));
    await this.audit.record({ type: 'device_denied', actor, subject: request.clientId, ip: request.sourceIp });
  }

  /** The device code was approved: mark it used and hand out the first tokens, atomically. */
  async redeem(request: DeviceRequestRecord): Promise<OperatorTokens> {
    const grant = request.grantId ? await this.storage.getOperatorGrant(request.grantId) : undefined;
    if (!grant) throw new OAuthError('invalid_grant', 'this login was not approved');
    // blocked between the approval and the CLI's next poll: the login ended with the block
    if (grant.revokedAt !== null || (await this.blocks.isBlocked(grant.sub))) throw new OAuthError('access_denied', 'this login was revoked');
    const refresh = generateSecret();
    const now = this.now();
    try {
      await this.storage.transaction(async (tx) => {
        await tx.updateDeviceRequest(request.id, (r) => {
          if (r.status !== 'approved') throw new OAuthError('invalid_grant', 'device_code was already used');
          return { ...r, status: 'consumed' };
        });
        await tx.createRefreshToken({ tokenHash: hashSecret(refresh), grantId: grant.id, issuedAt: now, expiresAt: grant.expiresAt, usedAt: null });
      });
    } catch (e) {
      if (e instanceof AlreadyExistsError) throw new OAuthError('invalid_grant', 'device_code was already used');
      throw e;
    }
    await this.audit.record({ type: 'operator_token_issued', subject: grant.sub, ip: request.sourceIp, detail: { grant: grant.id } });
    return this.tokens(grant, refresh, now);
  }

  private async tokens(grant: OperatorGrantRecord, refresh: string, now: number): Promise<OperatorTokens> {
    const access = await this.signer.sign({ sub: grant.sub, gid: grant.id, ...(grant.email ? { email: grant.email } : {}) }, this.settings.accessTokenTtlMs, now);
    return { access_token: access, token_type: 'Bearer', expires_in: Math.floor(this.settings.accessTokenTtlMs / 1000), refresh_token: refresh };
  }

  private async revokeGrant(grant: OperatorGrantRecord, reason: string, ip: string | null): Promise<void> {
    const now = this.now(); // read once: the updater may run more than once and must give the same answer
    await this.storage.updateOperatorGrant(grant.id, (g) => (g.revokedAt === null ? { ...g, revokedAt: now, revokedReason: reason } : g));
    await this.audit.record({ type: 'operator_login_revoked', subject: grant.sub, ip, detail: { grant: grant.id, reason } });
  }

  /** RFC 6749 §6 with rotation: a used refresh token presented again revokes the whole login. */
  async refresh(refreshToken: string, clientId: string, ip: string): Promise<OperatorTokens> {
    const hash = hashSecret(refreshToken);
    const stored = await this.storage.getRefreshToken(hash);
    const grant = stored && (await this.storage.getOperatorGrant(stored.grantId));
    const now = this.now();
    if (!stored || !grant || grant.clientId !== clientId) throw new OAuthError('invalid_grant', 'unknown refresh_token');
    if (grant.revokedAt !== null) throw new OAuthError('invalid_grant', `this login was revoked (${grant.revokedReason ?? 'revoked'})`);
    if (stored.expiresAt <= now || grant.expiresAt <= now) throw new OAuthError('invalid_grant', 'this login has expired; log in again');
    if (!(await this.storage.useRefreshToken(hash, now))) {
      await this.revokeGrant(grant, 'refresh token reused', ip);
      throw new OAuthError('invalid_grant', 'this refresh_token was already used; the login is revoked');
    }
    if (await this.blocks.isBlocked(grant.sub)) {
      await this.revokeGrant(grant, 'subject blocked', ip);
      throw new OAuthError('invalid_grant', 'this user is blocked');
    }
    let current = grant;
    if (grant.idpRefreshToken && this.idp) {
      let fresh: Awaited<ReturnType<IdpRefresher['refresh']>>;
      try {
        fresh = await this.idp.refresh(grant.idpRefreshToken, grant.sub);
      } catch (e) {
        // An OAuth error from the IdP (invalid_grant: user disabled, token revoked) or an answer that
        // does not say who the user is ends the login; the IdP being unreachable does not: the client
        // may try the same refresh token again.
        if (typeof (e as { error?: unknown }).error !== 'string') {
          await this.storage.releaseRefreshToken(hash);
          throw new OAuthError('temporarily_unavailable', 'the identity provider cannot be reached; try again shortly');
        }
        await this.revokeGrant(grant, `the IdP refused: ${(e as Error).message.slice(0, 200)}`, ip);
        throw new OAuthError('invalid_grant', 'the identity provider no longer accepts this user; log in again');
      }
      if (fresh.claims.sub !== undefined && fresh.claims.sub !== grant.sub) {
        await this.revokeGrant(grant, 'the IdP answered for another subject', ip);
        throw new OAuthError('invalid_grant', 'the identity provider answered for another user; log in again');
      }
      // the claims as the IdP states them now, replacing the old ones: a group (or any claim) the
      // IdP stopped sending is gone, and with it the roles it gave (security review #2)
      const claims: Record<string, unknown> = { ...fresh.claims, sub: grant.sub };
      current = await this.storage.updateOperatorGrant(grant.id, (g) => ({
        ...g,
        claims,
        email: typeof claims.email === 'string' ? claims.email : null,
        idpRefreshToken: fresh.refreshToken,
        refreshedAt: now,
      }));
    }
    const next = generateSecret();
    await this.storage.createRefreshToken({ tokenHash: hashSecret(next), grantId: grant.id, issuedAt: now, expiresAt: grant.expiresAt, usedAt: null });
    await this.audit.record({ type: 'operator_token_refreshed', subject: grant.sub, ip, detail: { grant: grant.id } });
    return this.tokens(current, next, now);
  }

  /** RFC 7009: revoking a refresh token ends its whole login. Unknown tokens are not an error. */
  async revoke(refreshToken: string, ip: string): Promise<void> {
    const stored = await this.storage.getRefreshToken(hashSecret(refreshToken));
    const grant = stored && (await this.storage.getOperatorGrant(stored.grantId));
    if (grant && grant.revokedAt === null) await this.revokeGrant(grant, 'logged out', ip);
  }

  /** Who a gate access token speaks for, while their login lives. */
  async identify(accessToken: string): Promise<OperatorIdentity> {
    let gid: string;
    try {
      ({ gid } = await this.signer.verify(accessToken));
    } catch (e) {
      throw new ExchangeError('invalid_token', 'the gate token is invalid or expired', (e as Error).message);
    }
    const grant = await this.storage.getOperatorGrant(gid);
    if (!grant || grant.revokedAt !== null || grant.expiresAt <= this.now()) {
      throw new ExchangeError('invalid_token', 'this login was revoked or has expired');
    }
    if (await this.blocks.isBlocked(grant.sub)) throw new ExchangeError('forbidden', 'this subject is blocked');
    return { sub: grant.sub, email: grant.email, claims: grant.claims, grantId: grant.id };
  }

  isGateToken(token: string): boolean {
    return this.signer.isOurs(token);
  }
}
