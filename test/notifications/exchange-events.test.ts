import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from '../../cli/http.js';
import { verifySignature } from '../../server/notifications/signature.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';
import { startIdp } from '../helpers/idp.js';
import { makeTalosCa } from '../helpers/talos-ca.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

// cert_issued and the auth_failures burst through the real /exchange: a real IdP's ID tokens, a
// Talos-style CA, a receiver on a real port.

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-exchange-events-'));

async function exchange(g: TestGate, idToken: string) {
  const res = await request(`${g.url}/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id_token: idToken }), ca: g.ca });
  return res.status;
}

test('cert_issued per certificate; auth_failures once when a minute reaches the burst', async () => {
  const idp = await startIdp({
    users: [{ sub: 'alice', claims: { email: 'alice@example.com', email_verified: true, groups: ['talos-admins'] } }],
    clients: [{ client_id: 'talos-gate', redirect_uris: ['http://127.0.0.1:9/callback'] }],
  });
  const receiver = new WebhookReceiver();
  await receiver.start();
  const ca = makeTalosCa(dir, 'ed25519');
  const secret = randomBytes(32).toString('hex');
  const g = await startTestGate({
    oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' },
    rbac: { rules: [{ claim: 'groups', value: 'talos-admins', roles: ['os:admin'] }] },
    talos: { ca_cert: ca.certPath, ca_key: ca.keyPath },
    notifications: { webhooks: [{ url: receiver.url, secret, events: ['cert_issued', 'auth_failures'] }], auth_failure_burst: 3 },
  });
  try {
    const alice = await idp.login('talos-gate', 'alice');
    assert.equal(await exchange(g, alice.id_token), 200);
    const [issued] = await receiver.waitFor(1);
    assert.ok(verifySignature(secret, issued!.body, issued!.headers['x-talos-gate-signature'] as string));
    const c = JSON.parse(issued!.body);
    assert.equal(c.event, 'cert_issued');
    assert.equal(c.certificate.subject, 'alice');
    assert.equal(c.certificate.common_name, 'alice@example.com');
    assert.deepEqual(c.certificate.roles, ['os:admin']);
    assert.equal(c.certificate.client_ip, '127.0.0.1');
    assert.match(c.certificate.serial, /^[0-9a-f]+$/);

    // a minute boundary between the failures would split them in two windows: start just after one
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 45_000) await new Promise((r) => setTimeout(r, 60_500 - intoMinute));
    for (let i = 0; i < 5; i++) assert.equal(await exchange(g, `${alice.id_token.slice(0, -4)}AAAA`), 401);
    const [, burst] = await receiver.waitFor(2);
    const b = JSON.parse(burst!.body);
    assert.equal(b.event, 'auth_failures');
    assert.equal(b.auth_failures.count, 3);
    assert.equal(b.auth_failures.window_seconds, 60);
    assert.equal(b.auth_failures.last.ip, '127.0.0.1');
    assert.equal(typeof b.auth_failures.last.reason, 'string');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(receiver.received.length, 2, 'the 4th and 5th failure of the minute make no event');
  } finally {
    await g.close();
    await receiver.stop();
    await idp.close();
  }
});
