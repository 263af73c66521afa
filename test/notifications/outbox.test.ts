import { sharedTestBox } from '../helpers/sealing.js';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openSqliteStorage } from '../../server/storage/sqlite/index.js';
import type { NewAuditEvent, Storage } from '../../server/storage/storage.js';
import { subscriptionsFor, webhooksFrom } from '../../server/notifications/webhooks.js';
import { freshPostgresStorage } from '../helpers/postgres.js';

// The outbox as the triggers fill it and the dispatcher drains it, on a real SQLite file and a real
// PostgreSQL database: what is copied (and what not), the auth_failures burst, claims and leases.

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-outbox-'));
let n = 0;
const backends: [string, () => Promise<Storage>][] = [
  ['sqlite', async () => openSqliteStorage(join(dir, `outbox-${n++}.db`), { cipher: sharedTestBox })],
  ['postgres', freshPostgresStorage],
];

const [a, b] = webhooksFrom([
  { url: 'https://a.example.com/hook', format: 'json', events: ['node_waiting', 'node_approved', 'auth_failures'] },
  { url: 'https://b.example.com/hook', format: 'slack', events: ['node_approved'] },
]);
if (!a || !b) throw new Error('two webhooks');

const audit = (type: string, at: number, over: Partial<NewAuditEvent> = {}): NewAuditEvent => ({ at, type, actor: null, subject: 'node-1', ip: '192.0.2.7', detail: {}, ...over });

for (const [backend, open] of backends) describe(`webhook outbox (${backend})`, () => {
  test('nothing is copied without subscriptions; subscribed types are, once per webhook, with the audit fields', async () => {
    const s = await open();
    try {
      await s.addAuditEvent(audit('device_approved', 1000));
      assert.deepEqual(await s.webhooks.backlog(), { pending: 0, dead: 0, oldestPendingAt: undefined });

      await s.webhooks.syncSubscriptions(subscriptionsFor([a, b], 3));
      const approved = await s.addAuditEvent(audit('device_approved', 2000, { actor: 'ops@example.com', detail: { user_code: 'BCDF-GHJK', hostname: 'cp-1' } }));
      await s.addAuditEvent(audit('config_downloaded', 2001)); // nobody asked for it
      // an event in a transaction that rolls back leaves no outbox row either
      await assert.rejects(
        s.transaction(async (tx) => {
          await tx.addAuditEvent(audit('device_approved', 2002));
          throw new Error('undo');
        }),
        /undo/,
      );
      assert.equal((await s.webhooks.backlog()).pending, 2);

      const forA = await s.webhooks.claim(a.key, 5000, 6000, 10);
      assert.equal(forA.length, 1);
      assert.deepEqual({ ...forA[0], id: 0 }, {
        id: 0,
        webhook: a.key,
        event: 'node_approved',
        auditId: approved.id,
        at: 2000,
        actor: 'ops@example.com',
        subject: 'node-1',
        ip: '192.0.2.7',
        detail: { user_code: 'BCDF-GHJK', hostname: 'cp-1' },
        status: 'pending',
        attempts: 1,
        nextAt: 2000,
        lastError: null,
      });
      assert.deepEqual(await s.webhooks.claim(a.key, 5000, 6000, 10), [], 'a claimed row is not claimed again during its lease');
      const forB = await s.webhooks.claim(b.key, 5000, 6000, 10);
      assert.equal(forB.length, 1, "webhook b's row is its own");

      await s.webhooks.retry(forA[0]!.id, 7000, 'the receiver answered 503');
      assert.deepEqual(await s.webhooks.claim(a.key, 6500, 9000, 10), [], 'not due before its retry time');
      const again = await s.webhooks.claim(a.key, 7000, 9000, 10);
      assert.equal(again[0]?.attempts, 2);
      assert.equal(again[0]?.lastError, 'the receiver answered 503');
      await s.webhooks.release(again[0]!.id);
      const released = await s.webhooks.claim(a.key, 7000, 9000, 10);
      assert.equal(released[0]?.attempts, 2, 'a released claim does not count as an attempt');
      await s.webhooks.giveUp(released[0]!.id, 'gave up');
      await s.webhooks.delivered(forB[0]!.id);
      assert.deepEqual(await s.webhooks.backlog(), { pending: 0, dead: 1, oldestPendingAt: undefined });
      assert.deepEqual(await s.webhooks.claim(a.key, 99_000, 100_000, 10), [], 'a dead row is not claimed');
      assert.equal(await s.webhooks.prune(2001, 0, 100), 1);
      assert.equal((await s.webhooks.backlog()).dead, 0);
    } finally {
      await s.close();
    }
  });

  test('auth_failures: one event when a minute reaches the burst, none for the failures after it', async () => {
    const s = await open();
    try {
      await s.webhooks.syncSubscriptions(subscriptionsFor([a, b], 3));
      const minute = 60_000 * 1000;
      for (let i = 0; i < 5; i++) await s.addAuditEvent(audit('auth_failure', minute + i * 100, { subject: null, detail: { reason: 'bad token' } }));
      const rows = await s.webhooks.claim(a.key, minute + 60_000, minute + 70_000, 10);
      assert.equal(rows.length, 1);
      assert.equal(rows[0]?.event, 'auth_failures');
      assert.equal(rows[0]?.at, minute + 200, 'made by the third failure');
      await s.webhooks.delivered(rows[0]!.id);
      // the next minute counts anew
      for (let i = 0; i < 3; i++) await s.addAuditEvent(audit('auth_failure', minute + 60_000 + i, { subject: null }));
      assert.equal((await s.webhooks.claim(a.key, minute + 120_000, minute + 130_000, 10)).length, 1);
      assert.deepEqual(await s.webhooks.claim(b.key, minute + 120_000, minute + 130_000, 10), [], 'b did not ask for auth_failures');
      assert.equal(await s.webhooks.prune(0, minute + 120_000, 100), 2, 'old failure windows are pruned');
    } finally {
      await s.close();
    }
  });

  test('syncing anew drops the pending rows of webhooks no longer configured, and keeps the others', async () => {
    const s = await open();
    try {
      await s.webhooks.syncSubscriptions(subscriptionsFor([a, b], 3));
      await s.addAuditEvent(audit('device_approved', 1000));
      await s.webhooks.syncSubscriptions(subscriptionsFor([a], 3));
      assert.equal((await s.webhooks.claim(b.key, 2000, 3000, 10)).length, 0);
      assert.equal((await s.webhooks.claim(a.key, 2000, 3000, 10)).length, 1);
      await s.addAuditEvent(audit('device_approved', 1500));
      assert.equal((await s.webhooks.backlog()).pending, 2, 'only a is subscribed now');
      await s.webhooks.syncSubscriptions([]);
      assert.equal((await s.webhooks.backlog()).pending, 0);
      await s.addAuditEvent(audit('device_approved', 1600));
      assert.equal((await s.webhooks.backlog()).pending, 0);
    } finally {
      await s.close();
    }
  });

  test('two claims at once never take the same row', async () => {
    const s = await open();
    try {
      await s.webhooks.syncSubscriptions(subscriptionsFor([a], 3));
      for (let i = 0; i < 40; i++) await s.addAuditEvent(audit('device_approved', 1000 + i));
      const claims = await Promise.all(Array.from({ length: 4 }, () => s.webhooks.claim(a.key, 5000, 9000, 15)));
      // a concurrent claim may come back short (a row it waited for was taken meanwhile): the rest
      // is claimed by the next one
      const rest = await s.webhooks.claim(a.key, 5000, 9000, 40);
      const ids = [...claims.flat(), ...rest].map((r) => r.id);
      assert.equal(new Set(ids).size, ids.length, 'no row was claimed twice');
      assert.equal(ids.length, 40);
    } finally {
      await s.close();
    }
  });
});

