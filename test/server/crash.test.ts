import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { request } from '../../cli/http.js';
import { OAuthFlowError, TalosNode, talosConfigUrl } from '../../cli/talos-node.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { freePort } from '../helpers/gate.js';

// SIGKILL in the middle of a 200-node enrollment, then a restart: acknowledged approvals survive,
// no device code yields two tokens, the database is intact, and every node completes.

test('crash safety: SIGKILL during a 200-node enrollment', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-crash-'));
  const port = await freePort();
  const adminToken = randomBytes(24).toString('hex');
  const file = join(dir, 'gate.yaml');
  writeFileSync(file, stringify({ listen: `127.0.0.1:${port}`, data_dir: join(dir, 'data'), admin_token: adminToken, secrets: { system: [randomBytes(32).toString('hex')] }, log_level: 'warn', audit_log: 'off', device: { interval: '1s', max_pending_per_ip: 10_000 } }));
  const url = `https://127.0.0.1:${port}`;
  let gate: CliRun = runCli(['serve', '--config', file]);
  await gate.waitFor(/Try it without hardware/);
  const ca = readFileSync(join(dir, 'data', 'tls', 'ca.crt'), 'utf8');

  const acknowledged = new Map<string, string>(); // user code -> node id, for approvals answered 200
  let running = true;
  const approver = (async () => {
    while (running) {
      try {
        const list = await request(`${url}/api/v1/nodes?status=pending`, { headers: { authorization: `Bearer ${adminToken}` }, ca });
        const pending = (JSON.parse(list.body) as { nodes: { id: string; pending: { user_code: string }[] }[] }).nodes;
        for (const n of pending) {
          for (const p of n.pending) {
            const r = await request(`${url}/api/v1/device/approve`, {
              method: 'POST',
              headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
              body: JSON.stringify({ user_code: p.user_code, profile: 'worker' }),
              ca,
            });
            if (r.status === 200) acknowledged.set(p.user_code, n.id);
          }
        }
      } catch {
        // the gate is down: try again
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  let configs = 0;
  const nodes = Array.from({ length: 200 }, async (_, i) => {
    const vars = { uuid: `crash-node-${i}`, mac: `52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` };
    await new Promise((r) => setTimeout(r, Math.random() * 1000));
    // as Talos does: a flow that fails on the network starts over a little later
    for (let attempt = 0; attempt < 30; attempt++) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
      try {
        await new TalosNode({ configUrl: talosConfigUrl(url, vars), clientId: 'talos-node', variables: vars, ca, agent, configAttempts: 1 }).run();
        configs++;
        return;
      } catch (e) {
        if (e instanceof OAuthFlowError && ['access_denied', 'expired_token', 'invalid_client'].includes(e.code)) throw e;
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        agent.destroy();
      }
    }
    throw new Error(`node ${i} never got its config`);
  });

  // kill the gate when about half the rack has been approved
  for (let waited = 0; acknowledged.size < 100; waited += 20) {
    if (waited > 60_000) throw new Error(`only ${acknowledged.size} approvals in a minute`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const beforeKill = new Map(acknowledged);
  gate.child.kill('SIGKILL');
  await gate.exit;
  gate = runCli(['serve', '--config', file]);
  await gate.waitFor(/Try it without hardware/);

  await Promise.all(nodes);
  running = false;
  await approver;
  gate.child.kill('SIGTERM');
  assert.equal(await gate.exit, 0);
  assert.equal(configs, 200, 'every node completed');

  const db = new Database(join(dir, 'data', 'talos-gate.db'), { readonly: true });
  try {
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    const code = db.prepare('SELECT status, decided_by FROM device_requests WHERE user_code = ?');
    for (const [userCode, nodeId] of beforeKill) {
      const row = code.get(userCode.replace('-', '')) as { status: string; decided_by: string } | undefined;
      assert.ok(row, `acknowledged approval of ${nodeId} (${userCode}) is in the database`);
      assert.ok(['approved', 'consumed'].includes(row.status), `${userCode} is ${row.status}`);
    }
    const doubles = db.prepare('SELECT device_request_id, COUNT(*) AS n FROM node_tokens GROUP BY device_request_id HAVING n > 1').all();
    assert.deepEqual(doubles, [], 'no device code yielded two tokens');
    const consumedWithoutToken = db.prepare("SELECT COUNT(*) AS n FROM device_requests WHERE status = 'consumed' AND id NOT IN (SELECT device_request_id FROM node_tokens)").get() as { n: number };
    assert.equal(consumedWithoutToken.n, 0, 'a used code always has its token: both were written together');
  } finally {
    db.close();
  }
});
