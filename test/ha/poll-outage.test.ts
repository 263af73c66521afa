import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from '../../cli/http.js';
import { bootNode } from '../helpers/boot-node.js';
import { startTestGate } from '../helpers/gate.js';
import { startTcpProxy } from '../helpers/ha-proxy.js';
import { pollNodeToken } from '../helpers/node-poll.js';
import { createTestDatabase, testServerUrl } from '../helpers/postgres.js';

// The database away for a few seconds (a restart, a failover) while a node polls: every poll answers
// authorization_pending, which keeps Talos' client polling (a 503 would end its attempt; see
// EnrollmentService.pollToken), and once the database is back the node is approved and downloads
// its config in the same attempt, with the same code.

testServerUrl();

test('polls during a database outage answer authorization_pending; the node carries on with its code once the database is back', async () => {
  const db = await createTestDatabase();
  const server = new URL(testServerUrl());
  const proxy = await startTcpProxy([{ host: server.hostname, port: Number(server.port || 5432) }]);
  const viaProxy = new URL(db.url);
  viaProxy.port = String(proxy.port);
  const g = await startTestGate({ database: { url: viaProxy.href } });
  try {
    const vars = { uuid: 'outage-0000-4000-8000-000000000001', mac: '52:54:00:0a:0b:0c' };
    const n = bootNode(g, vars, { configAttempts: 3 });
    const da = await n.da;
    await sleep(1_200); // a poll or so with the database there

    await proxy.cut();
    for (const basic of [true, false]) {
      const res = await pollNodeToken(g.url, da.device_code, { basic, ca: g.ca });
      assert.equal(res.status, 400, res.body);
      const body = JSON.parse(res.body) as { error: string; error_description: string };
      assert.equal(body.error, 'authorization_pending');
      assert.match(body.error_description, /database/);
    }
    const ready = await request(`${g.url}/readyz`, { ca: g.ca });
    assert.equal(ready.status, 503, 'the balancer still sees the instance unready');
    await sleep(3_000); // the node's own polls meanwhile, at its interval

    await proxy.restore();
    const approved = await g.admin('POST', '/api/v1/device/approve', { user_code: da.user_code, profile: 'worker' });
    assert.equal(approved.status, 200, JSON.stringify(approved.json));
    const { config } = await n.result;
    assert.match(config, /machine:/);
    assert.equal(n.node.stats.errorsSeen.temporarily_unavailable, undefined);
    assert.ok((n.node.stats.errorsSeen.authorization_pending ?? 0) >= 3, JSON.stringify(n.node.stats));
  } finally {
    await g.close();
    await proxy.close();
    await db.drop();
  }
});
