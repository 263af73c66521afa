import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { runCli } from '../helpers/cli.js';
import { bootNode } from '../helpers/boot-node.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';

// Issue 13: the CLI's bulk decisions and inventory import, as a real process against a real gate.

describe('talos-gate nodes approve | deny | import', () => {
  let g: TestGate;
  let caFile: string;
  before(async () => {
    g = await startTestGate();
    caFile = join(g.dir, 'ca.pem');
    writeFileSync(caFile, g.ca);
  });
  after(() => g.close());

  const cli = async (args: string[]) => {
    const run = runCli([...args, '--server', g.url, '--server-ca', caFile], { env: { TALOS_GATE_ADMIN_TOKEN: g.adminToken } });
    return { code: await run.exit, stdout: run.stdout(), stderr: run.stderr() };
  };

  test('--all-pending --match approves the matching waiting machines, each with its own config; others keep waiting', async () => {
    const rack = ['52:54:00:50:00:01', '52:54:00:50:00:02'].map((mac, i) => bootNode(g, { uuid: `ac000000-0000-4000-8000-00000000000${i}`, mac }));
    const other = bootNode(g, { uuid: 'ac000000-0000-4000-8000-000000000009', mac: '52:54:00:60:00:09' });
    await Promise.all([...rack, other].map((n) => n.da));
    const r = await cli(['nodes', 'approve', '--all-pending', '--match', 'mac=52:54:00:50:*', '--profile', 'worker', '--hostname-template', 'rack-{{mac_suffix}}', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const results = JSON.parse(r.stdout) as { status: string; node: { hostname: string } }[];
    assert.deepEqual(results.map((x) => x.status), ['approved', 'approved']);
    const configs = await Promise.all(rack.map((n) => n.result));
    assert.deepEqual(configs.map((c) => parse(c.config).machine.network.hostname).sort(), ['rack-500001', 'rack-500002']);
    const waiting = await g.admin('GET', '/api/v1/nodes/ac000000-0000-4000-8000-000000000009');
    assert.equal(waiting.json.state, 'pending', 'the machine that did not match still waits');
    const bad = await cli(['nodes', 'approve', '--all-pending', '--match', 'colour=red', '--profile', 'worker']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /KEY=GLOB/);
  });

  test('codes on the command line: the good ones decided, a bad one reported, exit code 1', async () => {
    const a = bootNode(g, { uuid: 'ad000000-0000-4000-8000-000000000001' });
    const b = bootNode(g, { uuid: 'ad000000-0000-4000-8000-000000000002' });
    const [da, db] = await Promise.all([a.da, b.da]);
    const r = await cli(['nodes', 'deny', da.user_code, 'BCDF-GHJK', db.user_code]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`${da.user_code}\\s+denied\\s+ad000000-0000-4000-8000-000000000001`));
    assert.match(r.stdout, /BCDF-GHJK\s+error\s+-\s+not_found: no pending request has this code/);
    await assert.rejects(a.result, /access_denied/);
    await assert.rejects(b.result, /access_denied/);
  });

  test('import: --dry-run changes nothing, a bad file names its lines and exits 1, a good one registers', async () => {
    const file = join(g.dir, 'inventory.csv');
    writeFileSync(file, 'uuid,mac,profile,hostname\nae000000-0000-4000-8000-000000000001,52:54:00:70:00:01,worker,inv-1\nae000000-0000-4000-8000-000000000002,,nope,inv-2\n');
    const bad = await cli(['nodes', 'import', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:3: unknown profile "nope"`));
    writeFileSync(file, 'uuid,mac,profile,hostname\nae000000-0000-4000-8000-000000000001,52:54:00:70:00:01,worker,inv-1\n');
    const dry = await cli(['nodes', 'import', file, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /would import 1 rows: 1 new, 0 updated, 0 unchanged \(dry run: nothing changed\)/);
    assert.equal((await g.admin('GET', '/api/v1/nodes/ae000000-0000-4000-8000-000000000001')).status, 404);
    const real = await cli(['nodes', 'import', file]);
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stdout, /imported 1 rows: 1 new/);
    const list = await cli(['nodes', 'list', '--status', 'registered', '-q', '52:54:00:70']);
    assert.match(list.stdout, /ae000000-0000-4000-8000-000000000001\s+registered\s+worker\s+inv-1/);
  });
});
