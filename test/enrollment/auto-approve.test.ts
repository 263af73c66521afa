import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { goFormEncode, request } from '../../cli/http.js';
import type { DeviceCodeResponse } from '../../cli/talos-node.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';

// Auto-approval of pre-registered nodes (security review #11, item B): one approval per arming,
// bound to the registration's source CIDRs, and only for a request presenting every registered
// identifier. Driven as a Talos node drives the gate (RFC 8628 §3.1 and §3.4, then GET /config). The
// gate trusts 127.0.0.1 as a proxy, so X-Forwarded-For stands for the node's address.

type Vars = Record<string, string>;

describe('auto-approval of pre-registered nodes', () => {
  let g: TestGate;
  before(async () => {
    g = await startTestGate({ trusted_proxies: ['127.0.0.1/32'] });
  });
  after(() => g.close());

  const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

  /** POST /device/code as a booting node, from `from` (X-Forwarded-For). */
  async function ask(vars: Vars, from = '192.0.2.10'): Promise<DeviceCodeResponse> {
    const res = await request(`${g.url}/device/code`, {
      method: 'POST',
      headers: { ...FORM, 'x-forwarded-for': from },
      body: goFormEncode({ client_id: 'talos-node', ...vars }),
      ca: g.ca,
    });
    assert.equal(res.status, 200, res.body);
    return JSON.parse(res.body) as DeviceCodeResponse;
  }

  /** One poll of /token: the access token when granted, else the OAuth error code. */
  async function poll(vars: Vars, da: DeviceCodeResponse, from = '192.0.2.10'): Promise<{ token?: string; error?: string }> {
    const res = await request(`${g.url}/token`, {
      method: 'POST',
      headers: { ...FORM, 'x-forwarded-for': from },
      body: goFormEncode({ client_id: 'talos-node', ...vars, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: da.device_code }),
      ca: g.ca,
    });
    const body = JSON.parse(res.body) as { access_token?: string; error?: string };
    return res.status === 200 ? { token: body.access_token as string } : { error: body.error as string };
  }

  async function config(token: string): Promise<{ status: number; body: string }> {
    const res = await request(`${g.url}/config`, { headers: { authorization: `Bearer ${token}` }, ca: g.ca });
    return { status: res.status, body: res.body };
  }

  async function register(body: Record<string, unknown>): Promise<void> {
    const reg = await g.admin('POST', '/api/v1/nodes', { profile: 'controlplane', auto_approve: true, ...body });
    assert.equal(reg.status, 201, JSON.stringify(reg.json));
  }

  async function refusals(subject: string): Promise<string[]> {
    const audit = await g.admin('GET', '/api/v1/audit?limit=1000');
    return (audit.json.events as { type: string; subject: string; detail: { reason: string } }[])
      .filter((e) => e.type === 'auto_approve_refused' && e.subject === subject)
      .map((e) => e.detail.reason);
  }

  test('one-shot: the first request gets the config; the next one from the same machine waits for an admin until re-armed', async () => {
    const vars = { uuid: '0a0a0a0a-0000-4000-8000-00000000000a', mac: '52:54:00:0a:0a:0a' };
    await register({ uuid: vars.uuid, mac: vars.mac, hostname: 'cp-once' });

    const first = await ask(vars);
    const granted = await poll(vars, first);
    assert.ok(granted.token, `the first request is approved without a click (got ${granted.error})`);
    const cfg = await config(granted.token);
    assert.equal(cfg.status, 200);
    assert.equal(parse(cfg.body).machine.network.hostname, 'cp-once');
    const used = await g.admin('GET', `/api/v1/nodes/${vars.uuid}`);
    assert.equal(used.json.auto_approve, false, 'the approval used the auto-approval up');
    assert.equal(used.json.decided_by, 'auto-approve');

    // the same machine boots again (Talos runs the device flow at each boot that fetches talos.config)
    const second = await ask(vars);
    assert.deepEqual(await poll(vars, second), { error: 'authorization_pending' }, 'a second request waits for an admin');
    const waiting = await g.admin('GET', '/api/v1/nodes?status=pending');
    assert.ok(waiting.json.nodes.some((n: { id: string }) => n.id === vars.uuid), 'listed as waiting');
    assert.equal((await config(granted.token)).status, 403, 'while it waits, the old token fetches nothing');

    // the admin approves it by its code, or re-arms the auto-approval for the next boot
    assert.equal((await g.admin('POST', '/api/v1/device/approve', { user_code: second.user_code })).status, 200);
    assert.ok((await poll(vars, second)).token);
    const armed = await g.admin('POST', `/api/v1/nodes/${vars.uuid}/auto-approve`, {});
    assert.equal(armed.status, 200, JSON.stringify(armed.json));
    assert.equal(armed.json.auto_approve, true);
    const third = await ask(vars);
    assert.ok((await poll(vars, third)).token, 're-armed: the next boot is approved without a click');
    const fourth = await ask(vars);
    assert.deepEqual(await poll(vars, fourth), { error: 'authorization_pending' }, 'and once only');
  });

  test('source CIDRs: a request from outside waits for an admin (audited); one from inside is approved', async () => {
    const vars = { uuid: '0b0b0b0b-0000-4000-8000-00000000000b', mac: '52:54:00:0b:0b:0b' };
    await register({ uuid: vars.uuid, mac: vars.mac, auto_approve_cidrs: ['198.51.100.0/24', '2001:db8:b::/48'] });
    assert.deepEqual((await g.admin('GET', `/api/v1/nodes/${vars.uuid}`)).json.auto_approve_cidrs, ['198.51.100.0/24', '2001:db8:b::/48']);

    const outside = await ask(vars, '203.0.113.9');
    assert.deepEqual(await poll(vars, outside, '203.0.113.9'), { error: 'authorization_pending' });
    assert.deepEqual(await refusals(vars.uuid), ['source address 203.0.113.9 is outside auto_approve_cidrs']);
    const shown = await g.admin('GET', `/api/v1/nodes/${vars.uuid}`);
    assert.equal(shown.json.status, 'pending', 'it waits like any other node');
    assert.equal(shown.json.auto_approve, true, 'and the registration stays armed for the real machine');

    const inside = await ask(vars, '198.51.100.20');
    assert.ok((await poll(vars, inside, '198.51.100.20')).token, 'from an allowed CIDR it is approved');
    assert.equal((await g.admin('GET', `/api/v1/nodes/${vars.uuid}`)).json.status, 'approved');

    const v6 = { uuid: '0b0b0b0b-0000-4000-8000-0000000000b6' };
    await register({ uuid: v6.uuid, auto_approve_cidrs: ['2001:db8:b::/48'] });
    assert.ok((await poll(v6, await ask(v6, '2001:db8:b:1::5'), '2001:db8:b:1::5')).token, 'IPv6 CIDRs too');

    const bad = await g.admin('POST', '/api/v1/nodes', { uuid: 'cidr-bad', profile: 'worker', auto_approve: true, auto_approve_cidrs: ['10.0.0.0/33'] });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error_description, /"10\.0\.0\.0\/33" is not an IP address or CIDR/);
    const unarmed = await g.admin('POST', '/api/v1/nodes', { uuid: 'cidr-unarmed', profile: 'worker', auto_approve_cidrs: ['10.0.0.0/8'] });
    assert.equal(unarmed.status, 400, 'CIDRs without auto_approve are a mistake, not ignored');
  });

  test('identifiers: a uuid and mac registered together must both match; either alone waits for an admin', async () => {
    const vars = { uuid: '0c0c0c0c-0000-4000-8000-00000000000c', mac: '52:54:00:0c:0c:0c' };
    await register({ uuid: vars.uuid, mac: vars.mac });

    const otherMac = { uuid: vars.uuid, mac: '52:54:00:66:66:66' };
    assert.deepEqual(await poll(otherMac, await ask(otherMac)), { error: 'authorization_pending' }, 'uuid matches, mac differs');
    const noMac = { uuid: vars.uuid.toUpperCase() };
    assert.deepEqual(await poll(noMac, await ask(noMac)), { error: 'authorization_pending' }, 'uuid matches, no mac sent');
    assert.deepEqual(await refusals(vars.uuid), ['the request has no mac; the registration has one', 'the mac does not match the registration']);
    const shown = await g.admin('GET', `/api/v1/nodes/${vars.uuid}`);
    assert.equal(shown.json.mac, vars.mac, 'a refused request does not change the registered identity');
    assert.equal(shown.json.auto_approve, true);

    const real = await ask({ ...vars, uuid: vars.uuid.toUpperCase(), mac: vars.mac.toUpperCase() });
    assert.ok((await poll(vars, real)).token, 'both matching (case aside): approved');

    // a mac-only registration learns the uuid at its one approval; re-armed, both must match
    const macOnly = { uuid: '0d0d0d0d-0000-4000-8000-00000000000d', mac: '52:54:00:0d:0d:0d' };
    await register({ mac: macOnly.mac });
    assert.ok((await poll(macOnly, await ask(macOnly))).token);
    assert.equal((await g.admin('POST', `/api/v1/nodes/${macOnly.mac}/auto-approve`)).status, 200);
    const otherUuid = { uuid: '0d0d0d0d-0000-4000-8000-0000000000ff', mac: macOnly.mac };
    assert.deepEqual(await poll(otherUuid, await ask(otherUuid)), { error: 'authorization_pending' }, 'another uuid with the mac is another machine');
    assert.ok((await poll(macOnly, await ask(macOnly))).token);
  });

  test('re-arming: a denied node or one without a profile is refused; CIDRs are checked', async () => {
    const fresh = { uuid: '0e0e0e0e-0000-4000-8000-00000000000e' };
    await ask(fresh);
    const noProfile = await g.admin('POST', `/api/v1/nodes/${fresh.uuid}/auto-approve`, {});
    assert.equal(noProfile.status, 409);
    assert.match(noProfile.json.error_description, /no profile/);
    await g.admin('POST', `/api/v1/nodes/${fresh.uuid}/deny`);
    assert.equal((await g.admin('POST', `/api/v1/nodes/${fresh.uuid}/auto-approve`, {})).status, 409);
    assert.equal((await g.admin('POST', '/api/v1/nodes/no-such-node/auto-approve', {})).status, 404);
    await register({ uuid: 'rearm-cidrs' });
    assert.equal((await g.admin('POST', '/api/v1/nodes/rearm-cidrs/auto-approve', { auto_approve_cidrs: ['nope'] })).status, 400);
    const set = await g.admin('POST', '/api/v1/nodes/rearm-cidrs/auto-approve', { auto_approve_cidrs: ['10.0.0.0/8'] });
    assert.deepEqual(set.json.auto_approve_cidrs, ['10.0.0.0/8']);
    const kept = await g.admin('POST', '/api/v1/nodes/rearm-cidrs/auto-approve');
    assert.deepEqual(kept.json.auto_approve_cidrs, ['10.0.0.0/8'], 'without a list the binding stays');
  });
});
