import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { goFormEncode, request } from '../../cli/http.js';
import type { DeviceCodeResponse } from '../../cli/talos-node.js';
import { ConfigError } from '../../server/config/load.js';
import { startGate, type RunningGate } from '../../server/main.js';
import { BACKENDS, freePort, startTestGate, type TestGate } from '../helpers/gate.js';
import { runCli } from '../helpers/cli.js';
import { newSystemSecret } from '../helpers/sealing.js';

// Issue 16: nothing in the database or its copies opens a cluster. Control-plane configs are
// rendered with known secret strings; the SQLite file, its WAL, a backup and a pg_dump must not
// contain them, while each node still downloads exactly its own config.

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** Known secret strings, fresh per test, in the template and in an approval patch. */
function markers() {
  const m = (what: string) => `${what}-${randomBytes(12).toString('hex')}`;
  return { caKey: m('osCaKey'), token: m('machineToken'), secretbox: m('secretbox'), patch: m('patchSecret'), idp: m('idpRefresh') };
}

function templatesDir(dir: string, k: ReturnType<typeof markers>): string {
  const t = join(dir, 'tpl');
  mkdirSync(t, { recursive: true });
  writeFileSync(
    join(t, 'cp.yaml'),
    stringify({
      version: 'v1alpha1',
      machine: { type: 'controlplane', token: k.token, ca: { crt: 'LS0tLS1CRUdJTg==', key: k.caKey }, network: { hostname: '{{hostname}}' } },
      cluster: { secretboxEncryptionSecret: k.secretbox },
    }),
  );
  return t;
}

interface Gateish {
  url: string;
  ca: string;
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>; // any: tests read arbitrary response shapes
}

/** A node through the device flow, approved by the admin API with a patch; returns its access token. */
async function enroll(g: Gateish, n: number, patchSecret: string): Promise<{ id: string; token: string }> {
  const uuid = `5ea1ed00-0000-4000-8000-${String(n).padStart(12, '0')}`;
  const vars = { uuid, mac: `52:54:00:00:00:${String(n).padStart(2, '0')}`, hostname: `cp-${n}` };
  const res = await request(`${g.url}/device/code`, { method: 'POST', headers: FORM, body: goFormEncode({ client_id: 'talos-node', ...vars }), ca: g.ca });
  assert.equal(res.status, 200, res.body);
  const da = JSON.parse(res.body) as DeviceCodeResponse;
  const ok = await g.admin('POST', '/api/v1/device/approve', { user_code: da.user_code, profile: 'cp', hostname: `cp-${n}`, patches: [{ machine: { env: { PATCH_SECRET: patchSecret } } }] });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  const tok = await request(`${g.url}/token`, {
    method: 'POST',
    headers: FORM,
    body: goFormEncode({ client_id: 'talos-node', ...vars, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: da.device_code }),
    ca: g.ca,
  });
  assert.equal(tok.status, 200, tok.body);
  return { id: uuid, token: (JSON.parse(tok.body) as { access_token: string }).access_token };
}

async function download(g: Gateish, token: string): Promise<{ status: number; body: string }> {
  const res = await request(`${g.url}/config`, { headers: { authorization: `Bearer ${token}` }, ca: g.ca });
  return { status: res.status, body: res.body };
}

function assertNone(where: string, bytes: Buffer | string, secrets: string[]): void {
  const text = Buffer.isBuffer(bytes) ? bytes.toString('latin1') : bytes;
  for (const s of secrets) assert.ok(!text.includes(s), `${where} contains ${s}`);
}

