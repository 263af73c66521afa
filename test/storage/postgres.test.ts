import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { postgresMigrationsDir } from '../../server/paths.js';
import { readMigrations } from '../../server/storage/migrate.js';
import { openPostgresStorage, type PostgresStorage } from '../../server/storage/postgres/index.js';
import { migratePostgres } from '../../server/storage/postgres/migrate.js';
import { parseDatabaseUrl } from '../../server/storage/postgres/pool.js';
import { StorageUnavailableError } from '../../server/storage/storage.js';
import { POSTGRES_SEARCH_COLUMNS } from '../../server/storage/prefix-range.js';
import { freePort } from '../helpers/gate.js';
import { createTestDatabase, freshPostgresStorage, testServerUrl, type TestDatabase } from '../helpers/postgres.js';
import { runStorageConformance, sampleNode, sampleRequest } from './conformance.js';
import { sharedTestBox } from '../helpers/sealing.js';

testServerUrl(); // fails this file at once, saying how to get a server, when there is none

runStorageConformance('postgres', freshPostgresStorage);

/** Two gate processes' pools on one database: each its own Storage. */
async function twoInstances(): Promise<{ a: PostgresStorage; b: PostgresStorage; db: TestDatabase; close(): Promise<void> }> {
  const db = await createTestDatabase();
  const [a, b] = await Promise.all([
    openPostgresStorage(parseDatabaseUrl(db.url), { cipher: sharedTestBox, poolSize: 8 }),
    openPostgresStorage(parseDatabaseUrl(db.url), { cipher: sharedTestBox, poolSize: 8 }),
  ]);
  return {
    a,
    b,
    db,
    async close() {
      await a.close();
      await b.close();
      await db.drop();
    },
  };
}

const dropped: TestDatabase[] = [];
after(async () => {
  for (const db of dropped) await db.drop();
});

test('postgres: migrations run once when several processes start together, under the advisory lock', async () => {
  const db = await createTestDatabase();
  dropped.push(db);
  const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: db.url, max: 2 }));
  const migrations = readMigrations(postgresMigrationsDir);
  const applied = await Promise.all(pools.map((p) => migratePostgres(p, migrations)));
  assert.deepEqual(applied.flat(), migrations.map((m) => m.version), 'each version applied by exactly one of them');
  const rows = await pools[0]?.query('SELECT version FROM schema_migrations ORDER BY version');
  assert.deepEqual(rows?.rows.map((r: { version: number }) => r.version), migrations.map((m) => m.version));
  await assert.rejects(() => migratePostgres(pools[0] as pg.Pool, []), /newer than this talos-gate/, 'a database from a newer build is refused');
  await Promise.all(pools.map((p) => p.end()));
});

test('postgres: a failing migration leaves the database as it was', async () => {
  const db = await createTestDatabase();
  dropped.push(db);
  const pool = new pg.Pool({ connectionString: db.url, max: 1 });
  const good = readMigrations(postgresMigrationsDir);
  const broken = { version: good.length + 1, name: 'broken', sql: 'CREATE TABLE x (a int); SELECT nonsense FROM nowhere;' };
  await assert.rejects(() => migratePostgres(pool, [...good, broken]));
  const tables = await pool.query("SELECT tablename FROM pg_tables WHERE tablename IN ('nodes', 'x')");
  assert.deepEqual(tables.rows, [], 'nothing of the failed batch was applied');
  await pool.end();
});

test('postgres: the same device code redeemed at once on two instances yields exactly one token', async () => {
  const { a, b, close } = await twoInstances();
  await a.createNode(sampleNode('n1'));
  for (let round = 0; round < 10; round++) {
    const r = await a.createDeviceRequest(sampleRequest('n1', { status: 'approved' }));
    const redeem = (s: PostgresStorage, hash: string) =>
      s.groupedTransaction(async (tx) => {
        await tx.updateDeviceRequest(r.id, (x) => {
          if (x.status !== 'approved') throw new Error('already used');
          return { ...x, status: 'consumed' };
        });
        await tx.createNodeToken({ tokenHash: hash, nodeId: 'n1', deviceRequestId: r.id, issuedAt: 1, expiresAt: 100, revokedAt: null });
      });
    const results = await Promise.allSettled([redeem(a, `ta${round}`), redeem(b, `tb${round}`), redeem(a, `tc${round}`), redeem(b, `td${round}`)]);
    assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1, `round ${round}: one redemption wins`);
    for (const x of results) if (x.status === 'rejected') assert.match(String(x.reason), /already used/);
  }
  await close();
});

