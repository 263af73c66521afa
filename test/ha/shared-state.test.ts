import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { request } from '../../cli/http.js';
import { startInstances, type HaCluster } from '../helpers/ha.js';

// Two instances of one gate, each its own `talos-gate serve` process, started at the same moment on
// one fresh PostgreSQL database with no admin_token in the config: they migrate once, make one set
// of secrets between them, and present the same certificate and admin token.

/** The SHA-256 fingerprint of the certificate a TLS server presents, verified against ca. */
function peerFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

describe('two instances on one database share what makes them one gate', () => {
  let c: HaCluster;
  before(async () => {
    c = await startInstances(2, { generatedAdminToken: true });
  });
  after(() => c?.close());

  test('started together, the migrations ran once and both serve', async () => {
    const db = new pg.Client({ connectionString: c.database.url });
    await db.connect();
    try {
      const rows = (await db.query<{ version: number; n: string }>('SELECT version, COUNT(*) AS n FROM schema_migrations GROUP BY version ORDER BY version')).rows;
      assert.ok(rows.length >= 2, JSON.stringify(rows));
      assert.deepEqual(rows.map((r) => r.version), rows.map((_, i) => i + 1), 'contiguous versions');
      assert.ok(rows.every((r) => Number(r.n) === 1), 'each version once');
      const secrets = (await db.query<{ name: string }>('SELECT name FROM instance_secrets ORDER BY name')).rows.map((r) => r.name);
      assert.deepEqual(secrets.filter((n) => !n.startsWith('tls-server:')), ['admin-token', 'cookie-secret', 'tls-ca']);
      assert.equal(secrets.filter((n) => n.startsWith('tls-server:')).length, 1, 'one server certificate for the one set of names');
      assert.equal(Number((await db.query<{ n: string }>('SELECT COUNT(*) AS n FROM gate_signing_keys')).rows[0]?.n), 1, 'one signing key');
    } finally {
      await db.end();
    }
    for (const i of c.instances) {
      const r = await request(`${i.url}/readyz`, { ca: i.ca() });
      assert.equal(r.status, 200, `instance ${i.index}: ${r.body}`);
      assert.equal(i.run?.stderr(), '', `instance ${i.index} logged no error`);
    }
  });

  test('self-signed mode: the same CA and the same server certificate from both', async () => {
    const [a, b] = c.instances as [NonNullable<HaCluster['instances'][0]>, NonNullable<HaCluster['instances'][1]>];
    assert.ok(a.ca().includes('BEGIN CERTIFICATE'));
    assert.equal(a.ca(), b.ca(), 'each data_dir has a copy of the one CA');
    // each verified against the other's copy of the CA: a client pinning it reaches both
    const fa = await peerFingerprint(a.port, b.ca());
    const fb = await peerFingerprint(b.port, a.ca());
    assert.equal(fa, fb);
    const viaCa = await request(`${b.url}/ca`, { ca: a.ca() });
    assert.equal(viaCa.body, a.ca());
  });

  test('the admin token one instance made opens the admin API of both', async () => {
    const [a, b] = c.instances as [NonNullable<HaCluster['instances'][0]>, NonNullable<HaCluster['instances'][1]>];
    assert.equal(readFileSync(join(b.dataDir, 'admin-token'), 'utf8').trim(), c.adminToken, 'both copies hold the one token');
    for (const i of [a, b]) {
      const ok = await request(`${i.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${c.adminToken}` }, ca: i.ca() });
      assert.equal(ok.status, 200, ok.body);
      const wrong = await request(`${i.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${'0'.repeat(64)}` }, ca: i.ca() });
      assert.equal(wrong.status, 401);
    }
  });

  test('a restarted instance keeps the shared secrets (it reads them, it does not make new ones)', async () => {
    const b = c.instances[1]!;
    const before = await peerFingerprint(b.port, b.ca());
    await b.restart();
    assert.equal(await peerFingerprint(b.port, c.instances[0]!.ca()), before);
    const ok = await request(`${b.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${c.adminToken}` }, ca: b.ca() });
    assert.equal(ok.status, 200);
  });
});
