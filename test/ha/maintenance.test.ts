import { sharedTestBox } from '../helpers/sealing.js';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EnrollmentMaintenance } from '../../server/enrollment/maintenance.js';
import { maintenanceRound } from '../../server/main.js';
import { openPostgresStorage, type PostgresStorage } from '../../server/storage/postgres/index.js';
import { parseDatabaseUrl } from '../../server/storage/postgres/pool.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { sampleNode, sampleRequest } from '../storage/conformance.js';

// Background maintenance on PostgreSQL runs on one instance at a time: two storages on one
// database, each with its own pool as two gate instances have, run the round the gate's timer runs
// (maintenanceRound); while one holds the job, the other skips its round and deletes nothing.

let db: TestDatabase;
let a: PostgresStorage;
let b: PostgresStorage;
const config = { retention: { certs: 86_400_000, audit: 86_400_000 }, operator: { access_token_ttl: 600_000 } };
const settings = { expiryGraceMs: 0, pendingRetentionMs: 0 };

before(async () => {
  db = await createTestDatabase();
  a = await openPostgresStorage(parseDatabaseUrl(db.url), { poolSize: 3, cipher: sharedTestBox });
  b = await openPostgresStorage(parseDatabaseUrl(db.url), { poolSize: 3, cipher: sharedTestBox });
});
after(async () => {
  await a?.close();
  await b?.close();
  await db?.drop();
});

async function expiredRequests(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const id = `gc-${Date.now()}-${i}`;
    await a.createNode(sampleNode(id, { profile: 'worker' }));
    await a.createDeviceRequest(sampleRequest(id, { createdAt: 1, expiresAt: 2 }));
  }
}

test('while instance A runs the maintenance, B skips its round; after A, B runs', async () => {
  await expiredRequests(3);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let aRan = false;
  // A's round, held open in the middle (as a long backlog would hold it)
  const roundA = a.exclusively('maintenance', async () => {
    aRan = true;
    await held;
  });
  while (!aRan) await new Promise((r) => setTimeout(r, 10));

  const skipped = await maintenanceRound(b, new EnrollmentMaintenance(b, settings), config);
  assert.equal(skipped, undefined, 'B skipped');
  const left = await a.pool.query<{ n: number }>('SELECT COUNT(*) AS n FROM device_requests');
  assert.equal(left.rows[0]?.n, 3, 'and deleted nothing');
  release();
  assert.deepEqual(await roundA, { ran: true, value: undefined });

  const ran = await maintenanceRound(b, new EnrollmentMaintenance(b, settings), config);
  assert.ok(ran, 'B runs the next round');
  assert.equal(ran.gc.deviceRequests, 3, 'the expired requests A left');
  assert.deepEqual(ran.keys, { retired: [] });
});

test('rounds started on both at the same moment never overlap', async () => {
  let inside = 0;
  let most = 0;
  let ran = 0;
  const job = (s: PostgresStorage) =>
    s.exclusively('maintenance', async () => {
      inside++;
      most = Math.max(most, inside);
      ran++;
      await new Promise((r) => setTimeout(r, 30));
      inside--;
    });
  for (let round = 0; round < 10; round++) {
    const results = await Promise.all([job(a), job(b)]);
    assert.ok(results.some((r) => r.ran), `round ${round}: one ran`);
  }
  assert.equal(most, 1, 'never two at once');
  assert.ok(ran >= 10 && ran < 20, `${ran} runs in 10 rounds: the loser of each skipped`);
});

test('an instance that dies holding the job lets go of it: its connection ends, and the lock with it', async () => {
  const dying = await openPostgresStorage(parseDatabaseUrl(db.url), { poolSize: 2, cipher: sharedTestBox });
  let started = false;
  let finish!: () => void;
  const stuck = new Promise<void>((r) => (finish = r));
  const round = dying.exclusively('maintenance', async () => {
    started = true;
    await stuck;
  });
  while (!started) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(await b.exclusively('maintenance', async () => 'b'), { ran: false });
  // the instance's connection ends (a killed process, a cut network): the server ends its session
  const killed = await a.pool.query("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
  assert.equal(killed.rowCount, 1, 'one session held the job');
  const deadline = Date.now() + 5000;
  let r = await b.exclusively('maintenance', async () => 'b');
  while (!r.ran && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 100));
    r = await b.exclusively('maintenance', async () => 'b');
  }
  assert.deepEqual(r, { ran: true, value: 'b' }, 'B runs while the dead one still thinks it does');
  finish();
  await round; // its unlock fails on the dead connection, which is dropped rather than reused
  await dying.close();
});
