import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext } from 'playwright-core';
import { request } from '../../cli/http.js';
import type { TestGate } from '../helpers/gate.js';
import type { TestIdp } from '../helpers/idp.js';
import { startWebGate, type WebGate } from '../helpers/web-gate.js';
import { makeTalosCa } from '../helpers/talos-ca.js';

// Security review #3: a block reaches every credential a subject holds. Mallory is an admin with a
// web session (chromium), an ID token from the IdP and a gate token from a device login; once
// blocked, none of them opens the admin API, the web page or a refresh, and she cannot unblock herself.

describe('blocking a subject ends every kind of access', () => {
  let w: WebGate;
  let idp: TestIdp;
  let g: TestGate;
  let browser: Browser;

  before(async () => {
    const ca = makeTalosCa(mkdtempSync(join(tmpdir(), 'talos-gate-blocks-')), 'ed25519');
    w = await startWebGate([{ sub: 'mallory', label: 'Mallory', claims: { email: 'mallory@example.com', groups: ['gate-admins', 'talos-admins'] } }], {
      rbac: { rules: [{ claim: 'groups', value: 'talos-admins', roles: ['os:admin'] }] },
      talos: { ca_cert: ca.certPath, ca_key: ca.keyPath, endpoints: ['127.0.0.1'] },
    });
    ({ idp, g, browser } = w);
  });
  after(() => w?.close());

  const call = (method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
    request(`${g.url}${path}`, { method, headers, ca: g.ca, ...(body !== undefined ? { body } : {}) });
  const form = { 'content-type': 'application/x-www-form-urlencoded' };

  async function signedInContext(): Promise<BrowserContext> {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    await page.goto(`${g.url}/`);
    await page.getByRole('button', { name: 'Mallory' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    await page.close();
    return ctx;
  }

  /** A device login of the CLI, approved by Mallory in her browser session: the gate's own tokens. */
  async function deviceLogin(ctx: BrowserContext): Promise<{ access_token: string; refresh_token: string }> {
    const code = JSON.parse((await call('POST', '/device/code', form, 'client_id=talos-gate-cli')).body) as { device_code: string; verification_uri_complete: string };
    const page = await ctx.newPage();
    await page.goto(code.verification_uri_complete);
    await page.getByRole('button', { name: 'Approve login' }).click();
    await page.getByRole('heading', { name: 'Logged in' }).waitFor();
    await page.close();
    const body = `grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=talos-gate-cli&device_code=${code.device_code}`;
    const tokens = await call('POST', '/token', form, body);
    assert.equal(tokens.status, 200, tokens.body);
    return JSON.parse(tokens.body) as { access_token: string; refresh_token: string };
  }

  test('web session, ID token and gate token all lose the admin API; no self-unblock; no new sign-in', async () => {
    const ctx = await signedInContext();
    const tokens = await deviceLogin(ctx);
    const idToken = (await idp.login('talos-gate', 'mallory')).id_token;
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
    const viaSession = () => ctx.request.get(`${g.url}/api/v1/nodes`);

    assert.equal((await viaSession()).status(), 200, 'the web session opens the admin API');
    assert.equal((await call('GET', '/api/v1/nodes', bearer(idToken))).status, 200, 'the ID token does');
    assert.equal((await call('GET', '/api/v1/nodes', bearer(tokens.access_token))).status, 200, 'the gate token does');

    const blocked = await g.admin('POST', '/api/v1/subjects/mallory/block', { reason: 'left the company' });
    assert.equal(blocked.status, 200);
    assert.equal(blocked.json.web_sessions_ended, 1);
    assert.equal(blocked.json.operator_logins_revoked, 1);

    assert.equal((await viaSession()).status(), 401, 'the web session is gone');
    const page = await ctx.newPage();
    await page.goto(`${g.url}/`);
    assert.ok(!(await page.getByRole('heading', { name: 'Dashboard' }).count()), 'no dashboard');
    await page.close();
    for (const t of [idToken, tokens.access_token]) {
      const r = await call('GET', '/api/v1/nodes', bearer(t));
      assert.ok(r.status === 401 || r.status === 403, `${r.status} ${r.body}`);
      assert.match(JSON.parse(r.body).error_description, /blocked|revoked/);
      const unblock = await call('POST', '/api/v1/subjects/mallory/unblock', bearer(t));
      assert.ok(unblock.status === 401 || unblock.status === 403, 'a blocked subject cannot unblock itself');
    }
    assert.equal((await g.admin('GET', '/api/v1/subjects/blocked')).json.subjects[0]?.subject, 'mallory', 'still blocked');
    const refresh = await call('POST', '/token', form, `grant_type=refresh_token&client_id=talos-gate-cli&refresh_token=${tokens.refresh_token}`);
    assert.equal(refresh.status, 400);
    assert.equal(JSON.parse(refresh.body).error, 'invalid_grant');
    const exchange = await call('POST', '/exchange', { 'content-type': 'application/json' }, JSON.stringify({ id_token: idToken }));
    assert.equal(exchange.status, 403);

    // signing in again does not make a session for a blocked subject
    const again = await browser.newContext({ ignoreHTTPSErrors: true });
    const p = await again.newPage();
    await p.goto(`${g.url}/`);
    await p.getByRole('button', { name: 'Mallory' }).click();
    await p.getByRole('heading', { name: 'This account is blocked' }).waitFor();
    assert.equal((await again.request.get(`${g.url}/api/v1/nodes`)).status(), 401);
    await again.close();
    await ctx.close();

    // unblocked by an admin, she can sign in again
    assert.equal((await g.admin('POST', '/api/v1/subjects/mallory/unblock')).json.changed, true);
    const back = await signedInContext();
    assert.equal((await back.request.get(`${g.url}/api/v1/nodes`)).status(), 200);
    await back.close();
  });
});
