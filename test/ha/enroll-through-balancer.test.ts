import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { request } from '../../cli/http.js';
import { TalosNode, talosConfigUrl } from '../../cli/talos-node.js';
import { freePort } from '../helpers/gate.js';
import { startInstances } from '../helpers/ha.js';
import { startTcpProxy } from '../helpers/ha-proxy.js';
import { testServerUrl } from '../helpers/postgres.js';

// 200 nodes boot behind a round-robin balancer in front of two gate instances on one PostgreSQL,
// while an admin approves whatever asks; mid-way one instance is SIGKILLed and started again. Each
// node behaves as Talos does: a new connection per request, Basic-then-body twins, and an attempt
// that ends on any error it cannot poll through (a connection reset by the killed instance among
// them), after which the node starts a new attempt. Every node gets its own config, no answer is a
// 5xx, and every approval the admin API acknowledged is still there. Ten more nodes boot once the
// killed instance is back, so that it is seen to serve again, however fast the rack got on without it.

testServerUrl();

const NODES = 200;
/** Nodes that boot once the killed instance is back, so it is seen to serve again however fast the rack finished without it. */
const LATE = 10;
const TOTAL = NODES + LATE;

test(`${NODES} nodes enroll through a round-robin balancer over two instances, one killed and restarted mid-way`, { timeout: 120_000 }, async (t) => {
  // the balancer first, on the instances' ports-to-be, so that public_url can name it; plain HTTP,
  // as the balancer passes TCP through
  const ports = [await freePort(), await freePort()];
  const proxy = await startTcpProxy(ports.map((port) => ({ host: '127.0.0.1', port })));
  const lb = `http://127.0.0.1:${proxy.port}`;
  const fleet = await startInstances(2, {
    ports,
    configExtra: { public_url: lb, tls: { mode: 'off' }, audit_log: 'off', device: { interval: '1s', code_ttl: '2m', max_pending_per_ip: 2000 } },
  }).catch(async (e: unknown) => {
    await proxy.close();
    throw e;
  });
  const db = fleet.database;
  const started = Date.now();
  const fiveHundreds: string[] = [];
  const attemptsEnded: string[] = [];
  const acked = new Map<string, string>(); // user code -> node id, for approvals the admin API answered 200
  const finalCodes = new Map<string, string>(); // node id -> user code of the attempt that got the config
  const configs = new Map<string, string>();
  let stopAdmin = false;
  let handedAtRestart = Number.POSITIVE_INFINITY;
  try {
    const boot = async (i: number) => {
      const hex = i.toString(16).padStart(4, '0');
      const vars = { uuid: `1b000000-0000-4000-8000-00000000${hex}`, mac: `52:54:00:aa:${hex.slice(0, 2)}:${hex.slice(2)}` };
      await sleep(i < NODES ? i * 40 : 0); // a rack powers on over eight seconds
      for (let attempt = 1; ; attempt++) {
        let code = '';
        const node = new TalosNode({
          configUrl: talosConfigUrl(lb, vars),
          clientId: 'talos-node',
          variables: vars,
          // a new connection per request, as Talos makes them
          agent: new Agent({ keepAlive: false }),
          configAttempts: 1,
          onDeviceCode: (d) => (code = d.user_code),
          observe: (endpoint, _ms, status) => {
            if (status >= 500) fiveHundreds.push(`${vars.uuid} ${endpoint} ${status}`);
          },
        });
        try {
          const { config } = await node.run();
          configs.set(vars.uuid, config);
          finalCodes.set(vars.uuid, code);
          return;
        } catch (e) {
          attemptsEnded.push(`${vars.uuid} attempt ${attempt}: ${(e as Error).message.slice(0, 120)}`);
          if (attempt >= 10) throw e;
          await sleep(300);
        }
      }
    };

    const adminLoop = async () => {
      while (!stopAdmin) {
        try {
          const listed = await fleet.admin(lb, 'GET', '/api/v1/nodes?status=pending&limit=1000');
          if (listed.status === 200) {
            for (const n of listed.json.nodes as { id: string; pending: { user_code: string }[] }[]) {
              for (const p of n.pending) {
                if (acked.has(p.user_code) || stopAdmin) continue;
                const res = await fleet.admin(lb, 'POST', '/api/v1/device/approve', { user_code: p.user_code, profile: 'worker' });
                if (res.status === 200) acked.set(p.user_code, n.id);
                else if (res.status >= 500) fiveHundreds.push(`admin approve ${res.status} ${JSON.stringify(res.json)}`);
              }
            }
          } else if (listed.status >= 500) fiveHundreds.push(`admin list ${listed.status}`);
        } catch {
          // a connection the killed instance reset: the admin tries again
        }
        await sleep(200);
      }
    };

    const chaos = async () => {
      while (configs.size < NODES * 0.3) await sleep(50);
      t.diagnostic(`${configs.size} configs downloaded after ${Date.now() - started} ms: SIGKILL instance A`);
      const a = fleet.instances[0];
      assert.ok(a);
      await a.kill();
      await sleep(2_000);
      await a.start();
      handedAtRestart = proxy.handed[0] ?? 0;
      t.diagnostic(`instance A back after ${Date.now() - started} ms (${configs.size} configs)`);
    };

    const admin = adminLoop();
    // the late ones boot once A is back: round robin hands A some of their connections
    const late = chaos().then(() => Promise.all(Array.from({ length: LATE }, (_, i) => boot(NODES + i))));
    const results = await Promise.allSettled([late, ...Array.from({ length: NODES }, (_, i) => boot(i))]);
    stopAdmin = true;
    await admin;
    const failed = results.filter((r) => r.status === 'rejected');
    assert.deepEqual(failed, [], 'every node, and the kill and restart, came through');
    assert.ok(handedAtRestart !== Number.POSITIVE_INFINITY, 'A was restarted');
    const reasons = new Map<string, number>();
    for (const a of attemptsEnded) {
      const why = a.replace(/^.* attempt \d+: /, "");
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
    }
    t.diagnostic(`attempts ended by: ${JSON.stringify([...reasons])}`);
    t.diagnostic(`${TOTAL} nodes enrolled in ${Date.now() - started} ms; ${attemptsEnded.length} attempts ended and began anew; connections per instance: ${proxy.handed.join(', ')}`);

    assert.equal(configs.size, TOTAL);
    for (const [uuid, config] of configs) {
      const i = Number.parseInt(uuid.slice(-4), 16);
      const hex = i.toString(16).padStart(4, '0');
      assert.match(config, new RegExp(`hostname: "?talos-aa${hex}"?`), `${uuid} got its own config`);
    }
    assert.deepEqual(fiveHundreds, [], 'no answer was a 5xx');
    assert.ok((proxy.handed[1] ?? 0) > 0, 'B served');
    assert.ok((proxy.handed[0] ?? 0) > handedAtRestart, 'A served again once restarted');

    // nothing acknowledged is lost: every approval the admin API answered is in the database, and
    // each node's last attempt redeemed its code
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const rows = (await c.query<{ user_code: string; status: string }>('SELECT user_code, status FROM device_requests')).rows;
      const status = new Map(rows.map((r) => [r.user_code, r.status]));
      for (const [code, nodeId] of acked) {
        const s = status.get(code.replace('-', ''));
        assert.ok(s === 'approved' || s === 'consumed', `approved ${code} (${nodeId}) is ${s}`);
      }
      for (const [uuid, code] of finalCodes) assert.equal(status.get(code.replace('-', '')), 'consumed', `${uuid}'s code ${code}`);
      const tokens = await c.query<{ n: string; nodes: string }>('SELECT COUNT(*) AS n, COUNT(DISTINCT node_id) AS nodes FROM node_tokens');
      assert.equal(Number(tokens.rows[0]?.nodes), TOTAL);
    } finally {
      await c.end();
    }
    // the instance that was killed serves again
    const ready = await request(`${fleet.instances[0]?.url}/readyz`);
    assert.equal(ready.status, 200);
  } finally {
    stopAdmin = true;
    await fleet.close();
    await proxy.close();
  }
});
