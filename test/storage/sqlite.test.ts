import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { migrate, readMigrations } from '../../server/storage/migrate.js';
import { openSqliteStorage } from '../../server/storage/sqlite/index.js';
import { sqliteMigrationsDir } from '../../server/paths.js';
import { nodeWhere } from '../../server/storage/sqlite/statements.js';
import { runStorageConformance, sampleNode } from './conformance.js';
import { sharedTestBox } from '../helpers/sealing.js';
import { AlreadyExistsError } from '../../server/storage/storage.js';
import { reencrypt } from '../../server/secrets/reencrypt.js';

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-sqlite-'));
let n = 0;
runStorageConformance('sqlite file', () => openSqliteStorage(join(dir, `conf-${n++}.db`), { cipher: sharedTestBox }));

test('sqlite: WAL mode, sub-journals in memory, 0600 file, migrations recorded once, data survives reopening', async () => {
  const file = join(dir, 'reopen.db');
  const s = openSqliteStorage(file, { cipher: sharedTestBox });
  assert.equal(s.db.pragma('journal_mode', { simple: true }), 'wal');
  // 2: MEMORY (a group commit's savepoints would otherwise spill to a temporary file; index.ts)
  assert.equal(s.db.pragma('temp_store', { simple: true }), 2);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  await s.createNode(sampleNode('kept'));
  await s.close();
  const again = openSqliteStorage(file, { cipher: sharedTestBox });
  assert.ok(await again.getNode('kept'));
  const versions = again.db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[];
  assert.deepEqual(versions.map((v) => v.version), readMigrations(sqliteMigrationsDir).map((m) => m.version));
  await again.close();
});

test('sqlite: grouped transactions run in the order asked, in one commit: each sees the writes queued before it', async () => {
  const s = openSqliteStorage(join(dir, 'order.db'), { cipher: sharedTestBox });
  const results = await Promise.allSettled([
    s.groupedTransaction(async (tx) => (await tx.createNode(sampleNode('o1'))).id),
    s.groupedTransaction(async (tx) => (await tx.getNode('o1'))?.id),
    s.groupedTransaction((tx) => tx.createNode(sampleNode('o1'))),
  ]);
  assert.deepEqual(results.slice(0, 2), [
    { status: 'fulfilled', value: 'o1' },
    { status: 'fulfilled', value: 'o1' },
  ]);
  assert.ok((results[2] as PromiseRejectedResult).reason instanceof AlreadyExistsError, 'the later duplicate is the one refused');
  await s.close();
});

test('sqlite: a grouped transaction asked for just before close is committed, not lost', async () => {
  const file = join(dir, 'close.db');
  const s = openSqliteStorage(file, { cipher: sharedTestBox });
  const pending = s.groupedTransaction(async (tx) => (await tx.createNode(sampleNode('late'))).id);
  const closed = s.close();
  assert.equal(await pending, 'late');
  await closed;
  const again = openSqliteStorage(file, { cipher: sharedTestBox });
  assert.ok(await again.getNode('late'));
  await again.close();
});

test('sqlite: a failing migration leaves the database as it was', () => {
  const db = new Database(join(dir, 'broken.db'));
  const good = readMigrations(sqliteMigrationsDir);
  assert.throws(() => migrate(db, [...good, { version: good.length + 1, name: 'broken', sql: 'CREATE TABLE x (a); SELECT nonsense FROM nowhere;' }]));
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('nodes', 'x')").all();
  assert.deepEqual(tables, [], 'nothing of the failed batch was applied');
  migrate(db, good);
  assert.throws(() => migrate(db, []), /newer than this talos-gate/, 'a database from a newer build is refused');
  db.close();
});

