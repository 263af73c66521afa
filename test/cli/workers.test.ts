import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { request } from '../../cli/http.js';
import { TalosNode, talosConfigUrl } from '../../cli/talos-node.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/gate.js';

test('workers: 2 serves from two processes on one port and one database, and stops on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-workers-'));
  const port = await freePort();
  const file = join(dir, 'gate.yaml');
  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(file, stringify({ listen: `127.0.0.1:${port}`, data_dir: join(dir, 'data'), admin_token: adminToken, secrets: { system: [randomBytes(32).toString('hex')] }, workers: 2, log_level: 'warn', audit_log: 'off', device: { interval: '1s' } }));
  const serve = runCli(['serve', '--config', file]);
  try {
    await serve.waitFor(/with 2 workers/);
    const ca = readFileSync(join(dir, 'data', 'tls', 'ca.crt'), 'utf8');
    const url = `https://127.0.0.1:${port}`;
    const pids = new Set<number>();
    for (let i = 0; i < 20 && pids.size < 2; i++) {
      const agent = new Agent({ keepAlive: false, ca }); // a new connection each time: the cluster spreads connections
      pids.add((JSON.parse((await request(`${url}/healthz`, { ca, agent })).body) as { pid: number }).pid);
    }
    assert.equal(pids.size, 2, 'two worker processes answer');

    // a node's polls and the admin's approval land on different workers and still meet in SQLite
    const vars = { uuid: 'workers-node-1', mac: '52:54:00:00:99:01' };
    let code = '';
    const node = new TalosNode({ configUrl: talosConfigUrl(url, vars), clientId: 'talos-node', variables: vars, ca, onDeviceCode: (d) => (code = d.user_code) });
    const run = node.run();
    while (!code) await new Promise((r) => setTimeout(r, 20));
    const approved = await request(`${url}/api/v1/device/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user_code: code, profile: 'worker' }),
      ca,
    });
    assert.equal(approved.status, 200, approved.body);
    assert.match((await run).config, /type: worker/);
  } finally {
    serve.child.kill('SIGTERM');
  }
  assert.equal(await serve.exit, 0, serve.stderr());
});
