import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { goFormEncode } from '../../cli/http.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';
import { rawRequest, type RawResponse } from '../helpers/raw-tls.js';

// ip_allowlist decides on the route the router matched, not on the text of the request-target:
// every spelling that reaches a guarded route (percent-encoded, with a trailing slash, in absolute
// form) is refused like the plain one. Requests go over raw TLS since fetch and URL would normalize
// the very spellings under test.

const ADMIN_TOKEN = randomBytes(24).toString('hex');
const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };
const nodeForm = (uuid: string) => goFormEncode({ client_id: 'talos-node', uuid });

interface Case {
  method: string;
  target: string;
  headers?: Record<string, string>;
  body?: string;
}

/** Every spelling of a guarded route: the plain ones and the ones that got past the old URL-text check. */
const guarded = (port: string): { admin: Case[]; nodes: Case[] } => ({
  admin: [
    { method: 'GET', target: '/api/v1/nodes', headers: auth },
    { method: 'GET', target: '/%61pi/v1/nodes', headers: auth },
    { method: 'GET', target: '/api/v1/%6Eodes', headers: auth },
    { method: 'GET', target: '/api/v1/nodes/', headers: auth },
    { method: 'GET', target: '/api/v1/stats?x=/healthz', headers: auth },
    // RFC 9112 §3.2.2: absolute-form is a valid request-target, and the router routes on its path
    { method: 'GET', target: 'http://x/api/v1/nodes', headers: auth },
    { method: 'GET', target: `https://127.0.0.1:${port}/api/v1/stats`, headers: auth },
    { method: 'GET', target: '/metrics' },
    { method: 'GET', target: '/metrics/' },
    { method: 'GET', target: '/%6detrics' },
    { method: 'GET', target: 'http://x/metrics' },
    // the admins' web pages and actions
    { method: 'GET', target: '/' },
    { method: 'GET', target: '/?return_to=/device' },
    { method: 'GET', target: 'http://x/' },
    { method: 'POST', target: '/nodes/some-node/revoke', headers: formHeaders, body: '' },
    { method: 'POST', target: '/nodes/some-node/revoke/', headers: formHeaders, body: '' },
    { method: 'POST', target: '/n%6Fdes/some-node/revoke', headers: formHeaders, body: '' },
    { method: 'GET', target: '/nodes/some-node' },
    { method: 'GET', target: '/nodes/some-node/config' },
    { method: 'POST', target: '/nodes/some-node/forget', headers: formHeaders, body: 'confirm=1' },
    { method: 'POST', target: '/nodes/some-node/rerender', headers: formHeaders, body: '' },
    { method: 'GET', target: '/audit?subject=x' },
    { method: 'GET', target: '/%61udit' },
    { method: 'POST', target: '/nodes/bulk', headers: formHeaders, body: 'decision=deny&node_id=x' },
    { method: 'POST', target: '/n%6Fdes/bulk/', headers: formHeaders, body: 'decision=deny&node_id=x' },
  ],
  nodes: [
    { method: 'POST', target: '/device/code', headers: formHeaders, body: nodeForm('ipa-1') },
    { method: 'POST', target: '/devic%65/code', headers: formHeaders, body: nodeForm('ipa-2') },
    { method: 'POST', target: '/device/code/', headers: formHeaders, body: nodeForm('ipa-3') },
    { method: 'POST', target: 'http://x/device/code', headers: formHeaders, body: nodeForm('ipa-4') },
    { method: 'POST', target: '/%74oken', headers: formHeaders, body: 'grant_type=x' },
    { method: 'POST', target: '/token/', headers: formHeaders, body: 'grant_type=x' },
    { method: 'GET', target: '/%63onfig?uuid=x' },
    { method: 'GET', target: '/config/' },
  ],
});

const send = (g: TestGate, c: Case): Promise<RawResponse> => rawRequest(g.url, g.ca, c.method, c.target, { ...c });
const label = (c: Case) => `${c.method} ${c.target}`;

