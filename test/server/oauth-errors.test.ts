import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from '../../cli/http.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';

// Client mistakes at the OAuth endpoints get RFC 6749 JSON with a 4xx, never a 5xx or a stack.

describe('OAuth endpoints refuse bad input clearly', () => {
  let g: TestGate;
  before(async () => {
    g = await startTestGate();
  });
  after(() => g.close());

  const form = (path: string, body: string, headers: Record<string, string> = {}) =>
    request(`${g.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body, ca: g.ca });

  const cases: [string, () => Promise<{ status: number; body: string }>, number, string, RegExp?][] = [
    ['no client_id', () => form('/device/code', 'uuid=u1'), 400, 'invalid_request', /client_id is required/],
    ['unknown client', () => form('/device/code', 'client_id=nobody&uuid=u1'), 401, 'invalid_client'],
    ['no uuid nor mac', () => form('/device/code', 'client_id=talos-node&hostname=x'), 400, 'invalid_request', /neither uuid nor mac/],
    ['placeholder uuid, no mac', () => form('/device/code', 'client_id=talos-node&uuid=%24%7Buuid%7D'), 400, 'invalid_request'],
    ['absurd uuid', () => form('/device/code', `client_id=talos-node&uuid=${'a/'.repeat(20)}`), 400, 'invalid_request', /uuid must be/],
    ['bad mac alone', () => form('/device/code', 'client_id=talos-node&mac=zz:zz'), 400, 'invalid_request', /mac must be in colon form/],
    ['control characters', () => form('/device/code', 'client_id=talos-node&uuid=u1&hostname=a%0Ab'), 400, 'invalid_request', /control characters/],
    ['duplicate parameter', () => form('/device/code', 'client_id=talos-node&uuid=u1&uuid=u2'), 400, 'invalid_request', /more than once/],
    ['JSON body', () => request(`${g.url}/device/code`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"client_id":"talos-node"}', ca: g.ca }), 400, 'invalid_request'],
    ['unknown content type', () => request(`${g.url}/token`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<x/>', ca: g.ca }), 415, 'invalid_request'],
    ['huge body', () => form('/device/code', `client_id=talos-node&uuid=${'a'.repeat(300_000)}`), 413, 'invalid_request'],
    ['no grant_type', () => form('/token', 'client_id=talos-node&device_code=x'), 400, 'invalid_request', /grant_type is required/],
    ['other grant type', () => form('/token', 'grant_type=password&client_id=talos-node'), 400, 'unsupported_grant_type'],
    ['unknown device code', () => form('/token', 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=talos-node&device_code=nope'), 400, 'invalid_grant'],
    ['forged Basic header', () => form('/token', 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=x', { authorization: 'Basic !!!not-base64' }), 401, 'invalid_client'],
    ['Basic without colon', () => form('/token', 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=x', { authorization: `Basic ${Buffer.from('talos-node').toString('base64')}` }), 401, 'invalid_client'],
    ['Basic and body disagree', () => form('/token', 'grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=x&client_id=other', { authorization: `Basic ${Buffer.from('talos-node:').toString('base64')}` }), 401, 'invalid_client'],
    ['config without token', () => request(`${g.url}/config?uuid=x`, { ca: g.ca }), 401, 'invalid_token'],
    ['config with a made-up token', () => request(`${g.url}/config`, { headers: { authorization: 'Bearer made-up' }, ca: g.ca }), 401, 'invalid_token'],
    ['admin API without token', () => request(`${g.url}/api/v1/nodes`, { ca: g.ca }), 401, 'unauthorized'],
    ['admin API with wrong token', () => request(`${g.url}/api/v1/nodes`, { headers: { authorization: 'Bearer wrong-token-0123456789' }, ca: g.ca }), 401, 'unauthorized'],
    ['unknown route', () => request(`${g.url}/nope`, { ca: g.ca }), 404, 'not_found'],
  ];

  for (const [name, send, status, error, description] of cases) {
    test(name, async () => {
      const res = await send();
      assert.equal(res.status, status, res.body);
      const body = JSON.parse(res.body) as { error: string; error_description: string };
      assert.equal(body.error, error);
      assert.equal(typeof body.error_description, 'string');
      if (description) assert.match(body.error_description, description);
      assert.doesNotMatch(res.body, /at .*\.(ts|js):\d+/, 'no stack trace');
    });
  }

  test('admin API: bad JSON, unknown profile, unknown node, approve without a pending request', async () => {
    const bad = await request(`${g.url}/api/v1/device/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${g.adminToken}`, 'content-type': 'application/json' },
      body: '{"user_code":',
      ca: g.ca,
    });
    assert.equal(bad.status, 400);
    assert.equal(JSON.parse(bad.body).error, 'invalid_request');
    assert.equal((await g.admin('POST', '/api/v1/device/approve', { user_code: 'BCDF-GHJK', profile: 'worker' })).status, 404);
    assert.equal((await g.admin('POST', '/api/v1/device/approve', { user_code: 'BCDF-GHJK', profile: 'worker', extra: 1 })).status, 400);
    assert.equal((await g.admin('GET', '/api/v1/nodes/nope')).status, 404);
    assert.equal((await g.admin('GET', '/api/v1/nodes?status=weird')).status, 400);
    const reg = await g.admin('POST', '/api/v1/nodes', { uuid: 'reg-1', profile: 'nope' });
    assert.equal(reg.status, 400);
    assert.match(reg.json.error_description, /unknown profile "nope"/);
    assert.equal((await g.admin('POST', '/api/v1/nodes', { uuid: 'reg-1', profile: 'worker' })).status, 201);
    assert.equal((await g.admin('POST', '/api/v1/nodes', { uuid: 'reg-1', profile: 'worker' })).status, 409);
    const noReq = await g.admin('POST', '/api/v1/nodes/reg-1/approve', { profile: 'worker' });
    assert.equal(noReq.status, 409);
    assert.match(noReq.json.error_description, /no pending request/);
    const badPatch = await g.admin('POST', '/api/v1/nodes', { uuid: 'reg-2', profile: 'worker', patches: ['machine: ['] });
    assert.equal(badPatch.status, 422);
    assert.match(badPatch.json.error_description, /node patch #1 at line \d+: not valid YAML/);
  });

  test('a broken per-node patch is refused at approval, naming the problem; the node stays pending', async () => {
    const res = await form('/device/code', 'client_id=talos-node&uuid=patchy-node');
    const da = JSON.parse(res.body) as { user_code: string };
    const refused = await g.admin('POST', '/api/v1/device/approve', {
      user_code: da.user_code,
      profile: 'worker',
      patches: [[{ op: 'remove', path: '/machine/nonexistent' }]],
    });
    assert.equal(refused.status, 422);
    assert.match(refused.json.error_description, /node patch #1: operation #1 \(remove \/machine\/nonexistent\)/);
    assert.equal((await g.admin('GET', '/api/v1/nodes/patchy-node')).json.status, 'pending');
    assert.equal((await g.admin('POST', '/api/v1/device/approve', { user_code: da.user_code, profile: 'worker', hostname: 'Not A Hostname' })).status, 400);
    const ok = await g.admin('POST', '/api/v1/device/approve', { user_code: da.user_code, profile: 'worker' });
    assert.equal(ok.status, 200);
  });

  test('RFC 8414 metadata and health', async () => {
    const meta = JSON.parse((await request(`${g.url}/.well-known/oauth-authorization-server`, { ca: g.ca })).body);
    assert.equal(meta.issuer, g.gate.config.public_url);
    assert.equal(meta.device_authorization_endpoint, `${g.gate.config.public_url}/device/code`);
    assert.equal(meta.token_endpoint, `${g.gate.config.public_url}/token`);
    const health = await request(`${g.url}/healthz`, { ca: g.ca });
    assert.equal(health.status, 200);
  });
});
