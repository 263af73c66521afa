import { hashSecret } from '../../device/secrets.js';
import type { Storage } from '../../server/storage/storage.js';

/**
 * Signs Ada in as an admin without the IdP: writes the web session row /auth/callback leaves, so a
 * request with the cookie `tg_session=<cookie>` is hers. For tests of the pages themselves, where a
 * browser sign-in would only add time (the sign-in is tested in test/web/).
 */
export async function seedAdminWebSession(storage: Storage, cookie: string, now = Date.now()): Promise<void> {
  await storage.createWebSession({
    idHash: hashSecret(cookie),
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + 3_600_000,
    login: null,
    sub: 'ada',
    email: 'ada@example.com',
    name: 'Ada',
    claims: {},
    isAdmin: true,
    signedInAt: now,
    idpRefreshToken: null,
  });
}
