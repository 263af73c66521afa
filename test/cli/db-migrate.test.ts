import { sharedTestBox } from '../helpers/sealing.js';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openPostgresStorage, type PostgresStorage } from '../../server/storage/postgres/index.js';
import { parseDatabaseUrl } from '../../server/storage/postgres/pool.js';
import { openSqliteStorage, type SqliteStorage } from '../../server/storage/sqlite/index.js';
import { newNode, type Storage } from '../../server/storage/storage.js';
import { runCli } from '../helpers/cli.js';
import { startDeviceCodeTraffic } from '../helpers/device-code-traffic.js';
import { startTestGate } from '../helpers/gate.js';
import { createTestDatabase, testServerUrl, withDatabase, type TestDatabase } from '../helpers/postgres.js';

// `talos-gate db migrate` on real files and a real PostgreSQL: every table of the schema holds
// rows (the test fails when a later migration adds a table it leaves empty, so the copy of each new
// table is exercised), the copy reads back equal through both backends' storage, and every refusal
// names the flag. The whole way through a gate (enroll, log in, exchange, then serve from
// PostgreSQL) is test/cli/db-migrate-gate.test.ts.

testServerUrl();

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-db-migrate-'));
const BIG = 2 ** 53 + 2; // beyond a double's exact integers: only exact if read as BigInt

/** One row or more in every table the gate has, through the storage interface (as the gate writes them). */
async function populate(s: Storage): Promise<void> {
  const t = 1_700_000_000_000;
  await s.createNode(newNode('n-1', t, { uuid: 'n-1', mac: '52:54:00:00:00:01', variables: { uuid: 'N-1', 'ü': 'ß ✓' }, status: 'approved', profile: 'worker', hostname: 'w-1', patches: [{ machine: { b: 2, a: 1 } }, 'x: 1\n'], config: 'version: v1alpha1\nmachine: {}\n', requestedAt: t, sourceIp: '192.0.2.1', decidedAt: t + 1, decidedBy: 'admin-token' }));
  await s.createNode(newNode('n-2', t + 5, { autoApprove: true, autoApproveCidrs: ['10.0.0.0/8'], sourceIp: '2001:db8::1' }));
  await s.createNode(newNode('N-3', t + 5, { status: 'denied' })); // upper case sorts before lower case in byte order
  await s.createOperatorGrant({ id: 'g1', clientId: 'talos-gate-cli', sub: 'alice', email: 'a@x', claims: { groups: ['ops'] }, idpRefreshToken: 'idp-rt', createdAt: t, refreshedAt: null, expiresAt: t + 86_400_000, revokedAt: null, revokedReason: null });
  const r1 = await s.createDeviceRequest({ deviceCodeHash: 'dch-1', userCode: 'BCDF-GHJK', clientId: 'talos-node', kind: 'node', nodeId: 'n-1', variables: { uuid: 'N-1' }, scope: null, audience: null, sourceIp: '192.0.2.1', sourceBucket: '192.0.2.1', createdAt: t, expiresAt: t + 600_000, intervalMs: 5000, status: 'pending' });
  await s.updateDeviceRequest(r1.id, (r) => ({ ...r, status: 'consumed', decidedAt: t + 1, decidedBy: 'admin-token', lastPollBasic: true, lastAnswer: 'authorization_pending' }));
  const r2 = await s.createDeviceRequest({ deviceCodeHash: 'dch-2', userCode: 'LMNP-QRST', clientId: 'talos-gate-cli', kind: 'operator', nodeId: null, variables: {}, scope: 'openid', audience: null, sourceIp: '127.0.0.1', sourceBucket: '127.0.0.1', createdAt: t, expiresAt: t + 600_000, intervalMs: 5000, status: 'pending' });
  await s.updateDeviceRequest(r2.id, (r) => ({ ...r, status: 'consumed', grantId: 'g1' }));
  await s.createNodeToken({ tokenHash: 'nth-1', nodeId: 'n-1', deviceRequestId: r1.id, issuedAt: t, expiresAt: BIG, revokedAt: null });
  await s.createRefreshToken({ tokenHash: 'rth-1', grantId: 'g1', issuedAt: t, expiresAt: t + 86_400_000, usedAt: t + 2 });
  await s.createRefreshToken({ tokenHash: 'rth-2', grantId: 'g1', issuedAt: t + 2, expiresAt: t + 86_400_000, usedAt: null });
  // the webhook tables: the triggers fill the outbox and the failure windows from these audit rows; the
  // copy must not fire them again in PostgreSQL (the verification would see more outbox rows there)
  await s.webhooks.syncSubscriptions([
    { auditType: 'node.approved', webhook: 'w1', event: 'node_approved', burst: null },
    { auditType: 'auth_failure', webhook: 'w1', event: 'auth_failures', burst: 2 },
  ]);
  for (let i = 0; i < 3; i++) await s.addAuditEvent({ at: t + i, type: 'auth_failure', actor: null, subject: null, ip: '192.0.2.7', detail: { reason: 'bad token' } });
  for (let i = 0; i < 2497; i++) await s.addAuditEvent({ at: t + i, type: i % 2 ? 'node.poll' : 'node.approved', actor: 'admin-token', subject: `n-${i}`, ip: '192.0.2.1', detail: { i, quote: 'he said "hi"' } });
  await s.addCertificate({ serial: '0a1b', fingerprint: 'ff'.repeat(32), subject: 'alice', email: 'a@x', commonName: 'a@x', issuer: 'https://idp', roles: ['os:operator'], issuedAt: t, expiresAt: t + 300_000, clientIp: '127.0.0.1', source: 'id_token' });
  await s.blockSubject({ subject: 'mallory', blockedAt: t, blockedBy: 'admin-token', reason: 'left' });
  await s.createWebSession({ idHash: 'ws-1', createdAt: t, lastSeenAt: t, expiresAt: t + 3_600_000, login: null, sub: 'alice', email: 'a@x', name: 'Alice', claims: { sub: 'alice' }, isAdmin: true, signedInAt: t, idpRefreshToken: null });
  await s.addCodeEntryFailure(['ip:192.0.2.1', 'session:x'], t);
  await s.addCodeEntryFailure(['ip:192.0.2.1'], t);
  // the shared secrets (bytes, not text: a NUL and high bytes must survive) and a signing key
  await s.instanceSecret('cookie-secret', Buffer.from([0, 1, 254, 255, 0x41]), t);
  await s.addSigningKey({ kid: 'kid-1', privateKey: Buffer.from('-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n'), createdAt: t, activatesAt: t + 360_000 }, t);
}