test('sqlite: migration 6 keeps every certificate record and its id, and ids go on from the highest', async () => {
  const file = join(dir, 'm6.db');
  const db = new Database(file);
  const all = readMigrations(sqliteMigrationsDir);
  migrate(db, all.filter((m) => m.version < 6));
  const insert = db.prepare(
    `INSERT INTO certificates (serial, fingerprint, subject, email, common_name, issuer, roles, issued_at, expires_at, client_ip, source)
     VALUES (?, ?, 'sub', NULL, 'cn', 'iss', '["os:reader"]', 1, 2, NULL, 'id_token')`,
  );
  for (let i = 0; i < 5; i++) insert.run(`serial-${i}`, `fp-${i}`);
  db.prepare('DELETE FROM certificates WHERE serial = ?').run('serial-4'); // the highest id was used once
  const before = db.prepare('SELECT * FROM certificates ORDER BY id').all();
  db.close();
  const s = openSqliteStorage(file, { cipher: sharedTestBox });
  assert.deepEqual(s.db.prepare('SELECT * FROM certificates ORDER BY id').all(), before);
  const added = await s.addCertificate({
    serial: 'serial-new', fingerprint: 'fp-0', subject: 'sub', email: null, commonName: 'cn', issuer: 'iss',
    roles: ['os:reader'], issuedAt: 3, expiresAt: 4, clientIp: null, source: 'id_token',
  });
  assert.equal(added.id, 6, 'AUTOINCREMENT: an id is never given twice');
  const indexes = (s.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'certificates'").all() as { name: string }[]).map((r) => r.name);
  assert.ok(indexes.includes('certificates_expires') && indexes.includes('certificates_subject'));
  await assert.rejects(() => s.addCertificate({ ...added, serial: 'serial-0' }), 'serials stay unique');
  await s.close();
});

test('sqlite: migration 7 takes the standing auto-approval from nodes approved before; registered ones stay armed', async () => {
  const file = join(dir, 'm7.db');
  const db = new Database(file);
  migrate(db, readMigrations(sqliteMigrationsDir).filter((m) => m.version < 7));
  const insert = db.prepare("INSERT INTO nodes (id, status, profile, auto_approve, config, created_at) VALUES (?, 'approved', 'worker', ?, ?, 1)");
  insert.run('booted', 1, 'machine: {}\n');
  insert.run('registered', 1, null);
  insert.run('plain', 0, 'machine: {}\n');
  db.close();
  const s = openSqliteStorage(file, { cipher: sharedTestBox });
  // rows from before sealing are plaintext: db reencrypt seals them (server/secrets/reencrypt.ts)
  await reencrypt(s, sharedTestBox);
  assert.deepEqual(
    await Promise.all(['booted', 'registered', 'plain'].map(async (id) => [(await s.getNode(id))?.autoApprove, (await s.getNode(id))?.autoApproveCidrs])),
    [[false, []], [true, []], [false, []]],
  );
  await s.close();
});

test('sqlite: a search prefix reads the search indexes (one range each), never a scan of the fleet', async () => {
  const s = openSqliteStorage(join(dir, 'search-plan.db'), { cipher: sharedTestBox });
  await s.transaction(async (tx) => {
    for (let i = 0; i < 10_000; i++) {
      const h = i.toString(16).padStart(6, '0');
      await tx.createNode(sampleNode(`n${i}`, { createdAt: i, mac: `52:54:00:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4)}`, sourceIp: `10.0.${i % 256}.${i % 200}` }));
    }
  });
  const w = nodeWhere({ prefix: '52:54:00:00:1f:0' });
  const plan = (s.db.prepare(`EXPLAIN QUERY PLAN SELECT id FROM nodes WHERE ${w.sql} ORDER BY created_at DESC, id DESC LIMIT 101`).all(...w.args) as { detail: string }[]).map((r) => r.detail);
  for (const index of ['nodes_search_uuid', 'nodes_search_mac', 'nodes_search_hostname', 'nodes_search_source_ip', 'nodes_search_serial', 'nodes_search_sent_hostname']) {
    assert.ok(plan.some((d) => d.includes(`USING INDEX ${index} (<expr>>? AND <expr><?)`)), `${index} is read as a range: ${plan.join(' | ')}`);
  }
  assert.ok(!plan.some((d) => /^SCAN nodes/.test(d)), `no scan: ${plan.join(' | ')}`);
  assert.deepEqual((await s.listNodes({ prefix: '52:54:00:00:1f:0' }, { limit: 100 })).map((n) => n.id), Array.from({ length: 16 }, (_, k) => `n${0x1f0f - k}`));
  await s.close();
});

test('sqlite: an audit filter reads its index in id order (a subject: a range of ids), neither a scan of the trail nor a sort', async () => {
  const s = openSqliteStorage(join(dir, 'audit-plan.db'), { cipher: sharedTestBox });
  const explain = (sql: string, ...args: unknown[]) => (s.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail);
  for (const column of ['type', 'actor']) {
    const plan = explain(`SELECT * FROM audit_events WHERE ${column} = ? AND id < ? AND id > ? ORDER BY id DESC LIMIT ?`, 'x', 10, 0, 5);
    assert.ok(plan.some((d) => d.includes(`USING INDEX audit_events_${column} (${column}=? AND rowid>? AND rowid<?)`)), `${column}: ${plan.join(' | ')}`);
    assert.ok(!plan.some((d) => /^SCAN|TEMP B-TREE/.test(d)), `${column}: no scan, no sort: ${plan.join(' | ')}`);
  }
  // the subject has no index (migration 014): its window is a range of the primary key
  const plan = explain('SELECT * FROM audit_events WHERE subject = ? AND id < ? AND id > ? ORDER BY id DESC LIMIT ?', 'x', 60_000, 10_000, 5);
  assert.ok(plan.some((d) => d.includes('USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)')), `subject: ${plan.join(' | ')}`);
  assert.ok(!plan.some((d) => /TEMP B-TREE/.test(d)), `subject: no sort: ${plan.join(' | ')}`);
  await s.close();
});