describe('ip_allowlist decides on the matched route', () => {
  let refusing: TestGate;
  let allowing: TestGate;
  before(async () => {
    // 127.0.0.1, where the tests connect from, is outside these lists
    refusing = await startTestGate({ admin_token: ADMIN_TOKEN, ip_allowlist: { admin: ['192.0.2.0/24'], nodes: ['192.0.2.0/24'] } });
    allowing = await startTestGate({ admin_token: ADMIN_TOKEN, ip_allowlist: { admin: ['192.0.2.0/24', '127.0.0.1/32'], nodes: ['192.0.2.0/24', '127.0.0.1/32'] } });
  });
  after(async () => {
    await refusing?.close();
    await allowing?.close();
  });

  test('every spelling of an admin route is refused from outside ip_allowlist.admin', async () => {
    const failures: string[] = [];
    for (const c of guarded(new URL(refusing.url).port).admin) {
      const res = await send(refusing, c);
      if (res.status !== 403 || !/may not use the admin API/.test(res.body)) failures.push(`${label(c)} -> ${res.status} ${res.body.slice(0, 120)}`);
    }
    assert.deepEqual(failures, []);
  });

  test('every spelling of a node endpoint is refused from outside ip_allowlist.nodes', async () => {
    const failures: string[] = [];
    for (const c of guarded(new URL(refusing.url).port).nodes) {
      const res = await send(refusing, c);
      if (res.status !== 403 || !/may not use node enrollment/.test(res.body)) failures.push(`${label(c)} -> ${res.status} ${res.body.slice(0, 120)}`);
    }
    assert.deepEqual(failures, []);
    assert.equal((await refusing.admin('GET', '/api/v1/nodes/ipa-2')).status, 403, 'the admin API is refused too');
  });

  test('HEAD of a guarded GET route is refused as well', async () => {
    for (const target of ['/api/v1/nodes', '/%61pi/v1/nodes', '/metrics/', '/']) {
      const res = await send(refusing, { method: 'HEAD', target, headers: auth });
      assert.equal(res.status, 403, `HEAD ${target}`);
    }
  });

  test('what operators and everyone use stays open: /device, /auth/*, health, discovery, /exchange', async () => {
    const open: [Case, number][] = [
      [{ method: 'GET', target: '/healthz' }, 200],
      [{ method: 'GET', target: '/ca' }, 200],
      [{ method: 'GET', target: '/.well-known/talos-gate' }, 200],
      [{ method: 'GET', target: '/static/app.css' }, 200],
      [{ method: 'GET', target: '/device' }, 303], // to sign-in: any signed-in user may enter a code
      [{ method: 'GET', target: '/auth/login' }, 503], // no IdP configured in this gate
      [{ method: 'POST', target: '/exchange', headers: { 'content-type': 'application/json' }, body: '{}' }, 404], // not configured here
    ];
    for (const [c, status] of open) {
      const res = await send(refusing, c);
      assert.equal(res.status, status, `${label(c)}: ${res.body.slice(0, 200)}`);
    }
  });

  test('an unmatched request is a plain 404 that names only its path', async () => {
    for (const target of ['/api/v1/no-such-thing', '/%61pi/v1/no-such-thing', 'http://x/api/v1/no-such-thing']) {
      const res = await send(refusing, { method: 'GET', target, headers: auth });
      assert.equal(res.status, 404, target);
      const body = JSON.parse(res.body) as { error: string; error_description: string };
      assert.equal(body.error, 'not_found');
      assert.match(body.error_description, /^no route for GET \S+$/);
    }
  });

  test('with 127.0.0.1/32 in the lists the same spellings get through to the route', async () => {
    const { admin, nodes } = guarded(new URL(allowing.url).port);
    for (const c of [...admin, ...nodes]) {
      const res = await send(allowing, c);
      assert.doesNotMatch(res.body, /may not use/, `${label(c)} -> ${res.status}`);
    }
    assert.equal((await send(allowing, { method: 'GET', target: '/%61pi/v1/nodes', headers: auth })).status, 200);
    assert.equal((await send(allowing, { method: 'GET', target: 'http://x/metrics' })).status, 200);
    assert.equal((await send(allowing, { method: 'GET', target: '/' })).status, 303, 'the dashboard sends to sign-in');
    const code = await send(allowing, { method: 'POST', target: '/devic%65/code', headers: formHeaders, body: nodeForm('ipa-ok') });
    assert.equal(code.status, 200, code.body);
  });
});