function sqliteTables(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'").pluck().all() as string[]).sort();
  } finally {
    db.close();
  }
}

async function onDatabase<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function migrate(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const run = runCli(['db', 'migrate', ...args]);
  const code = await run.exit;
  return { code, out: run.stdout(), err: run.stderr() };
}

describe('db migrate: a populated SQLite file into PostgreSQL', () => {
  let file: string;
  let target: TestDatabase;
  let sqlite: SqliteStorage;
  let postgres: PostgresStorage;
  let first: { code: number | null; out: string; err: string };

  before(async () => {
    file = join(dir, 'populated.db');
    const s = openSqliteStorage(file, { cipher: sharedTestBox });
    await populate(s);
    await s.close();
    target = await createTestDatabase();
    first = await migrate(['--from', file, '--to', target.url]);
    sqlite = openSqliteStorage(file, { cipher: sharedTestBox });
    postgres = await openPostgresStorage(parseDatabaseUrl(target.url), { poolSize: 2, cipher: sharedTestBox });
  });
  after(async () => {
    await sqlite?.close();
    await postgres?.close();
    await target?.drop();
  });

  test('every table of the schema is populated here, so the copy of each is tested', () => {
    const db = new Database(file, { readonly: true });
    try {
      for (const t of sqliteTables(file)) assert.ok(Number(db.prepare(`SELECT count(*) FROM "${t}"`).pluck().get()) > 0, `table ${t} has rows in this test`);
    } finally {
      db.close();
    }
  });

  test('copies, prints the count and checksum of every table, verifies, exits 0', () => {
    assert.equal(first.code, 0, first.err + first.out);
    for (const t of sqliteTables(file)) assert.match(first.out, new RegExp(`^  ${t} +\\d+ +\\d+ +[0-9a-f]{16} +[0-9a-f]{16}  ok$`, 'm'), `${t} listed as ok`);
    assert.match(first.out, /^  audit_events +2500 +2500 /m);
    assert.match(first.out, /^  code_entry_failures +3 +3 /m);
    assert.match(first.out, /migrations 1(, \d+)* applied now/);
    assert.match(first.out, /verified: \d+ tables, \d+ rows/);
    assert.match(first.err, /copied nodes: 3 rows/);
  });

  test('the records read back the same through both backends', async () => {
    for (const id of ['n-1', 'n-2', 'N-3']) assert.deepEqual(await postgres.getNode(id), await sqlite.getNode(id), id);
    assert.deepEqual(await postgres.getNodeToken('nth-1'), await sqlite.getNodeToken('nth-1'));
    assert.equal((await postgres.getNodeToken('nth-1'))?.expiresAt, BIG);
    assert.deepEqual(await postgres.getDeviceRequestByCodeHash('dch-1'), await sqlite.getDeviceRequestByCodeHash('dch-1'));
    assert.deepEqual(await postgres.getDeviceRequestByUserCode('LMNP-QRST'), await sqlite.getDeviceRequestByUserCode('LMNP-QRST'));
    assert.deepEqual(await postgres.getOperatorGrant('g1'), await sqlite.getOperatorGrant('g1'));
    assert.deepEqual(await postgres.getRefreshToken('rth-2'), await sqlite.getRefreshToken('rth-2'));
    assert.deepEqual(await postgres.getWebSession('ws-1'), await sqlite.getWebSession('ws-1'));
    assert.deepEqual(await postgres.listBlockedSubjects(), await sqlite.listBlockedSubjects());
    assert.deepEqual(await postgres.listCertificates({}, { limit: 10 }), await sqlite.listCertificates({}, { limit: 10 }));
    assert.deepEqual(await postgres.listAuditEvents({ limit: 3000 }), await sqlite.listAuditEvents({ limit: 3000 }));
    assert.equal(await postgres.countCodeEntryFailures('ip:192.0.2.1', 0), 2);
    assert.deepEqual((await postgres.instanceSecret('cookie-secret', Buffer.from('other'), 0)).value, Buffer.from([0, 1, 254, 255, 0x41]));
    assert.deepEqual(await postgres.listSigningKeys(), await sqlite.listSigningKeys());
    assert.deepEqual(await postgres.listNodes({}, { limit: 10 }), await sqlite.listNodes({}, { limit: 10 }));
  });

  test('the sequences continue after the copied ids', async () => {
    const before = await sqlite.listAuditEvents({ limit: 1 });
    const next = await postgres.addAuditEvent({ at: 1, type: 'x', actor: null, subject: null, ip: null, detail: {} });
    assert.equal(next.id, (before[0]?.id ?? 0) + 1);
    const req = await postgres.createDeviceRequest({ deviceCodeHash: 'dch-new', userCode: 'VWXZ-BCDF', clientId: 'talos-node', kind: 'node', nodeId: null, variables: {}, scope: null, audience: null, sourceIp: '192.0.2.9', sourceBucket: '192.0.2.9', createdAt: 1, expiresAt: 2, intervalMs: 5000, status: 'pending' });
    assert.equal(req.id, 3);
  });

  test('a second migrate into the now non-empty target is refused, and the target is left as it is', async () => {
    const again = await migrate(['--from', file, '--to', target.url]);
    assert.equal(again.code, 2, again.err);
    assert.match(again.err, /talos-gate: db migrate: --to: database talos_gate_test_\w+ already holds data \(.*nodes: 3.*\): db migrate copies into an empty database only\. Give it a new database, or pass --replace/);
    assert.equal(await postgres.countNodes({}), 3);
  });
});