test('postgres: a refresh token used on two instances at once is used once', async () => {
  const { a, b, close } = await twoInstances();
  const grant = { id: 'g', clientId: 'cli', sub: 's', email: null, claims: {}, idpRefreshToken: null, createdAt: 1, refreshedAt: null, expiresAt: 10_000, revokedAt: null, revokedReason: null };
  await a.createOperatorGrant(grant);
  for (let i = 0; i < 10; i++) {
    await a.createRefreshToken({ tokenHash: `r${i}`, grantId: 'g', issuedAt: 1, expiresAt: 10_000, usedAt: null });
    const uses = await Promise.all([a.useRefreshToken(`r${i}`, 2), b.useRefreshToken(`r${i}`, 3), a.useRefreshToken(`r${i}`, 4), b.useRefreshToken(`r${i}`, 5)]);
    assert.equal(uses.filter(Boolean).length, 1);
  }
  await close();
});

test('postgres: the pending-requests limit of an address bucket holds under concurrent requests', async () => {
  const { a, b, close } = await twoInstances();
  await a.createNode(sampleNode('n1'));
  const limit = 5;
  const ask = (s: PostgresStorage) =>
    s.groupedTransaction(async (tx) => {
      if ((await tx.countPendingDeviceRequestsInBucket('198.51.100.7', 1000)) >= limit) return false;
      await tx.createDeviceRequest(sampleRequest('n1', { sourceBucket: '198.51.100.7' }));
      return true;
    });
  const admitted = await Promise.all(Array.from({ length: 24 }, (_, i) => ask(i % 2 ? a : b)));
  assert.equal(admitted.filter(Boolean).length, limit);
  assert.equal(await a.countPendingDeviceRequestsInBucket('198.51.100.7', 1000), limit);
  await close();
});

test('postgres: a block lands before or after an exchange, never between its check and its record', async () => {
  const { a, b, close } = await twoInstances();
  for (let round = 0; round < 5; round++) {
    const sub = `user-${round}`;
    const order: string[] = [];
    const exchanges = Array.from({ length: 6 }, (_, i) =>
      (i % 2 ? a : b)
        .groupedTransaction(async (tx) => {
          if (await tx.getBlockedSubject(sub)) return 'refused';
          await new Promise((resolve) => setTimeout(resolve, 5)); // the signing happens about here
          await tx.addCertificate({
            serial: `${sub}-${i}`, fingerprint: 'fp', subject: sub, email: null, commonName: sub, issuer: 'iss',
            roles: [], issuedAt: 1, expiresAt: 2, clientIp: null, source: 'id_token',
          });
          return 'issued';
        })
        .then((outcome) => {
          order.push(outcome);
          return outcome;
        }),
    );
    await new Promise((resolve) => setTimeout(resolve, 2));
    // Judged on the database, not on the order the answers are seen in: two statements ending at
    // once on two connections may be read by this process in either order.
    const block = a.blockSubject({ subject: sub, blockedAt: 5, blockedBy: 'admin', reason: null }).then(() => b.countCertificates({ subject: sub }));
    const atBlock = await block;
    await Promise.all(exchanges);
    // no exchange that checked before the block committed its certificate after it
    assert.equal(await b.countCertificates({ subject: sub }), atBlock, `round ${round}: ${order.join(' ')}`);
    assert.equal(await b.countCertificates({ subject: sub }), order.filter((o) => o === 'issued').length);
  }
  await close();
});

