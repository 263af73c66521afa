import { randomBytes } from 'node:crypto';
import { hashSecret } from '../../device/secrets.js';
import { NotFoundError, type PendingLogin, type Storage, type WebSessionRecord } from '../storage/storage.js';

export interface SessionSettings {
  idleMs: number;
  maxMs: number;
}

export interface SignedInUser {
  idpRefreshToken: string | null;
  sub: string;
  email: string | null;
  name: string | null;
  claims: Record<string, unknown>;
  isAdmin: boolean;
}

/** Server-side browser sessions: the cookie carries an opaque id, SQLite holds the rest (hashed id). */
export class SessionService {
  constructor(
    private readonly storage: Storage,
    private readonly settings: SessionSettings,
    private readonly now: () => number,
  ) {}

  /** A new, anonymous session; returns the cookie value. */
  async create(): Promise<{ cookie: string; session: WebSessionRecord }> {
    const cookie = randomBytes(32).toString('base64url');
    const now = this.now();
    const session = await this.storage.createWebSession({
      idHash: hashSecret(cookie),
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.settings.maxMs,
      login: null,
      sub: null,
      email: null,
      name: null,
      claims: null,
      isAdmin: false,
      signedInAt: null,
      idpRefreshToken: null,
    });
    return { cookie, session };
  }

  /** The live session behind a cookie; undefined when unknown, idle too long, or past its absolute expiry. */
  async get(cookie: string | undefined): Promise<WebSessionRecord | undefined> {
    if (!cookie || cookie.length > 100) return undefined;
    const s = await this.storage.getWebSession(hashSecret(cookie));
    const now = this.now();
    if (!s) return undefined;
    if (now > s.expiresAt || now - s.lastSeenAt > this.settings.idleMs) {
      await this.storage.deleteWebSession(s.idHash);
      return undefined;
    }
    // one write a minute at most, not one per request
    if (now - s.lastSeenAt > 60_000) {
      try {
        return await this.storage.updateWebSession(s.idHash, (x) => ({ ...x, lastSeenAt: now }));
      } catch (e) {
        // signed out (or blocked) by another request since it was read: no session any more
        if (e instanceof NotFoundError) return undefined;
        throw e;
      }
    }
    return s;
  }

  async startLogin(session: WebSessionRecord, login: PendingLogin): Promise<void> {
    await this.storage.updateWebSession(session.idHash, (s) => ({ ...s, login }));
  }

  /** Binds a signed-in user to the session. The pending sign-in is consumed. */
  completeLogin(session: WebSessionRecord, user: SignedInUser): Promise<WebSessionRecord> {
    const now = this.now();
    return this.storage.updateWebSession(session.idHash, (s) => ({
      ...s,
      login: null,
      sub: user.sub,
      email: user.email,
      name: user.name,
      claims: user.claims,
      isAdmin: user.isAdmin,
      idpRefreshToken: user.idpRefreshToken,
      signedInAt: now,
      lastSeenAt: now,
    }));
  }

  async destroy(session: WebSessionRecord): Promise<void> {
    await this.storage.deleteWebSession(session.idHash);
  }
}

/** Who the audit trail names for a signed-in user. */
export function actorOf(s: Pick<WebSessionRecord, 'email' | 'sub'>): string {
  return s.email ?? s.sub ?? 'unknown';
}
