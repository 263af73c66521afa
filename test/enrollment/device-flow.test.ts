import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { goFormEncode, request } from '../../cli/http.js';
import { OAuthFlowError, talosConfigUrl, type DeviceCodeResponse } from '../../cli/talos-node.js';
import { bootNode } from '../helpers/boot-node.js';
import { BACKENDS, startTestGate, type TestGate } from '../helpers/gate.js';

// The whole enrollment flow against a real gate on a real port over TLS, driven by a client that
// sends exactly what Talos sends (golang.org/x/oauth2: Basic-then-body twins, variables repeated in
// every poll, client_secret as a form field, the talos.config query string on every endpoint).
// On both storage backends: SQLite in data_dir, and PostgreSQL (database.url).

for (const backend of BACKENDS) describe(`node enrollment over the device flow (${backend})`, () => {
  let g: TestGate;
  before(async () => {
    g = await startTestGate({
      node_clients: [{ client_id: 'talos-node' }, { client_id: 'talos-lab', client_secret: 'lab-secret-value' }],
    }, { backend });
  });
  after(() => g.close());

  test('two nodes, two profiles: each gets its own config; a token cannot fetch another node', async () => {
    const a = bootNode(g, { uuid: 'AAAAAAAA-0000-4000-8000-000000000001', mac: '52:54:00:00:00:a1', serial: 'SN-A' });
    const b = bootNode(g, { uuid: 'bbbbbbbb-0000-4000-8000-000000000002', mac: '52:54:00:00:00:b2', hostname: '${hostname}' });
    const [daA] = await Promise.all([a.da, b.da]);
    assert.match(daA.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    assert.equal(daA.verification_uri, `${g.gate.config.public_url}/device`);
    assert.equal(daA.verification_uri_complete, `${g.gate.config.public_url}/device?user_code=${daA.user_code}`);
    assert.ok(daA.device_code.length >= 43, 'device code carries at least 256 bits');
    assert.equal(daA.interval, 1);

    const listed = await g.admin('GET', '/api/v1/nodes?status=pending');
    assert.equal(listed.status, 200);
    const nodeA = listed.json.nodes.find((n: { id: string }) => n.id === 'aaaaaaaa-0000-4000-8000-000000000001');
    assert.ok(nodeA, 'node A is listed under its lower-cased uuid');
    assert.equal(nodeA.variables.uuid, 'AAAAAAAA-0000-4000-8000-000000000001', 'variables are stored as they came');
    assert.equal(nodeA.pending[0].user_code, daA.user_code);
    assert.equal(nodeA.source_ip, '127.0.0.1');

    // let both nodes poll a few intervals before approval
    await new Promise((r) => setTimeout(r, 2500));
    const approveA = await g.admin('POST', '/api/v1/device/approve', { user_code: daA.user_code.toLowerCase().replace('-', ' '), profile: 'controlplane', hostname: 'cp-1' });
    assert.equal(approveA.status, 200, JSON.stringify(approveA.json));
    const approveB = await g.admin('POST', `/api/v1/nodes/bbbbbbbb-0000-4000-8000-000000000002/approve`, { profile: 'worker' });
    assert.equal(approveB.status, 200, JSON.stringify(approveB.json));
    assert.equal(approveB.json.hostname, 'talos-0000b2', 'literal ${hostname} is not used as a hostname');

    const [ra, rb] = await Promise.all([a.result, b.result]);
    const cfgA = parse(ra.config);
    const cfgB = parse(rb.config);
    assert.equal(cfgA.machine.type, 'controlplane');
    assert.equal(cfgA.machine.network.hostname, 'cp-1');
    assert.equal(cfgA.machine.nodeLabels['talos-gate.io/uuid'], 'aaaaaaaa-0000-4000-8000-000000000001');
    assert.deepEqual(cfgA.machine.time.servers, ['time.cloudflare.com'], 'profile patch applied');
    assert.equal(cfgB.machine.type, 'worker');
    assert.equal(cfgB.machine.network.hostname, 'talos-0000b2');

    for (const n of [a.node, b.node]) {
      assert.equal(n.stats.slowDowns, 0, 'a node polling at the interval never gets slow_down');
      assert.equal(n.stats.errorsSeen.slow_down ?? 0, 0);
      assert.ok(n.stats.basicRequests >= 3, 'polled several times before approval');
      assert.equal(n.stats.tokenRequests, n.stats.basicRequests * 2 - 1, 'every failed poll was repeated as a body-credentials twin');
    }

    // A's token asking with B's uuid or mac is refused; A's own URL works; B's token gets B's config.
    const asB = await request(talosConfigUrl(g.url, { uuid: 'bbbbbbbb-0000-4000-8000-000000000002', mac: '52:54:00:00:00:b2' }), {
      headers: { authorization: `Bearer ${ra.token}` },
      ca: g.ca,
    });
    assert.equal(asB.status, 403);
    assert.equal(JSON.parse(asB.body).error, 'forbidden');
    const bareA = await request(`${g.url}/config`, { headers: { authorization: `Bearer ${ra.token}` }, ca: g.ca });
    assert.equal(bareA.status, 200);
    assert.equal(parse(bareA.body).machine.network.hostname, 'cp-1', 'without a query the token still decides whose config');

    const shown = await g.admin('GET', '/api/v1/nodes/aaaaaaaa-0000-4000-8000-000000000001');
    assert.equal(shown.json.status, 'approved');
    assert.equal(shown.json.config_downloads, 2);
    assert.equal(shown.json.decided_by, 'admin-token');
  });

  test('deny ends the flow with access_denied', async () => {
    const c = bootNode(g, { uuid: 'cccccccc-0000-4000-8000-000000000003', mac: '52:54:00:00:00:c3' });
    await c.da;
    const denied = await g.admin('POST', '/api/v1/nodes/cccccccc-0000-4000-8000-000000000003/deny');
    assert.equal(denied.status, 200);
    await assert.rejects(c.result, (e: unknown) => e instanceof OAuthFlowError && e.code === 'access_denied');
    // a denied node stays denied when it asks again
    const again = bootNode(g, { uuid: 'cccccccc-0000-4000-8000-000000000003', mac: '52:54:00:00:00:c3' });
    await assert.rejects(again.result, (e: unknown) => e instanceof OAuthFlowError && e.code === 'access_denied');
    // forgetting the node undoes the denial: it asks afresh and can be approved
    assert.equal((await g.admin('DELETE', '/api/v1/nodes/cccccccc-0000-4000-8000-000000000003')).status, 204);
    const fresh = bootNode(g, { uuid: 'cccccccc-0000-4000-8000-000000000003', mac: '52:54:00:00:00:c3' });
    const da = await fresh.da;
    assert.equal((await g.admin('POST', '/api/v1/device/approve', { user_code: da.user_code, profile: 'worker' })).status, 200);
    await fresh.result;
  });

  test('a client with a secret sends it as a form field; without it, invalid_client', async () => {
    const ok = bootNode(g, { uuid: 'dddddddd-0000-4000-8000-000000000004', mac: '52:54:00:00:00:d4' }, { clientId: 'talos-lab', clientSecret: 'lab-secret-value' });
    const da = await ok.da;
    await g.admin('POST', '/api/v1/device/approve', { user_code: da.user_code, profile: 'worker' });
    const r = await ok.result;
    assert.equal(parse(r.config).machine.type, 'worker');

    const bad = bootNode(g, { uuid: 'eeeeeeee-0000-4000-8000-000000000005', mac: '52:54:00:00:00:e5' }, { clientId: 'talos-lab' });
    await assert.rejects(bad.result, (e: unknown) => e instanceof OAuthFlowError && e.code === 'invalid_client' && e.status === 401);
  });

  test('a device code yields one token; revoking the node stops its downloads', async () => {
    const vars = { uuid: 'ffffffff-0000-4000-8000-000000000006', mac: '52:54:00:00:00:f6' };
    const form = { client_id: 'talos-node', ...vars };
    const res = await request(`${g.url}/device/code?uuid=${vars.uuid}&mac=ignored`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: goFormEncode(form),
      ca: g.ca,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['cache-control'], 'no-store');
    const da = JSON.parse(res.body) as DeviceCodeResponse;
    await g.admin('POST', '/api/v1/device/approve', { user_code: da.user_code, profile: 'worker' });
    const poll = () =>
      request(`${g.url}/token?uuid=${vars.uuid}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: goFormEncode({ ...form, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: da.device_code }),
        ca: g.ca,
      });
    const [first, second] = await Promise.all([poll(), poll()]);
    const ok = [first, second].filter((r) => r.status === 200);
    const refused = [first, second].filter((r) => r.status === 400);
    assert.equal(ok.length, 1, 'exactly one of two simultaneous redemptions succeeds');
    assert.equal(JSON.parse(refused[0]?.body ?? '{}').error, 'invalid_grant');
    const token = JSON.parse(ok[0]?.body ?? '{}') as { access_token: string; token_type: string; expires_in: number };
    assert.equal(token.token_type, 'Bearer');
    assert.equal(token.expires_in, 4 * 3600);

    const url = talosConfigUrl(g.url, vars);
    assert.equal((await request(url, { headers: { authorization: `Bearer ${token.access_token}` }, ca: g.ca })).status, 200);
    assert.equal((await g.admin('POST', `/api/v1/nodes/${vars.uuid}/revoke`)).status, 200);
    const after = await request(url, { headers: { authorization: `Bearer ${token.access_token}` }, ca: g.ca });
    assert.equal(after.status, 401);
    assert.equal(JSON.parse(after.body).error, 'invalid_token');
    assert.equal((await request(url, { ca: g.ca })).status, 401, 'no token, no config');
  });

  test('a pre-registered auto-approve node boots without a click', async () => {
    const reg = await g.admin('POST', '/api/v1/nodes', {
      mac: '52:54:00:00:01:01',
      profile: 'worker',
      hostname: 'rack1-w1',
      auto_approve: true,
      patches: [{ machine: { install: { disk: '/dev/nvme0n1' } } }],
    });
    assert.equal(reg.status, 201, JSON.stringify(reg.json));
    const n = bootNode(g, { uuid: '01010101-0000-4000-8000-000000000007', mac: '52:54:00:00:01:01' });
    const { config } = await n.result;
    const cfg = parse(config);
    assert.equal(cfg.machine.network.hostname, 'rack1-w1');
    assert.equal(cfg.machine.install.disk, '/dev/nvme0n1');
    const shown = await g.admin('GET', '/api/v1/nodes/52:54:00:00:01:01');
    assert.equal(shown.json.uuid, '01010101-0000-4000-8000-000000000007', 'the mac-registered node learned its uuid');
  });

  test('a node that polls faster than the interval gets slow_down, and the interval grows', async () => {
    const form = { client_id: 'talos-node', uuid: '02020202-0000-4000-8000-000000000008', mac: '52:54:00:00:02:02' };
    const da = JSON.parse(
      (
        await request(`${g.url}/device/code`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: goFormEncode(form),
          ca: g.ca,
        })
      ).body,
    ) as DeviceCodeResponse;
    const poll = async () =>
      JSON.parse(
        (
          await request(`${g.url}/token`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: goFormEncode({ ...form, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: da.device_code }),
            ca: g.ca,
          })
        ).body,
      ).error as string;
    assert.equal(await poll(), 'authorization_pending');
    assert.equal(await poll(), 'authorization_pending', 'one early poll is forgiven');
    assert.equal(await poll(), 'slow_down', 'polling on at once is too fast');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal(await poll(), 'slow_down', 'after slow_down the interval is 6 s, so 1 s later is still too fast');
  });
});