test('postgres: a burst of exchanges shares its statements, and a block on the other instance still lands before or after each', async () => {
  const { a, b, close } = await twoInstances();
  const cert = (i: number, subject: string) => ({
    serial: `b-${i}`, fingerprint: 'fp', subject, email: null, commonName: subject, issuer: 'iss',
    roles: ['os:reader'], issuedAt: 1, expiresAt: 2, clientIp: null, source: 'id_token',
  });
  const audit = (i: number, subject: string) => [{ at: i, type: 'cert_issued', actor: null, subject, ip: null, detail: { i } }];
  const before = a.roundTrips.count;
  const burst = await Promise.all(Array.from({ length: 100 }, (_, i) => a.recordCertificate(cert(i, `u-${i % 7}`), audit(i, `u-${i % 7}`))));
  const trips = a.roundTrips.count - before;
  assert.ok(burst.every((r) => r !== 'blocked'));
  // one statement per batch (certificate-batch.ts): the first goes out alone, the rest gather behind it
  assert.ok(trips <= 10, `${trips} statements for 100 certificates`);
  // blocks from instance b while a's batches run: each record is stored (before the block) or refused
  const racing = Array.from({ length: 100 }, (_, i) => a.recordCertificate(cert(1000 + i, `u-${i % 7}`), audit(i, `u-${i % 7}`)));
  const blocks = Promise.all([0, 3, 5].map((k) => b.blockSubject({ subject: `u-${k}`, blockedAt: 5, blockedBy: 'admin', reason: null })));
  const raced = await Promise.all(racing);
  await blocks;
  for (const k of [0, 3, 5]) {
    const stored = raced.filter((r, i) => i % 7 === k && r !== 'blocked').length;
    assert.equal(await b.countCertificates({ subject: `u-${k}` }), burst.filter((_, i) => i % 7 === k).length + stored);
    assert.equal(await a.recordCertificate(cert(5000 + k, `u-${k}`), audit(k, `u-${k}`)), 'blocked');
  }
  await close();
});