test('db migrate --replace empties a target holding data, then copies', async () => {
  const file = join(dir, 'replace.db');
  const s = openSqliteStorage(file, { cipher: sharedTestBox });
  await s.createNode(newNode('only', 1));
  await s.close();
  const target = await createTestDatabase();
  try {
    const pgs = await openPostgresStorage(parseDatabaseUrl(target.url), { poolSize: 1, cipher: sharedTestBox });
    await pgs.createNode(newNode('stale', 1));
    await pgs.addAuditEvent({ at: 1, type: 'stale', actor: null, subject: null, ip: null, detail: {} });
    const r = await migrate(['--from', file, '--to', target.url, '--replace']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /replaced what the target held: .*audit_events 1.*nodes 1/);
    assert.deepEqual((await pgs.listNodes({}, { limit: 10 })).map((n) => n.id), ['only']);
    assert.equal((await pgs.addAuditEvent({ at: 2, type: 'x', actor: null, subject: null, ip: null, detail: {} })).id, 1, 'identities restarted');
    await pgs.close();
  } finally {
    await target.drop();
  }
});

test('a target that changes what it stores fails the verification: exit 1, rolled back', async () => {
  const file = join(dir, 'verify.db');
  const s = openSqliteStorage(file, { cipher: sharedTestBox });
  await s.addAuditEvent({ at: 1, type: 'node.approved', actor: 'a', subject: 's', ip: null, detail: { k: 1 } });
  await s.close();
  const target = await createTestDatabase();
  try {
    // a target migrated already, with a trigger that alters each audit row as it is inserted
    await (await openPostgresStorage(parseDatabaseUrl(target.url), { poolSize: 1, cipher: sharedTestBox })).close();
    await onDatabase(target.url, async (c) => {
      await c.query(`CREATE FUNCTION tamper() RETURNS trigger AS $$ BEGIN NEW.actor := 'someone else'; RETURN NEW; END $$ LANGUAGE plpgsql`);
      await c.query('CREATE TRIGGER tamper BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION tamper()');
    });
    const r = await migrate(['--from', file, '--to', target.url]);
    assert.equal(r.code, 1, r.err + r.out);
    assert.match(r.err, /verification failed for audit_events: the copy was rolled back/);
    assert.match(r.err, /^  audit_events +1 +1 +[0-9a-f]{16} +[0-9a-f]{16}  DIFFERS$/m);
    assert.match(r.err, /^  nodes +0 +0 .* ok$/m);
    const n = await onDatabase(target.url, (c) => c.query('SELECT count(*)::int AS n FROM audit_events'));
    assert.equal(n.rows[0].n, 0, 'nothing committed');
  } finally {
    await target.drop();
  }
});

