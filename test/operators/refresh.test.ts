import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { OAuthError } from '../../device/errors.js';
import { generateSecret, hashSecret } from '../../device/secrets.js';
import { SubjectBlocks } from '../../server/access/subject-blocks.js';
import { AuditLog } from '../../server/audit.js';
import { GateTokenSigner } from '../../server/operators/gate-tokens.js';
import { OperatorService, type IdpRefresher } from '../../server/operators/service.js';
import { openSqliteStorage } from '../../server/storage/sqlite/index.js';
import { sharedTestBox } from '../helpers/sealing.js';

// The gate's refresh of a device login when the IdP misbehaves: unreachable is not the end of the
// login, an OAuth refusal is, and a replayed refresh token revokes the login.

async function setup(idp: IdpRefresher) {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-refresh-'));
  const storage = openSqliteStorage(join(dir, 'db.sqlite'), { cipher: sharedTestBox });
  const signer = await GateTokenSigner.open(storage, dir, 'https://gate.test');
  const audit = new AuditLog(storage, Date.now);
  const ops = new OperatorService(storage, audit, signer, idp, { accessTokenTtlMs: 600_000, grantTtlMs: 86_400_000 }, Date.now, new SubjectBlocks(storage, audit, Date.now));
  const now = Date.now();
  await storage.createOperatorGrant({ id: 'g1', clientId: 'cli', sub: 'alice', email: 'a@x', claims: { groups: ['ops'] }, idpRefreshToken: 'idp-rt', createdAt: now, refreshedAt: null, expiresAt: now + 86_400_000, revokedAt: null, revokedReason: null });
  const rt = generateSecret();
  await storage.createRefreshToken({ tokenHash: hashSecret(rt), grantId: 'g1', issuedAt: now, expiresAt: now + 86_400_000, usedAt: null });
  return { ops, storage, rt };
}

const code = (e: unknown) => (e instanceof OAuthError ? e.error : String(e));

test('an unreachable IdP does not end the login: the same refresh token works once it is back', async () => {
  let down = true;
  const { ops, rt } = await setup({
    refresh: async (t) => {
      if (down) throw new TypeError('fetch failed');
      return { claims: { groups: ['ops'], email: 'a@x' }, refreshToken: `${t}-next` };
    },
  });
  await assert.rejects(ops.refresh(rt, 'cli', '127.0.0.1'), (e) => code(e) === 'temporarily_unavailable');
  down = false;
  const tokens = await ops.refresh(rt, 'cli', '127.0.0.1');
  assert.ok(tokens.access_token && tokens.refresh_token !== rt);
  await assert.rejects(ops.refresh(rt, 'cli', '127.0.0.1'), (e) => code(e) === 'invalid_grant', 'a replay revokes the login');
  await assert.rejects(ops.refresh(tokens.refresh_token, 'cli', '127.0.0.1'), (e) => code(e) === 'invalid_grant', 'the whole login');
});

test('an IdP refusal ends the login', async () => {
  const { ops, rt, storage } = await setup({
    refresh: async () => {
      throw Object.assign(new Error('invalid_grant'), { error: 'invalid_grant' });
    },
  });
  await assert.rejects(ops.refresh(rt, 'cli', '127.0.0.1'), (e) => code(e) === 'invalid_grant');
  assert.match((await storage.getOperatorGrant('g1'))?.revokedReason ?? '', /the IdP refused/);
});

test('security review #2: a claim the IdP stops sending is gone after a refresh (replaced, never merged)', async () => {
  const { ops, rt, storage } = await setup({ refresh: async (t) => ({ claims: { sub: 'alice', email: 'a@x' }, refreshToken: `${t}-next` }) });
  await ops.refresh(rt, 'cli', '127.0.0.1');
  assert.deepEqual((await storage.getOperatorGrant('g1'))?.claims, { sub: 'alice', email: 'a@x' }, 'no groups left over from the login');
});

test('an IdP answer that does not say who the user is, or speaks for another subject, ends the login', async () => {
  const silent = await setup({
    refresh: async () => {
      throw Object.assign(new Error('the identity provider sent no ID token on refresh and has no userinfo endpoint'), { error: 'invalid_identity' });
    },
  });
  await assert.rejects(silent.ops.refresh(silent.rt, 'cli', '127.0.0.1'), (e) => code(e) === 'invalid_grant');
  assert.match((await silent.storage.getOperatorGrant('g1'))?.revokedReason ?? '', /no ID token/);
  const other = await setup({ refresh: async (t) => ({ claims: { sub: 'mallory', groups: ['ops'] }, refreshToken: `${t}-next` }) });
  await assert.rejects(other.ops.refresh(other.rt, 'cli', '127.0.0.1'), (e) => code(e) === 'invalid_grant');
  assert.match((await other.storage.getOperatorGrant('g1'))?.revokedReason ?? '', /another subject/);
});