test('postgres: a deadlock between two transactions is resolved by running the loser again', async () => {
  const { a, b, close } = await twoInstances();
  await a.createNode(sampleNode('x'));
  await a.createNode(sampleNode('y'));
  let runs = 0;
  const crossed = (s: PostgresStorage, first: string, second: string) =>
    s.transaction(async (tx) => {
      runs++;
      await tx.updateNode(first, (n) => ({ ...n, configDownloads: n.configDownloads + 1 }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      await tx.updateNode(second, (n) => ({ ...n, configDownloads: n.configDownloads + 1 }));
    });
  await Promise.all([crossed(a, 'x', 'y'), crossed(b, 'y', 'x')]);
  assert.ok(runs >= 3, 'one of them ran again');
  assert.equal((await a.getNode('x'))?.configDownloads, 2, 'each counted once: the undone attempt left nothing');
  assert.equal((await a.getNode('y'))?.configDownloads, 2);
  await close();
});

test('postgres: a database out of reach is StorageUnavailableError, not a crash', async () => {
  const url = new URL(testServerUrl());
  url.port = String(await freePort()); // nothing listens there
  const pool = new pg.Pool({ host: url.hostname, port: Number(url.port), connectionTimeoutMillis: 2000 });
  const { PostgresStorage: Storage } = await import('../../server/storage/postgres/index.js');
  const s = new Storage(pool, url.href, sharedTestBox);
  await assert.rejects(() => s.getNode('x'), StorageUnavailableError);
  await assert.rejects(() => s.transaction((tx) => tx.getNode('x')), StorageUnavailableError);
  await s.close();
});

test('postgres: database.url is read as libpq reads it, and refused when it cannot be used', () => {
  const u = parseDatabaseUrl('postgresql://gate:p%40ss@db.example.com:6432/talos_gate?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem');
  assert.deepEqual(
    [u.host, u.port, u.user, u.password, u.database, u.sslmode, u.sslrootcert],
    ['db.example.com', 6432, 'gate', 'p@ss', 'talos_gate', 'verify-full', '/etc/ssl/db-ca.pem'],
  );
  assert.equal(u.redacted.includes('p%40ss'), false, 'the password stays out of messages');
  assert.equal(parseDatabaseUrl('postgres://h/db').sslmode, 'disable');
  assert.throws(() => parseDatabaseUrl('mysql://h/db'), /postgres:\/\//);
  assert.throws(() => parseDatabaseUrl('postgres://h/'), /names no database/);
  assert.throws(() => parseDatabaseUrl('postgres://h/db?sslmode=prefer'), /not supported/);
  assert.throws(() => parseDatabaseUrl('postgres://h/db?sslmode=verify-full&sslrootcert=ca.pem'), /absolute path/);
  assert.throws(() => parseDatabaseUrl('postgres://h/db?ssl=true'), /parameter ssl is not supported/);
});

test('postgres: a search prefix reads the search indexes (a BitmapOr of ranges), never a scan of the fleet', async () => {
  const s = await freshPostgresStorage();
  try {
    await s.transaction(async (tx) => {
      for (let i = 0; i < 10_000; i++) {
        const h = i.toString(16).padStart(6, '0');
        await tx.createNode(sampleNode(`n${i}`, { createdAt: i, mac: `52:54:00:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4)}` }));
      }
    });
    const c = await s.pool.connect();
    const plan = await (async () => {
      await c.query('ANALYZE nodes');
      const where = POSTGRES_SEARCH_COLUMNS.map((col) => `(${col} >= $1 AND ${col} < $2)`).join(' OR ');
      const r = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT id FROM nodes WHERE (${where}) ORDER BY created_at DESC, id DESC LIMIT 101`, ['52:54:00:00:1f:0', '52:54:00:00:1f:1']);
      return r.rows.map((row) => row['QUERY PLAN']).join('\n');
    })().finally(() => c.release());
    assert.match(plan, /BitmapOr/, plan);
    for (const index of ['nodes_search_uuid', 'nodes_search_mac', 'nodes_search_hostname', 'nodes_search_source_ip', 'nodes_search_serial', 'nodes_search_sent_hostname']) {
      assert.match(plan, new RegExp(`Bitmap Index Scan on ${index}`), plan);
    }
    assert.doesNotMatch(plan, /Seq Scan/, plan);
    assert.equal((await s.listNodes({ prefix: '52:54:00:00:1f:0' }, { limit: 100 })).length, 16);
  } finally {
    await s.close();
  }
});

test('postgres: an audit filter reads its (column, id) index, never a scan of the trail', async () => {
  const s = await freshPostgresStorage();
  try {
    await s.transaction(async (tx) => {
      for (let i = 0; i < 5_000; i++) {
        const rare = i % 1000 === 0;
        await tx.addAuditEvent({
          at: i,
          type: rare ? 'node_rerendered' : (['device_code_issued', 'device_approved', 'config_downloaded'][i % 3] as string),
          actor: rare ? 'rare@example.com' : `admin${i % 7}@example.com`,
          subject: `n${i % 500}`,
          ip: null,
          detail: {},
        });
      }
    });
    const c = await s.pool.connect();
    const explain = async (column: string, value: string) => {
      const r = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT * FROM audit_events WHERE ${column} = $3 AND id < $1 AND id > 0 ORDER BY id DESC LIMIT $2`, [4000, 51, value]);
      return r.rows.map((row) => row['QUERY PLAN']).join('\n');
    };
    try {
      await c.query('ANALYZE audit_events');
      // a rare value (a few events among thousands) is found through its index, not by walking the trail
      for (const [column, value] of [['type', 'node_rerendered'], ['actor', 'rare@example.com']] as const) {
        const plan = await explain(column, value);
        assert.match(plan, new RegExp(`Index Scan.* on audit_events_${column}_id`), plan);
        assert.doesNotMatch(plan, /Seq Scan/, plan);
      }
      // the subject has no index (migration 008): its window (reports.ts auditPage) is a range of the primary key
      const windowed = (await c.query<{ 'QUERY PLAN': string }>('EXPLAIN SELECT * FROM audit_events WHERE subject = $3 AND id < $1 AND id > $4 ORDER BY id DESC LIMIT $2', [4000, 51, 'n7', 3000])).rows
        .map((row) => row['QUERY PLAN'])
        .join('\n');
      assert.match(windowed, /Index Scan Backward using audit_events_pkey/, windowed);
      assert.doesNotMatch(windowed, /Seq Scan|Sort/, windowed);
      // a common one may walk the ids backwards and stop at the page's end: still no scan, no sort of the matches
      assert.doesNotMatch(await explain('type', 'device_approved'), /Seq Scan|Sort/);
    } finally {
      c.release();
    }
    assert.equal((await s.listAuditEvents({ limit: 100, subject: 'n7' })).length, 10);
    assert.equal((await s.listAuditEvents({ limit: 100, type: 'node_rerendered', actor: 'rare@example.com' })).length, 5);
  } finally {
    await s.close();
  }
});