describe('db migrate refuses, naming the flag, and writes nothing', () => {
  let target: TestDatabase;
  before(async () => {
    target = await createTestDatabase();
  });
  after(() => target.drop());

  const refused = async (args: string[], re: RegExp) => {
    const r = await migrate(args);
    assert.equal(r.code, 2, r.err + r.out);
    assert.match(r.err, re);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  };

  test('a --from that does not exist, is not SQLite, or is not the gate\'s', async () => {
    await refused(['--from', join(dir, 'missing.db'), '--to', target.url], /--from: \S+missing\.db does not exist/);
    const junk = join(dir, 'junk.db');
    writeFileSync(junk, 'this is not a database, just text that is long enough to have a header.'.repeat(20));
    await refused(['--from', junk, '--to', target.url], /--from: \S+junk\.db is not an SQLite database: file is not a database/);
    const other = join(dir, 'other.db');
    new Database(other).exec('CREATE TABLE t (x)').close();
    await refused(['--from', other, '--to', target.url], /--from: \S+other\.db is not a talos-gate database \(it has no schema_migrations table\)/);
  });

  test('a --from at another schema version: start the gate on it first, or upgrade', async () => {
    const old = join(dir, 'old.db');
    (await openSqliteStorage(old, { cipher: sharedTestBox }).close());
    new Database(old).exec('DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)').close();
    await refused(['--from', old, '--to', target.url], /--from: \S+old\.db is at schema version \d+, this talos-gate's is \d+: start this talos-gate once on it/);
    const newer = join(dir, 'newer.db');
    (await openSqliteStorage(newer, { cipher: sharedTestBox }).close());
    new Database(newer).exec("INSERT INTO schema_migrations VALUES (999, 'future', 0)").close();
    await refused(['--from', newer, '--to', target.url], /--from: \S+newer\.db is at schema version 999, newer than this talos-gate/);
  });

  test('a --from table the PostgreSQL schema does not have is refused, not dropped', async () => {
    const extra = join(dir, 'extra.db');
    await openSqliteStorage(extra, { cipher: sharedTestBox }).close();
    new Database(extra).exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'keep me')").close();
    await refused(['--from', extra, '--to', target.url], /--from: cannot be copied as it is:\n {2}- table notes has no counterpart in postgres:\/\/\S+'s schema/);
  });

  test('a value that does not fit its column names the table, column and row', async () => {
    const bad = join(dir, 'bad-value.db');
    const s = openSqliteStorage(bad, { cipher: sharedTestBox });
    await s.createNode(newNode('n', 1));
    await s.close();
    new Database(bad).exec("UPDATE nodes SET created_at = 'yesterday'").close();
    await refused(['--from', bad, '--to', target.url], /--from: nodes\.created_at in the row id=n holds the text "yesterday" where PostgreSQL expects a whole number \(bigint\)/);
  });

  test('a --to that is no URL, not PostgreSQL, or unreachable', async () => {
    const file = join(dir, 'fine.db');
    await openSqliteStorage(file, { cipher: sharedTestBox }).close();
    await refused(['--from', file, '--to', 'not a url'], /--to: is not a URL/);
    await refused(['--from', file, '--to', 'mysql://h/db'], /--to: must start with postgres:\/\//);
    await refused(['--from', file, '--to', withDatabase(testServerUrl(), 'talos_gate_no_such_db')], /--to: PostgreSQL at \S+ has no database talos_gate_no_such_db: create it/);
    const closed = new URL(target.url);
    closed.port = '1';
    await refused(['--from', file, '--to', closed.href], /--to: cannot reach PostgreSQL at 127\.0\.0\.1:1/);
  });

  test('the target was migrated (the refusals of rows came after that) but holds no row', async () => {
    const n = await onDatabase(target.url, (c) => c.query("SELECT (SELECT count(*) FROM nodes) + (SELECT count(*) FROM audit_events) AS n"));
    assert.equal(Number(n.rows[0].n), 0);
  });
});

test('db migrate from the file of a running gate, while nodes keep asking: one consistent state, verified', async () => {
  const g = await startTestGate({ device: { interval: '1s', code_ttl: '2m', max_pending_per_ip: 1_000_000 }, rate_limits: { device_code: 1_000_000 } });
  const target = await createTestDatabase();
  const traffic = startDeviceCodeTraffic(g, 'eeeeeeee');
  try {
    await traffic.reached(5);
    const before = traffic.asked;
    const r = await migrate(['--from', join(g.gate.config.data_dir, 'talos-gate.db'), '--to', target.url]);
    const after = traffic.asked;
    assert.equal(r.code, 0, r.err + r.out);
    assert.ok(after > before, 'the gate wrote during the copy');
    const nodes = Number(/^ {2}nodes +(\d+) +(\d+) /m.exec(r.out)?.[1]);
    const requests = Number(/^ {2}device_requests +(\d+) +(\d+) /m.exec(r.out)?.[1]);
    assert.ok(nodes >= before && nodes <= after, `nodes ${nodes} between ${before} and ${after}`);
    assert.equal(requests, nodes, 'nodes and their requests from the same moment');
  } finally {
    await traffic.stop();
    await g.close();
    await target.drop();
  }
});
