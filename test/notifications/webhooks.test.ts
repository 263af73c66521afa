import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { goFormEncode, request } from '../../cli/http.js';
import type { DeviceCodeResponse } from '../../cli/talos-node.js';
import { startGate } from '../../server/main.js';
import { verifySignature } from '../../server/notifications/signature.js';
import { bootNode } from '../helpers/boot-node.js';
import { BACKENDS, startTestGate, type Backend, type TestGate } from '../helpers/gate.js';
import { WebhookReceiver, type Received } from '../helpers/webhook-receiver.js';

// Webhooks end to end: a real gate on a real port (SQLite file, or a PostgreSQL database), nodes
// enrolling over the device flow, and a node:http receiver that checks what arrives, goes away for a
// while, or hangs.

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const secret = () => randomBytes(32).toString('hex');

function webhookGate(webhooks: unknown[], backend: Backend = 'sqlite', extra: Record<string, unknown> = {}): Promise<TestGate> {
  return startTestGate({ notifications: { webhooks, timeout: '2s', ...extra } }, { backend });
}

/** POST /device/code as a booting node: one node_waiting. */
async function ask(g: TestGate, uuid: string): Promise<{ status: number; ms: number; json: DeviceCodeResponse }> {
  const started = Date.now();
  const res = await request(`${g.url}/device/code`, { method: 'POST', headers: FORM, body: goFormEncode({ client_id: 'talos-node', uuid, mac: '52:54:00:12:34:56', serial: 'SN-42' }), ca: g.ca });
  return { status: res.status, ms: Date.now() - started, json: JSON.parse(res.body) as DeviceCodeResponse };
}

async function metric(g: { url: string; ca: string }, line: RegExp): Promise<number> {
  const res = await request(`${g.url}/metrics`, { ca: g.ca });
  const m = res.body.split('\n').find((l) => line.test(l));
  return m === undefined ? 0 : Number(m.slice(m.lastIndexOf(' ') + 1));
}

function parsed(r: Received, key: string): Record<string, any> { // any: the test reads the documented body's fields
  assert.equal(r.headers['content-type'], 'application/json');
  assert.ok(verifySignature(key, r.body, r.headers['x-talos-gate-signature'] as string | undefined), `signature ${String(r.headers['x-talos-gate-signature'])} checks out`);
  return JSON.parse(r.body) as Record<string, any>; // any: as above
}

for (const backend of BACKENDS) describe(`webhooks (${backend})`, () => {
  const receiver = new WebhookReceiver();
  before(() => receiver.start());
  after(() => receiver.stop());

  test('a node enrolls: node_waiting, node_approved, config_downloaded and node_revoked arrive signed, with the documented body', async () => {
    receiver.received.length = 0;
    const key = secret();
    const g = await webhookGate([{ url: receiver.url, secret: key, events: ['node_waiting', 'node_approved', 'config_downloaded', 'node_revoked'] }], backend);
    try {
      const uuid = 'cccccccc-0000-4000-8000-0000000000c1';
      const vars = { uuid, mac: '52:54:00:00:00:c1', serial: 'SN-C1' };
      const { da, result } = bootNode(g, vars);
      const { user_code } = await da;

      const [waiting] = await receiver.waitFor(1);
      const w = parsed(waiting!, key);
      const confirm = `${g.gate.config.public_url}/device?user_code=${user_code}`;
      assert.deepEqual(w, {
        event: 'node_waiting',
        at: w.at,
        id: w.id,
        actor: null,
        node: { id: uuid, uuid, mac: '52:54:00:00:00:c1', serial: 'SN-C1', hostname: null, source_ip: '127.0.0.1', status: 'pending' },
        user_code,
        confirm_url: confirm,
        dashboard_url: `${g.gate.config.public_url}/`,
      });
      assert.ok(Math.abs(Date.parse(w.at) - Date.now()) < 30_000);
      assert.equal(typeof w.id, 'number');

      const approved = await g.admin('POST', '/api/v1/device/approve', { user_code, profile: 'worker', hostname: 'w-1' });
      assert.equal(approved.status, 200, JSON.stringify(approved.json));
      await result;
      const [, a, c] = await receiver.waitFor(3);
      const ap = parsed(a!, key);
      assert.equal(ap.event, 'node_approved');
      assert.equal(ap.actor, 'admin-token');
      assert.deepEqual(ap.node, { id: uuid, uuid, mac: '52:54:00:00:00:c1', serial: 'SN-C1', hostname: 'w-1', source_ip: '127.0.0.1', status: 'approved' });
      assert.equal(ap.user_code, user_code);
      assert.equal(ap.confirm_url, confirm);
      const cd = parsed(c!, key);
      assert.equal(cd.event, 'config_downloaded');
      assert.equal(cd.node.hostname, 'w-1');
      assert.equal(cd.user_code, user_code, 'the user code of the node\'s newest request');
      assert.ok(cd.id > ap.id && ap.id > w.id, 'ids are the audit events\', in order');

      const revoked = await g.admin('POST', `/api/v1/nodes/${uuid}/revoke`);
      assert.equal(revoked.status, 200, JSON.stringify(revoked.json));
      const r = parsed((await receiver.waitFor(4))[3]!, key);
      assert.equal(r.event, 'node_revoked');
      assert.equal(r.node.status, 'revoked');

      assert.equal(await metric(g, /^talos_gate_webhook_deliveries_total\{result="delivered"\}/), 4);
      assert.equal(await metric(g, /^talos_gate_webhook_delivery_failures_total /), 0);
      assert.equal(await metric(g, /^talos_gate_webhook_outbox_backlog\{state="pending"\}/), 0);
      // an operator's device login is not a node waiting
      const login = await request(`${g.url}/device/code`, { method: 'POST', headers: FORM, body: goFormEncode({ client_id: 'talos-gate-cli' }), ca: g.ca });
      assert.equal(login.status, 200, login.body);
      await waitUntil(async () => (await metric(g, /^talos_gate_webhook_deliveries_total\{result="dropped"\}/)) === 1);
      assert.equal(receiver.received.length, 4);
    } finally {
      await g.close();
    }
  });

  test('stopped with undelivered events, the gate delivers them after it starts again', async () => {
    receiver.received.length = 0;
    receiver.mode = { status: 503 };
    const key = secret();
    const g = await webhookGate([{ url: receiver.url, secret: key, events: ['node_waiting'] }], backend);
    let again: Awaited<ReturnType<typeof startGate>> | undefined;
    try {
      const asked = await ask(g, 'dddddddd-0000-4000-8000-0000000000d1');
      assert.equal(asked.status, 200);
      await waitUntil(async () => (await metric(g, /^talos_gate_webhook_delivery_failures_total /)) >= 1);
      await g.gate.close();
      receiver.mode = { status: 200 };
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(receiver.received.length, 0, 'nothing is sent while the gate is down');
      again = await startGate(g.configFile, {});
      const [got] = await receiver.waitFor(1);
      const body = parsed(got!, key);
      assert.equal(body.event, 'node_waiting');
      assert.equal(body.user_code, asked.json.user_code);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(receiver.received.length, 1, 'delivered once');
    } finally {
      receiver.mode = { status: 204 };
      await again?.close();
      await g.close();
    }
  });
});