test('sqlite: the outbox triggers exist only while a webhook subscribes, and every open makes them match the subscriptions', async () => {
  const file = join(dir, `triggers-${n++}.db`);
  const triggers = (s: { db: { prepare(sql: string): { pluck(): { all(): unknown[] } } } }) =>
    (s.db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events' ORDER BY name").pluck().all() as string[]);
  const s = openSqliteStorage(file, { cipher: sharedTestBox });
  try {
    assert.deepEqual(triggers(s), []);
    await s.webhooks.syncSubscriptions(subscriptionsFor([a, b], 3));
    assert.deepEqual(triggers(s), ['webhook_outbox_auth_failures', 'webhook_outbox_events']);
    await s.addAuditEvent(audit('device_approved', 1000));
    for (let i = 0; i < 3; i++) await s.addAuditEvent(audit('auth_failure', 2000 + i));
    // node_approved for a and b, one auth_failures for a (its burst, 3, reached)
    assert.equal((await s.webhooks.backlog()).pending, 3);
    // subscriptions without their triggers (as if written by an older gate, or copied in): the next open restores them
    s.db.exec('DROP TRIGGER webhook_outbox_events; DROP TRIGGER webhook_outbox_auth_failures');
  } finally {
    await s.close();
  }
  const again = openSqliteStorage(file, { cipher: sharedTestBox });
  try {
    assert.deepEqual(triggers(again), ['webhook_outbox_auth_failures', 'webhook_outbox_events']);
    await again.addAuditEvent(audit('device_approved', 3000));
    assert.equal((await again.webhooks.backlog()).pending, 5);
    // the last webhook gone: the triggers go with it, and audit rows are still written
    await again.webhooks.syncSubscriptions([]);
    assert.deepEqual(triggers(again), []);
    const kept = await again.addAuditEvent(audit('device_approved', 4000));
    assert.ok(kept.id > 0);
    assert.equal((await again.webhooks.backlog()).pending, 0);
  } finally {
    await again.close();
  }
});
