import assert from 'node:assert/strict';
import { test } from 'node:test';
import { render } from '../../server/notifications/formats.js';
import { buildBody } from '../../server/notifications/payload.js';
import { signBody, verifySignature } from '../../server/notifications/signature.js';
import type { WebhookDelivery } from '../../server/storage/storage.js';

// The bodies of the events that are not about a node (cert_issued, auth_failures), a node event
// whose node was deleted before delivery, and the signature's form.

const row = (over: Partial<WebhookDelivery>): WebhookDelivery => ({
  id: 1, webhook: 'k', event: 'cert_issued', auditId: 42, at: Date.UTC(2026, 0, 2, 3, 4, 30), actor: null, subject: 'sub-1', ip: '198.51.100.9',
  detail: {}, status: 'pending', attempts: 1, nextAt: 0, lastError: null, ...over,
});

test('cert_issued: who got which certificate', () => {
  const b = buildBody(row({ detail: { serial: 'ab12', fingerprint: 'ff00', common_name: 'ops@example.com', roles: ['os:admin'], expires_at: '2026-01-02T03:09:30.000Z', signer: 'ca' } }), 'https://gate', 10);
  assert.deepEqual(b, {
    event: 'cert_issued', at: '2026-01-02T03:04:30.000Z', id: 42, actor: null, dashboard_url: 'https://gate/',
    certificate: { subject: 'sub-1', serial: 'ab12', fingerprint: 'ff00', common_name: 'ops@example.com', roles: ['os:admin'], expires_at: '2026-01-02T03:09:30.000Z', client_ip: '198.51.100.9' },
  });
  assert.equal(JSON.parse(render('slack', b)).text, '*Talos client certificate issued*\nFor ops@example.com (os:admin) from 198.51.100.9, until 2026-01-02T03:09:30.000Z\n<https://gate/|Open talos-gate>');
});

test('auth_failures: the minute, the burst, the last failure', () => {
  const b = buildBody(row({ event: 'auth_failures', subject: null, detail: { reason: 'invalid_token', detail: 'bad <sig> & more' } }), 'https://gate', 10);
  assert.deepEqual(b.auth_failures, { window_start: '2026-01-02T03:04:00.000Z', window_seconds: 60, count: 10, last: { ip: '198.51.100.9', subject: null, reason: 'invalid_token' } });
  assert.equal(JSON.parse(render('slack', buildBody(row({ event: 'auth_failures', detail: { reason: 'a <b> & c' } }), 'https://gate', 3))).text.split('\n')[1], 'At least 3 refused in the minute from 2026-01-02T03:04:00.000Z; the last from 198.51.100.9: a &lt;b&gt; &amp; c');
});

test('a node forgotten before delivery is told of with what the audit row holds', () => {
  const b = buildBody(row({ event: 'node_waiting', subject: 'n1', detail: { user_code: 'BCDF-GHJK', variables: { uuid: 'U1', mac: '${mac}', serial: 'S1', hostname: 'h1' } } }), 'https://gate', 10, { node: undefined, newestRequest: undefined });
  assert.deepEqual(b.node, { id: 'n1', uuid: 'U1', mac: null, serial: 'S1', hostname: 'h1', source_ip: '198.51.100.9', status: null });
  assert.equal(b.confirm_url, 'https://gate/device?user_code=BCDF-GHJK');
});

test('the signature is sha256=<hex HMAC-SHA256 of the body>', () => {
  // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
  assert.equal(signBody('Jefe', 'what do ya want for nothing?'), 'sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
  assert.ok(verifySignature('Jefe', 'what do ya want for nothing?', 'sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'));
  assert.ok(!verifySignature('Jefe', 'what do ya want for nothing!', 'sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'));
  assert.ok(!verifySignature('Jefe', 'x', undefined));
});