describe('cluster secrets at rest', () => {
  for (const backend of BACKENDS) {
    test(`${backend}: rendered control-plane configs, patches and IdP tokens never appear in the database or its copies; nodes get exactly their configs`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'talos-gate-at-rest-'));
      const k = markers();
      const g: TestGate = await startTestGate({ templates_dir: templatesDir(dir, k), profiles: { cp: { template: 'cp.yaml', patches: [] } } }, { backend });
      try {
        const nodes = [];
        for (let n = 1; n <= 3; n++) nodes.push(await enroll(g, n, k.patch));
        for (const [i, node] of nodes.entries()) {
          const got = await download(g, node.token);
          assert.equal(got.status, 200, got.body);
          for (const s of [k.caKey, k.token, k.secretbox, k.patch]) assert.ok(got.body.includes(s), `the node's config has ${s}`);
          assert.match(got.body, new RegExp(`hostname: cp-${i + 1}\\n`));
          const stored = await g.admin('GET', `/api/v1/nodes/${node.id}/config`);
          assert.equal(stored.json, got.body, 'exactly the config rendered at approval');
          assert.equal((await download(g, node.token)).body, got.body, 'the same bytes again');
        }
        // an operator login and a web session holding the IdP's refresh token (written as the services do)
        const storage = g.gate.storage;
        await storage.createOperatorGrant({ id: 'grant-1', clientId: 'talos-gate-cli', sub: 'ada', email: null, claims: {}, idpRefreshToken: k.idp, createdAt: Date.now(), refreshedAt: null, expiresAt: Date.now() + 3_600_000, revokedAt: null, revokedReason: null });
        await storage.createWebSession({ idHash: 'session-1', createdAt: Date.now(), lastSeenAt: Date.now(), expiresAt: Date.now() + 3_600_000, login: null, sub: 'ada', email: null, name: null, claims: null, isAdmin: true, signedInAt: Date.now(), idpRefreshToken: k.idp });
        assert.equal((await storage.getOperatorGrant('grant-1'))?.idpRefreshToken, k.idp);
        assert.equal((await storage.getWebSession('session-1'))?.idpRefreshToken, k.idp);
        // the gate's own keys in the database: the gate-token signing keys (both backends) and, with
        // PostgreSQL, the cookie secret, admin token and self-signed TLS keys every instance shares
        const keys = await storage.listSigningKeys();
        assert.ok(keys.length > 0, 'a signing key is in the database');
        const shared =
          backend === 'postgres'
            ? [
                (await storage.instanceSecret('cookie-secret', Buffer.from('unused'), 0)).value.toString('utf8'),
                // a line of the CA's private key PEM
                (JSON.parse((await storage.instanceSecret('tls-ca', Buffer.from('unused'), 0)).value.toString('utf8')) as { key: string }).key.split('\n')[1] as string,
              ]
            : [];
        if (backend === 'postgres') assert.ok(shared.every((v) => v !== 'unused' && v.length >= 32), 'the shared secrets are there');
        const secrets = [k.caKey, k.token, k.secretbox, k.patch, k.idp, ...keys.map((key) => key.privateKey.toString('base64')), ...shared];
        const rawKeys = keys.map((key) => key.privateKey);
        const assertNoKey = (where: string, bytes: Buffer) => {
          for (const raw of rawKeys) assert.equal(bytes.indexOf(raw), -1, `${where} holds a signing key's DER`);
        };

        if (backend === 'sqlite') {
          const file = join(g.gate.config.data_dir, 'talos-gate.db');
          assert.ok(existsSync(`${file}-wal`), 'the WAL is there to be read');
          assertNone('the SQLite file', readFileSync(file), secrets);
          assertNone('the SQLite WAL', readFileSync(`${file}-wal`), secrets);
          assertNoKey('the SQLite file', readFileSync(file));
          assertNoKey('the SQLite WAL', readFileSync(`${file}-wal`));
          // a copy by `talos-gate db backup` while the gate runs, its WAL folded in
          const copy = join(dir, 'backup.db');
          const backup = runCli(['db', 'backup', '--to', copy, '--config', g.configFile]);
          assert.equal(await backup.exit, 0, backup.stderr());
          assertNone('a db backup copy', readFileSync(copy), secrets);
          assertNoKey('a db backup copy', readFileSync(copy));
          const rows = new Database(copy, { readonly: true }).prepare('SELECT COUNT(*) AS n FROM nodes WHERE config IS NOT NULL').get() as { n: number };
          assert.equal(rows.n, 3, 'the backup does hold the configs, sealed');
        } else {
          const url = g.gate.config.database.url as string;
          const bin = execFileSync('bash', ['-c', 'ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1']).toString().trim();
          const dump = execFileSync(join(bin, 'pg_dump'), ['--no-owner', '-d', url], { maxBuffer: 256 * 1024 * 1024 });
          assert.match(dump.toString(), /COPY public\.nodes /, 'the dump holds the nodes table');
          assert.match(dump.toString(), /sealed:1:/, 'with sealed values');
          assertNone('pg_dump', dump, secrets);
          assertNoKey('pg_dump', dump);
        }
      } finally {
        await g.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test('tampering: a sealed config moved to another row, or one bit flipped, is refused and never served', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'talos-gate-tamper-'));
    const k = markers();
    const g = await startTestGate({ templates_dir: templatesDir(dir, k), profiles: { cp: { template: 'cp.yaml', patches: [] } } });
    try {
      const a = await enroll(g, 1, k.patch);
      const b = await enroll(g, 2, k.patch);
      const good = await download(g, a.token);
      assert.equal(good.status, 200);
      const db = new Database(join(g.gate.config.data_dir, 'talos-gate.db'));
      const configOf = (id: string) => (db.prepare('SELECT config FROM nodes WHERE id = ?').get(id) as { config: string }).config;
      const original = { a: configOf(a.id), b: configOf(b.id) };

      // A's ciphertext into B's row: B's token would fetch A's config
      db.prepare('UPDATE nodes SET config = ? WHERE id = ?').run(original.a, b.id);
      const moved = await download(g, b.token);
      assert.equal(moved.status, 500);
      assert.equal(JSON.parse(moved.body).error, 'server_error');
      assert.match(JSON.parse(moved.body).error_description, /cannot be opened with its system secrets, so it is not served/);
      assertNone('the refusal', moved.body, [k.caKey, k.token, 'hostname']);
      assert.equal((await g.admin('GET', `/api/v1/nodes/${b.id}/config`)).status, 500, 'the admin API does not serve it either');
      db.prepare('UPDATE nodes SET config = ? WHERE id = ?').run(original.b, b.id);
      assert.equal((await download(g, b.token)).status, 200, 'put back, it opens again');

      // one bit of A's ciphertext flipped
      const head = original.a.slice(0, original.a.lastIndexOf(':') + 1);
      const body = Buffer.from(original.a.slice(head.length), 'base64url');
      body[40] = (body[40] as number) ^ 0x01;
      db.prepare('UPDATE nodes SET config = ? WHERE id = ?').run(head + body.toString('base64url'), a.id);
      const flipped = await download(g, a.token);
      assert.equal(flipped.status, 500);
      assertNone('the refusal', flipped.body, [k.caKey, k.token]);

      // a plaintext config put in by hand is not served either
      db.prepare('UPDATE nodes SET config = ? WHERE id = ?').run('version: v1alpha1\nmachine:\n  token: forged\n', a.id);
      const forged = await download(g, a.token);
      assert.equal(forged.status, 500);
      assert.ok(!forged.body.includes('forged'));
      db.close();
    } finally {
      await g.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('rotation: add a secret, db reencrypt (online), drop the old one, restart: everything reads; the old one missing too early is refused naming the rows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'talos-gate-rotate-'));
    const k = markers();
    const adminToken = randomBytes(24).toString('hex');
    const tpl = templatesDir(dir, k);
    const configFile = join(dir, 'gate.yaml');
    // a new port for each start: a keep-alive socket of the client to the last gate is never reused
    const writeConfig = async (system: string[]) =>
      writeFileSync(
        configFile,
        stringify({ listen: `127.0.0.1:${await freePort()}`, data_dir: join(dir, 'data'), admin_token: adminToken, log_level: 'silent', audit_log: 'off', secrets: { system }, templates_dir: tpl, profiles: { cp: { template: 'cp.yaml', patches: [] } } }),
      );
    const asGate = (gate: RunningGate): Gateish => ({
      url: gate.url,
      ca: gate.tls?.caPem ?? '',
      admin: async (method, path, body) => {
        const res = await request(`${gate.url}${path}`, { method, headers: { authorization: `Bearer ${adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}), ca: gate.tls?.caPem ?? '' });
        return { status: res.status, json: String(res.headers['content-type']).includes('json') ? JSON.parse(res.body) : res.body };
      },
    });
    const [oldSecret, newSecret] = [newSystemSecret(), newSystemSecret()];
    try {
      await writeConfig([oldSecret]);
      let gate = await startGate(configFile, {});
      const nodes = [await enroll(asGate(gate), 1, k.patch), await enroll(asGate(gate), 2, k.patch)];
      const configs: string[] = [];
      for (const n of nodes) configs.push((await download(asGate(gate), n.token)).body);
      await gate.close();

      // the new secret alone, before re-encryption: the gate does not start, and says which rows and why
      await writeConfig([newSecret]);
      await assert.rejects(
        () => startGate(configFile, {}),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.key === 'secrets.system' &&
          /nodes\.config: 2 value\(s\) sealed with a system secret not in secrets\.system \(key id [0-9a-f]{16}; rows 5ea1ed00-0000-4000-8000-000000000001, 5ea1ed00-0000-4000-8000-000000000002\)/.test(e.message) &&
          /nodes\.patches: 2 value/.test(e.message),
      );

      // new first, old after: everything reads; re-encrypt while the gate runs
      await writeConfig([newSecret, oldSecret]);
      gate = await startGate(configFile, {});
      for (const [i, n] of nodes.entries()) assert.equal((await download(asGate(gate), n.token)).body, configs[i]);
      const run = runCli(['db', 'reencrypt', '--config', configFile, '--batch', '1']);
      assert.equal(await run.exit, 0, run.stderr());
      assert.match(run.stdout(), /^nodes\.config: 2 scanned, 0 already current, 2 re-sealed, 0 plaintext sealed, 0 changed meanwhile, 0 unreadable$/m);
      assert.match(run.stdout(), /^nodes\.patches: \d+ scanned, 0 already current, \d+ re-sealed/m);
      const again = runCli(['db', 'reencrypt', '--config', configFile]);
      assert.equal(await again.exit, 0, again.stderr());
      assert.match(again.stdout(), /^nodes\.config: 2 scanned, 2 already current, 0 re-sealed/m, 'resumable: a second run has nothing left to do');
      await gate.close();

      // the old secret dropped: restart, everything reads
      await writeConfig([newSecret]);
      gate = await startGate(configFile, {});
      for (const [i, n] of nodes.entries()) assert.equal((await download(asGate(gate), n.token)).body, configs[i]);
      await gate.close();

      // plaintext from before sealing (an upgraded gate's database): refused at start, sealed by db reencrypt
      const db = new Database(join(dir, 'data', 'talos-gate.db'));
      db.prepare('UPDATE nodes SET config = ? WHERE id = ?').run(configs[0], nodes[0]?.id);
      db.close();
      await assert.rejects(
        () => startGate(configFile, {}),
        (e: unknown) => e instanceof ConfigError && /nodes\.config: 1 value\(s\) in plaintext, not sealed \(rows 5ea1ed00-0000-4000-8000-000000000001\): .*talos-gate db reencrypt/.test(e.message),
      );
      const seal = runCli(['db', 'reencrypt', '--config', configFile]);
      assert.equal(await seal.exit, 0, seal.stderr());
      assert.match(seal.stdout(), /^nodes\.config: 2 scanned, 1 already current, 0 re-sealed, 1 plaintext sealed/m);
      gate = await startGate(configFile, {});
      assert.equal((await download(asGate(gate), (nodes[0] as { token: string }).token)).body, configs[0]);
      await gate.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
