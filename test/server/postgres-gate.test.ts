import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { request } from '../../cli/http.js';
import { OAuthError } from '../../device/errors.js';
import { generateSecret, hashSecret } from '../../device/secrets.js';
import { SubjectBlocks } from '../../server/access/subject-blocks.js';
import { AuditLog } from '../../server/audit.js';
import { ConfigError } from '../../server/config/load.js';
import { GateMetrics } from '../../server/metrics.js';
import { GateTokenSigner } from '../../server/operators/gate-tokens.js';
import { OperatorService } from '../../server/operators/service.js';
import { openPostgresStorage, PostgresStorage } from '../../server/storage/postgres/index.js';
import { newNode } from '../../server/storage/storage.js';
import { parseDatabaseUrl } from '../../server/storage/postgres/pool.js';
import { freePort, startTestGate, type TestGate } from '../helpers/gate.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { createTestDatabase, freshPostgresStorage, onServer, testServerCa, testServerUrl, withDatabase } from '../helpers/postgres.js';
import { makeTalosCa } from '../helpers/talos-ca.js';
import { sharedTestBox } from '../helpers/sealing.js';

// A gate on PostgreSQL end to end (the enrollment flow runs on both backends in
// test/enrollment/device-flow.test.ts): the exchange and a block, an operator's refresh and its
// replay, the database going away and coming back, and the start-up errors of a database.url
// that cannot be used.

testServerUrl(); // fails this file at once, saying how to get a server, when there is none

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-pg-e2e-'));

