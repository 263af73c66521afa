import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import type { Browser, BrowserContext } from 'playwright-core';
import { request } from '../../cli/http.js';
import { launchChromium } from '../helpers/browser.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/gate.js';
import { startInstances, type HaCluster, type HaInstance } from '../helpers/ha.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';

// An operator's credentials made by one instance and used on the other, each instance its own
// `talos-gate serve` process on one PostgreSQL database: the web session (cookie and CSRF token),
// the gate token of a device login, a device code redeemed on both at once, a refresh token
// replayed on the other, and gate tokens across a rotation of the signing key.

const form = { 'content-type': 'application/x-www-form-urlencoded' };
const DEVICE_GRANT = 'urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code';

describe('an operator signed in on one instance is signed in on the other', () => {
  let idp: TestIdp;
  let c: HaCluster;
  let a: HaInstance;
  let b: HaInstance;
  let browser: Browser;
  let ctx: BrowserContext;

  before(async () => {
    const ports = [await freePort(), await freePort()];
    // public_url is instance A: the IdP sends the browser back there
    idp = await startIdp({
      users: [{ sub: 'ada', label: 'Ada', claims: { email: 'ada@example.com', groups: ['gate-admins'] } }],
      clients: [{ client_id: 'talos-gate', redirect_uris: [`https://127.0.0.1:${ports[0]}/auth/callback`] }],
    });
    c = await startInstances(2, {
      ports,
      configExtra: { oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' }, admins: [{ claim: 'groups', value: 'gate-admins' }], operator: { access_token_ttl: '5m' } },
    });
    [a, b] = c.instances as [HaInstance, HaInstance];
    browser = await launchChromium();
    // signed in through instance A
    ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    await page.goto(`${a.url}/`);
    await page.getByRole('button', { name: 'Ada' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await page.close();
  });
  after(async () => {
    await browser?.close();
    await c?.close();
    await idp?.close();
  });

  const call = (on: HaInstance, method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
    request(`${on.url}${path}`, { method, headers, ca: on.ca(), ...(body !== undefined ? { body } : {}) });
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const on = (inst: HaInstance, url: string) => `${inst.url}${new URL(url).pathname}${new URL(url).search}`;

  /** A device login of the CLI: the code asked for on `asked`, approved in Ada's session on the page of `approved`. */
  async function approvedCode(asked: HaInstance, approved: HaInstance): Promise<string> {
    const code = JSON.parse((await call(asked, 'POST', '/device/code', form, 'client_id=talos-gate-cli')).body) as { device_code: string; verification_uri_complete: string };
    const page = await ctx.newPage();
    await page.goto(on(approved, code.verification_uri_complete));
    await page.getByRole('button', { name: 'Approve login' }).click();
    await page.getByRole('heading', { name: 'Logged in' }).waitFor();
    await page.close();
    return code.device_code;
  }

  const redeem = (inst: HaInstance, deviceCode: string) => call(inst, 'POST', '/token', form, `grant_type=${DEVICE_GRANT}&client_id=talos-gate-cli&device_code=${deviceCode}`);
  const refresh = (inst: HaInstance, rt: string) => call(inst, 'POST', '/token', form, `grant_type=refresh_token&client_id=talos-gate-cli&refresh_token=${rt}`);

  async function login(redeemOn: HaInstance): Promise<{ access_token: string; refresh_token: string }> {
    const r = await redeem(redeemOn, await approvedCode(a, a));
    assert.equal(r.status, 200, r.body);
    return JSON.parse(r.body) as { access_token: string; refresh_token: string };
  }

  test('the web session made on A opens B, and its forms (CSRF) work there', async () => {
    const cookies = (await ctx.cookies(a.url)).map((k) => `${k.name}=${k.value}`).join('; ');
    assert.ok(cookies, 'a session cookie');
    const viaB = await call(b, 'GET', '/api/v1/nodes', { cookie: cookies });
    assert.equal(viaB.status, 200, viaB.body);
    const none = await call(b, 'GET', '/api/v1/nodes');
    assert.equal(none.status, 401, 'and not without it');
    // the approval form A served, sent to B: B checks A's CSRF token with the shared cookie secret
    const code = JSON.parse((await call(a, 'POST', '/device/code', form, 'client_id=talos-gate-cli')).body) as { device_code: string; user_code: string; verification_uri_complete: string };
    const page = await ctx.newPage();
    await page.goto(code.verification_uri_complete);
    const fields = { _csrf: await page.inputValue('input[name=_csrf]'), ticket: await page.inputValue('input[name=ticket]') };
    await page.close();
    const forged = await ctx.request.post(`${b.url}/device/decision`, { form: { ...fields, _csrf: `${fields._csrf.slice(0, -2)}xx`, user_code: code.user_code, decision: 'approve' } });
    assert.equal(forged.status(), 403, 'a CSRF token B did not sign is refused');
    const approved = await ctx.request.post(`${b.url}/device/decision`, { form: { ...fields, user_code: code.user_code, decision: 'approve' } });
    assert.equal(approved.status(), 200, await approved.text());
    assert.match(await approved.text(), /Logged in/);
    assert.equal((await redeem(a, code.device_code)).status, 200);
  });

  test('a gate token made on A is accepted on B, and the other way round', async () => {
    const fromA = await login(a);
    const fromB = await login(b);
    for (const [t, inst] of [[fromA.access_token, b], [fromB.access_token, a], [fromA.access_token, a]] as const) {
      const r = await call(inst, 'GET', '/api/v1/nodes', bearer(t));
      assert.equal(r.status, 200, `instance ${inst.index}: ${r.body}`);
    }
    const keys = async (inst: HaInstance) => (JSON.parse((await call(inst, 'GET', '/.well-known/jwks.json')).body) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    assert.deepEqual(await keys(a), await keys(b), 'one set of keys published by both');
  });

  test('the same device code redeemed on A and B at once: exactly one token', async () => {
    for (let round = 0; round < 3; round++) {
      const deviceCode = await approvedCode(a, a);
      const answers = await Promise.all([redeem(a, deviceCode), redeem(b, deviceCode)]);
      const ok = answers.filter((r) => r.status === 200);
      assert.equal(ok.length, 1, answers.map((r) => `${r.status} ${r.body}`).join('\n'));
      const other = answers.find((r) => r.status !== 200);
      assert.equal(other?.status, 400);
      assert.equal(JSON.parse(other?.body ?? '{}').error, 'invalid_grant', other?.body);
    }
  });

  test('a refresh token used on A and replayed on B: reuse detected, the whole login revoked', async () => {
    const first = await login(a);
    const used = await refresh(a, first.refresh_token);
    assert.equal(used.status, 200, used.body);
    const next = JSON.parse(used.body) as { access_token: string; refresh_token: string };
    assert.equal((await call(b, 'GET', '/api/v1/nodes', bearer(next.access_token))).status, 200, 'the new access token works on B');

    const replay = await refresh(b, first.refresh_token);
    assert.equal(replay.status, 400, replay.body);
    assert.equal(JSON.parse(replay.body).error, 'invalid_grant');
    const after = await refresh(a, next.refresh_token);
    assert.equal(after.status, 400, 'the login is revoked: its newest refresh token too');
    for (const inst of [a, b]) {
      const r = await call(inst, 'GET', '/api/v1/nodes', bearer(next.access_token));
      assert.equal(r.status, 401, `instance ${inst.index}: the access token of the revoked login (${r.body})`);
    }
  });

  test('rotation: old tokens verify on both until the old key is retired; JWKS on both lists both keys', async () => {
    const old = await login(a);
    const oldKid = decodeProtectedHeader(old.access_token).kid;
    const rotate = runCli(['keys', 'rotate', '--now', '--config', a.configFile]);
    assert.equal(await rotate.exit, 0, rotate.stderr());
    const newKid = /^(\S+) {2}signs from/.exec(rotate.stdout())?.[1];
    assert.ok(newKid && newKid !== oldKid, rotate.stdout());

    // each instance reads the keys again within RING_REFRESH_MS (10 s)
    const jwks = async (inst: HaInstance) => (JSON.parse((await call(inst, 'GET', '/.well-known/jwks.json')).body) as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort();
    for (const inst of [a, b]) {
      const deadline = Date.now() + 20_000;
      while ((await jwks(inst)).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(await jwks(inst), [oldKid, newKid].sort(), `instance ${inst.index} publishes both`);
    }
    for (const inst of [a, b]) assert.equal((await call(inst, 'GET', '/api/v1/nodes', bearer(old.access_token))).status, 200, `instance ${inst.index}: the old key's token`);
    // a token made now on B is signed with the new key and verifies on A
    const fresh = await refresh(b, old.refresh_token);
    assert.equal(fresh.status, 200, fresh.body);
    const newToken = (JSON.parse(fresh.body) as { access_token: string }).access_token;
    assert.equal(decodeProtectedHeader(newToken).kid, newKid);
    assert.equal((await call(a, 'GET', '/api/v1/nodes', bearer(newToken))).status, 200);

    // retiring the old key (as the maintenance does once its tokens expired; here at once): refused on both
    const list = runCli(['keys', 'list', '--config', b.configFile]);
    assert.equal(await list.exit, 0, list.stderr());
    assert.match(list.stdout(), new RegExp(`${newKid}.*signing`));
    assert.match(list.stdout(), new RegExp(`${oldKid}.*verifying until its tokens expire`));
    const refused = runCli(['keys', 'retire', '--config', a.configFile, '--', String(newKid)]);
    assert.equal(await refused.exit, 2, 'the key that signs is not retired');
    const retire = runCli(['keys', 'retire', '--config', a.configFile, '--', String(oldKid)]);
    assert.equal(await retire.exit, 0, retire.stderr());
    for (const inst of [a, b]) {
      const deadline = Date.now() + 20_000;
      let status = 200;
      while (status === 200 && Date.now() < deadline) {
        status = (await call(inst, 'GET', '/api/v1/nodes', bearer(old.access_token))).status;
        if (status === 200) await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(status, 401, `instance ${inst.index} refuses the retired key's token`);
      assert.deepEqual(await jwks(inst), [newKid]);
    }
    assert.equal((await call(b, 'GET', '/api/v1/nodes', bearer(newToken))).status, 200, 'the new key still verifies');
  });
});
