import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { request } from '../../cli/http.js';
import { talosConfigUrl } from '../../cli/talos-node.js';
import { bootNode } from '../helpers/boot-node.js';
import { runCli } from '../helpers/cli.js';
import { startDeviceCodeTraffic } from '../helpers/device-code-traffic.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';

// `talos-gate db backup` of a running gate's SQLite database: taken while nodes keep asking, the
// copy passes integrity_check, holds a state between before and after, and a gate started on it
// serves the enrolled node its config. Refusals name the flag; a PostgreSQL config points to pg_dump.

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-db-backup-'));
const NODE = { uuid: 'cccccccc-0000-4000-8000-00000000000c', mac: '52:54:00:00:00:0c' };

async function backup(args: string[]) {
  const run = runCli(['db', 'backup', ...args]);
  const code = await run.exit;
  return { code, out: run.stdout(), err: run.stderr() };
}

describe('db backup of a running gate', () => {
  let g: TestGate;
  let enrolled: { config: string; token: string };
  let copyGate: TestGate | undefined;

  before(async () => {
    // nodes arrive from one address as fast as they can during the backup: no per-address limit in the way
    g = await startTestGate({ device: { interval: '1s', code_ttl: '2m', max_pending_per_ip: 1_000_000 }, rate_limits: { device_code: 1_000_000 } });
    const { da, result } = bootNode(g, NODE);
    const approved = await g.admin('POST', '/api/v1/device/approve', { user_code: (await da).user_code, profile: 'worker' });
    assert.equal(approved.status, 200, JSON.stringify(approved.json));
    enrolled = await result;
  });
  after(async () => {
    await copyGate?.close();
    await g.close();
  });

  const nodeCount = (file: string) => {
    const db = new Database(file, { readonly: true });
    try {
      return Number(db.prepare('SELECT count(*) FROM nodes').pluck().get());
    } finally {
      db.close();
    }
  };

  test('a copy taken while requests go on opens, passes integrity_check, and serves the node from a gate started on it', async () => {
    const to = join(dir, 'backup.db');
    // nodes keep arriving while the backup runs: each /device/code writes a node, a request, audit
    const traffic = startDeviceCodeTraffic(g, 'dddddddd');
    await traffic.reached(5);
    const before = 1 + traffic.asked;
    const r = await backup(['--to', to, '--config', g.configFile]);
    const duringBackup = traffic.asked;
    await traffic.stop();
    assert.equal(r.code, 0, r.err + r.out);
    assert.ok(duringBackup > 5, 'requests went on during the backup');
    assert.match(r.out, new RegExp(`to +${to.replaceAll('.', '\\.')} \\(\\d+ bytes, schema version \\d+, PRAGMA integrity_check ok\\)`));
    const listed = Number(/^ {2}nodes +(\d+)$/m.exec(r.out)?.[1]);
    assert.ok(listed >= before && listed <= 1 + duringBackup, `the copy holds one state between before (${before}) and after (${1 + duringBackup}): ${listed}`);
    assert.equal(nodeCount(to), listed);
    assert.equal(statSync(to).mode & 0o777, 0o600, 'the copy is as private as the database');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('partial')), [], 'no temporary file left');
    const db = new Database(to, { readonly: true });
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    db.close();

    // a gate on the copy (a new data_dir holding only the backup) serves the node its config
    const dataDir = join(dir, 'restored');
    mkdirSync(dataDir, { mode: 0o700 });
    copyFileSync(to, join(dataDir, 'talos-gate.db'));
    copyGate = await startTestGate({ data_dir: dataDir, secrets: g.gate.config.secrets }); // the same system secret opens the copy's sealed values
    const got = await request(talosConfigUrl(copyGate.url, NODE), { headers: { authorization: `Bearer ${enrolled.token}` }, ca: copyGate.ca });
    assert.equal(got.status, 200, got.body);
    assert.equal(got.body, enrolled.config);
  });

  test('an existing --to is refused without --force, and replaced with it', async () => {
    const to = join(dir, 'exists.db');
    writeFileSync(to, 'keep me');
    const refused = await backup(['--to', to, '--config', g.configFile]);
    assert.equal(refused.code, 2);
    assert.match(refused.err, /^talos-gate: db backup: --to: \S+exists\.db exists: pass --force to replace it$/m);
    const forced = await backup(['--to', to, '--config', g.configFile, '--force']);
    assert.equal(forced.code, 0, forced.err);
    assert.ok(nodeCount(to) >= 1);
  });

  test('a --to in a folder that does not exist is refused', async () => {
    const r = await backup(['--to', join(dir, 'no', 'such', 'folder', 'b.db'), '--config', g.configFile]);
    assert.equal(r.code, 2);
    assert.match(r.err, /--to: folder \S+folder does not exist/);
  });
});

test('db backup refuses a config on PostgreSQL (pointing to pg_dump) and a data_dir without a database', async () => {
  const pgConfig = join(dir, 'pg.yaml');
  writeFileSync(pgConfig, stringify({ data_dir: join(dir, 'pg-data'), database: { url: 'postgres://talos_gate@db.example.com/talos_gate' } }));
  const onPg = await backup(['--to', join(dir, 'pg.db'), '--config', pgConfig]);
  assert.equal(onPg.code, 2);
  assert.match(onPg.err, /db backup: --config: \S+pg\.yaml keeps the gate's state in PostgreSQL \(database\.url\): back it up with PostgreSQL's tools, e\.g\. pg_dump/);
  const empty = join(dir, 'empty.yaml');
  writeFileSync(empty, stringify({ data_dir: join(dir, 'never-ran') }));
  const none = await backup(['--to', join(dir, 'none.db'), '--config', empty]);
  assert.equal(none.code, 2);
  assert.match(none.err, /db backup: --config: the gate's database \S+never-ran\/talos-gate\.db does not exist/);
  assert.equal(existsSync(join(dir, 'none.db')), false);
});