describe('certificate exchange on PostgreSQL', () => {
  let idp: TestIdp;
  let g: TestGate;
  before(async () => {
    idp = await startIdp({
      users: [{ sub: 'alice', claims: { email: 'alice@example.com', groups: ['ops'] } }],
      clients: [{ client_id: 'talos-gate', redirect_uris: ['http://127.0.0.1:9/callback'] }],
    });
    const ca = makeTalosCa(dir, 'ed25519');
    g = await startTestGate(
      {
        oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' },
        rbac: { rules: [{ claim: 'groups', value: 'ops', roles: ['os:operator'] }] },
        talos: { ca_cert: ca.certPath, ca_key: ca.keyPath, endpoints: ['10.0.0.10'] },
      },
      { backend: 'postgres' },
    );
  });
  after(async () => {
    await g.close();
    await idp.close();
  });

  const exchange = async (idToken: string) => {
    const res = await request(`${g.url}/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id_token: idToken }), ca: g.ca });
    return { status: res.status, json: JSON.parse(res.body) as Record<string, unknown> };
  };

  test('an ID token becomes a certificate, recorded in PostgreSQL; a block refuses the next one', async () => {
    const alice = await idp.login('talos-gate', 'alice');
    assert.ok(g.gate.storage instanceof PostgresStorage);
    const trips = g.gate.storage.roundTrips.count;
    const r = await exchange(alice.id_token);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // the exchange's storage part is one statement (the block check, the record, its events): a hot path's budget is two
    const used = g.gate.storage.roundTrips.count - trips;
    assert.ok(used <= 2, `the exchange took ${used} round trips`);
    assert.deepEqual(r.json.roles, ['os:operator']);
    const certs = await g.admin('GET', '/api/v1/certs?active=true&total=true');
    assert.equal(certs.json.total, 1);
    assert.equal(certs.json.certs[0].serial, r.json.serial);
    assert.equal((await g.admin('POST', '/api/v1/subjects/alice/block', { reason: 'left' })).status, 200);
    const refused = await exchange(alice.id_token);
    assert.equal(refused.status, 403, JSON.stringify(refused.json));
    assert.equal((await g.admin('GET', '/api/v1/certs?active=true&total=true')).json.total, 1, 'nothing issued to a blocked subject');
  });

  test('/metrics reports the PostgreSQL database size', async () => {
    const metrics = new GateMetrics(g.gate.storage);
    const text = await metrics.registry.metrics();
    const size = Number(/^talos_gate_postgres_bytes (\d+)/m.exec(text)?.[1]);
    assert.ok(size > 1_000_000, `pg_database_size: ${size}`);
    assert.doesNotMatch(text, /talos_gate_sqlite_bytes/);
  });
});

test('an operator refresh on PostgreSQL: the token rotates, and its replay ends the login', async () => {
  const storage = await freshPostgresStorage();
  try {
    const signer = await GateTokenSigner.open(storage, mkdtempSync(join(dir, 'signer-')), 'https://gate.test');
    const audit = new AuditLog(storage, Date.now);
    const idp = { refresh: async (t: string) => ({ claims: { groups: ['ops'], email: 'a@x' }, refreshToken: `${t}-next` }) };
    const ops = new OperatorService(storage, audit, signer, idp, { accessTokenTtlMs: 600_000, grantTtlMs: 86_400_000 }, Date.now, new SubjectBlocks(storage, audit, Date.now));
    const now = Date.now();
    await storage.createOperatorGrant({ id: 'g1', clientId: 'cli', sub: 'alice', email: 'a@x', claims: { groups: ['ops'] }, idpRefreshToken: 'idp-rt', createdAt: now, refreshedAt: null, expiresAt: now + 86_400_000, revokedAt: null, revokedReason: null });
    const rt = generateSecret();
    await storage.createRefreshToken({ tokenHash: hashSecret(rt), grantId: 'g1', issuedAt: now, expiresAt: now + 86_400_000, usedAt: null });
    const tokens = await ops.refresh(rt, 'cli', '127.0.0.1');
    assert.ok(tokens.access_token && tokens.refresh_token !== rt);
    const code = (e: unknown) => (e instanceof OAuthError ? e.error : String(e));
    await assert.rejects(ops.refresh(rt, 'cli', '127.0.0.1'), (e) => code(e) === 'invalid_grant', 'a replay is refused');
    assert.notEqual((await storage.getOperatorGrant('g1'))?.revokedAt, null, 'and revokes the login');
    await assert.rejects(ops.refresh(tokens.refresh_token, 'cli', '127.0.0.1'), (e) => code(e) === 'invalid_grant', 'the whole login');
  } finally {
    await storage.close();
  }
});

/** A TCP proxy in front of the PostgreSQL server that can be cut (the database "goes away") and restored. */
async function cuttableProxy(target: { host: string; port: number }): Promise<{ port: number; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        const upstream = connect(target.port, target.host);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => s.destroy());
        }
        client.pipe(upstream).pipe(client);
      });
      server.listen(port, '127.0.0.1', resolve);
    });
  const cut = async () => {
    await new Promise<void>((resolve) => {
      if (!server) return resolve();
      server.close(() => resolve());
      for (const s of sockets) s.destroy(); // every pooled connection dies, as in a server restart
    });
    server = undefined;
  };
  await listen();
  return { port, cut, restore: listen, close: cut };
}

test('the database going away: /readyz fails, requests answer 503 with Retry-After, and the gate recovers by itself', async () => {
  const db = await createTestDatabase();
  const server = new URL(testServerUrl());
  const proxy = await cuttableProxy({ host: server.hostname, port: Number(server.port || 5432) });
  const viaProxy = new URL(db.url);
  viaProxy.port = String(proxy.port);
  const g = await startTestGate({ database: { url: viaProxy.href } });
  const get = (path: string) => request(`${g.url}${path}`, { ca: g.ca });
  const deviceCode = () =>
    request(`${g.url}/device/code`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'client_id=talos-node&uuid=5e1a0000-0000-4000-8000-000000000001', ca: g.ca });
  try {
    assert.equal((await get('/readyz')).status, 200);
    assert.equal((await deviceCode()).status, 200);

    await proxy.cut();
    const ready = await get('/readyz');
    assert.equal(ready.status, 503);
    assert.match(JSON.parse(ready.body).checks.database, /^failed: the database is unavailable/);
    const refused = await deviceCode();
    assert.equal(refused.status, 503, refused.body);
    assert.equal(refused.headers['retry-after'], '5');
    assert.equal(JSON.parse(refused.body).error, 'temporarily_unavailable');
    const listed = await g.admin('GET', '/api/v1/nodes');
    assert.equal(listed.status, 503, 'the admin API too');
    assert.equal((await get('/healthz')).status, 200, 'the process itself is alive: no restart needed');

    await proxy.restore();
    assert.equal((await get('/readyz')).status, 200, 'ready again as soon as the database answers');
    assert.equal((await deviceCode()).status, 200);
    const nodes = await g.admin('GET', '/api/v1/nodes');
    assert.equal(nodes.status, 200);
    assert.equal(nodes.json.nodes.length, 1, 'what was acknowledged before the outage is there');
  } finally {
    await g.close();
    await proxy.close();
    await db.drop();
  }
});

describe('a database.url that cannot be used stops the start, naming the key', () => {
  const startError = async (url: string) => {
    const err = await startTestGate({ database: { url } }).then(
      async (g) => {
        await g.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    assert.equal(err.key, 'database.url');
    return err.problem;
  };

  test('nothing listens there', async () => {
    const url = new URL(testServerUrl());
    url.port = String(await freePort());
    assert.match(await startError(url.href), /cannot reach PostgreSQL at 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  });

  test('no such database', async () => {
    assert.match(await startError(withDatabase(testServerUrl(), 'talos_gate_missing')), /has no database talos_gate_missing: create it/);
  });

  test('a role that may not create the tables, and one that may not write them', async () => {
    const db = await createTestDatabase();
    const role = `talos_gate_ro_${process.pid}`;
    await onServer(async (c) => {
      await c.query(`DROP ROLE IF EXISTS ${role}`);
      await c.query(`CREATE ROLE ${role} LOGIN`);
    });
    try {
      const asRole = new URL(db.url);
      asRole.username = role;
      // PostgreSQL 15: no CREATE on schema public for roles other than the database's owner
      assert.match(await startError(asRole.href), new RegExp(`role ${role} may not create the gate's tables`));
      // migrated by the owner, readable but not writable by the role
      const owner = await openPostgresStorage(parseDatabaseUrl(db.url), { cipher: sharedTestBox });
      await owner.close();
      const inDb = new pg.Client({ connectionString: db.url });
      await inDb.connect();
      await inDb.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`);
      await inDb.end();
      assert.match(await startError(asRole.href), /lacks SELECT, INSERT, UPDATE or DELETE on .*nodes.*: GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES/);
    } finally {
      await db.drop();
      await onServer((c) => c.query(`DROP ROLE IF EXISTS ${role}`));
    }
  });

  test('a URL that is not one, or a TLS mode the gate does not do', async () => {
    assert.match(await startError('mysql://db/x'), /must start with postgres:\/\//);
    assert.match(await startError('postgres://db/x?sslmode=prefer'), /sslmode=prefer is not supported/);
  });
});

describe('TLS to PostgreSQL', () => {
  const withTls = (url: string, params: string) => `${url}${url.includes('?') ? '&' : '?'}${params}`;

  test('sslmode=verify-full with sslrootcert: the connection is encrypted and the server checked', async () => {
    const db = await createTestDatabase();
    try {
      const s = await openPostgresStorage(parseDatabaseUrl(withTls(db.url, `sslmode=verify-full&sslrootcert=${testServerCa()}`)), { cipher: sharedTestBox });
      const row = await s.pool.query<{ ssl: number }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      assert.equal(row.rows[0]?.ssl, 1, 'TLS on the connection');
      await s.createNode(newNode('tls-node', 1));
      assert.ok(await s.getNode('tls-node'));
      await s.close();
    } finally {
      await db.drop();
    }
  });

  test('a server whose certificate another CA signed is refused at start, naming database.url', async () => {
    const other = join(mkdtempSync(join(dir, 'other-ca-')), 'ca.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${other}.key`, '-out', other,
      '-days', '1', '-subj', '/CN=not-the-database-ca', '-addext', 'basicConstraints=critical,CA:TRUE'], { stdio: 'ignore' });
    const g = await startTestGate({ database: { url: withTls(testServerUrl(), `sslmode=verify-full&sslrootcert=${other}`) } }).then(
      async (gate) => {
        await gate.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    assert.ok(g instanceof ConfigError && g.key === 'database.url', String(g));
    assert.match(g.problem, /^TLS to PostgreSQL at 127\.0\.0\.1:\d+ failed: .*\(sslmode=verify-full, sslrootcert=/);
  });

  test('a missing sslrootcert file is a start-up error too', async () => {
    const err = await startTestGate({ database: { url: withTls(testServerUrl(), 'sslmode=verify-full&sslrootcert=/nonexistent/ca.pem') } }).catch((e: unknown) => e);
    assert.ok(err instanceof ConfigError && err.key === 'database.url', String(err));
    assert.match(err.problem, /sslrootcert \/nonexistent\/ca\.pem cannot be read/);
  });
});