describe('webhooks (sqlite): receivers that fail', () => {
  test('a receiver down for a while gets the event once it is back; the failures are counted', async () => {
    const receiver = new WebhookReceiver();
    await receiver.start();
    await receiver.stop(); // its port is known; nothing listens there now
    const key = secret();
    const g = await webhookGate([{ url: receiver.url, secret: key, events: ['node_waiting'] }]);
    try {
      const asked = await ask(g, 'eeeeeeee-0000-4000-8000-0000000000e1');
      await waitUntil(async () => (await metric(g, /^talos_gate_webhook_delivery_failures_total /)) >= 2);
      assert.equal(await metric(g, /^talos_gate_webhook_outbox_backlog\{state="pending"\}/), 1);
      assert.ok((await metric(g, /^talos_gate_webhook_deliveries_total\{result="retried"\}/)) >= 2);
      await receiver.start();
      const [got] = await receiver.waitFor(1, 30_000);
      const body = parsed(got!, key);
      assert.equal(body.user_code, asked.json.user_code);
      assert.equal(await metric(g, /^talos_gate_webhook_outbox_backlog\{state="pending"\}/), 0);
    } finally {
      await g.close();
      await receiver.stop();
    }
  });

  test('a hanging receiver slows no request and no other webhook', async () => {
    const hanging = new WebhookReceiver();
    hanging.mode = 'hang';
    const healthy = new WebhookReceiver();
    await Promise.all([hanging.start(), healthy.start()]);
    const g = await webhookGate([
      { url: hanging.url, events: ['node_waiting'] },
      { url: healthy.url, events: ['node_waiting'] },
    ]);
    try {
      for (let i = 0; i < 6; i++) {
        const asked = await ask(g, `ffffffff-0000-4000-8000-00000000000${i}`);
        assert.equal(asked.status, 200);
        // a delivery waits up to notifications.timeout (2 s) for the hanging receiver; the request does not.
        // The bound sits below those 2 s, with room for a loaded CI machine (single requests there vary ~7x)
        assert.ok(asked.ms < 1800, `POST /device/code took ${asked.ms} ms`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const got = await healthy.waitFor(6, 10_000);
      assert.ok(got.every((r) => r.headers['x-talos-gate-signature'] === undefined), 'no secret: not signed');
      assert.equal(hanging.received.length, 0);
      await waitUntil(async () => (await metric(g, /^talos_gate_webhook_delivery_failures_total /)) >= 1, 10_000);
    } finally {
      await g.close();
      await Promise.all([hanging.stop(), healthy.stop()]);
    }
  });

  test('slack format: a readable message with the link to the code page', async () => {
    const receiver = new WebhookReceiver();
    await receiver.start();
    const g = await webhookGate([{ url: receiver.url, format: 'slack', events: ['node_waiting'] }]);
    try {
      const asked = await ask(g, 'abababab-0000-4000-8000-0000000000ab');
      const [got] = await receiver.waitFor(1);
      const body = JSON.parse(got!.body) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), ['text']);
      assert.equal(
        body.text,
        [
          '*A node is waiting for approval*',
          'Node abababab-0000-4000-8000-0000000000ab (uuid abababab-0000-4000-8000-0000000000ab, mac 52:54:00:12:34:56, serial SN-42) from 127.0.0.1',
          `Code \`${asked.json.user_code}\``,
          `<${g.gate.config.public_url}/device?user_code=${asked.json.user_code}|Approve or deny>`,
        ].join('\n'),
      );
    } finally {
      await g.close();
      await receiver.stop();
    }
  });
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}
