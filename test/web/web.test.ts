import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { parse } from 'yaml';
import { OAuthFlowError } from '../../cli/talos-node.js';
import { artifactPath, launchChromium } from '../helpers/browser.js';
import { bootNode } from '../helpers/boot-node.js';
import { freePort, startTestGate, type TestGate } from '../helpers/gate.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';

// The admin's journey in a real browser (Debian chromium driven by playwright-core) against a real
// gate and a real oidc-provider IdP: scan the QR target, sign in, check the machine, approve.

async function signIn(page: Page, who: string): Promise<void> {
  // the IdP's sign-in page: one button per user
  await page.getByRole('button', { name: who }).click();
}

describe('web page in chromium', () => {
  let idp: TestIdp;
  let g: TestGate;
  let browser: Browser;
  let admin: BrowserContext;

  before(async () => {
    const port = await freePort();
    idp = await startIdp({
      users: [
        { sub: 'ada', label: 'Ada (admin)', claims: { email: 'ada@example.com', name: 'Ada', groups: ['ops', 'gate-admins'] } },
        { sub: 'vera', label: 'Vera (viewer)', claims: { email: 'vera@example.com', name: 'Vera', groups: 'viewers' } },
      ],
      clients: [{ client_id: 'talos-gate', redirect_uris: [`https://127.0.0.1:${port}/auth/callback`] }],
    });
    g = await startTestGate({
      listen: `127.0.0.1:${port}`,
      oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' },
      admins: [{ claim: 'groups', value: 'gate-admins' }],
      // this suite types many codes from one address within a minute; the lockout is what it tests
      rate_limits: { code_entry: 1000 },
    });
    browser = await launchChromium();
    // the gate's TLS is real; chromium is simply not given its self-signed CA
    admin = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  });
  after(async () => {
    await browser?.close();
    await g?.close();
    await idp?.close();
  });

  test('scan, sign in, check the machine, approve: the node gets its config', async () => {
    const vars = { uuid: '4c4c4544-0042-3510-8052-b4c04f4e3332', mac: '52:54:00:ab:cd:ef', serial: 'CZJ8350A1X', hostname: '${hostname}' };
    const n = bootNode(g, vars);
    const da = await n.da;
    const page = await admin.newPage();
    await page.goto(da.verification_uri_complete as string);
    await signIn(page, 'Ada (admin)');
    await page.waitForURL(/\/device\?user_code=/);
    assert.equal(await page.getByTestId('user-code').textContent(), da.user_code);
    const fact = (k: string) => page.locator(`[data-fact="${k}"]`).textContent();
    assert.equal(await fact('uuid'), vars.uuid);
    assert.equal(await fact('mac'), vars.mac);
    assert.equal(await fact('serial'), vars.serial);
    assert.equal(await fact('hostname'), '${hostname}', 'shown exactly as the node sent it');
    assert.equal(await fact('source_ip'), '127.0.0.1');
    await page.screenshot({ path: artifactPath('confirm-page-phone.png'), fullPage: true });

    await page.selectOption('#profile', 'controlplane');
    await page.fill('#hostname', 'cp-web-1');
    await page.fill('#patch', 'machine:\n  install:\n    disk: /dev/nvme0n1\n');
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.locator('h1').first().waitFor();
    assert.equal(await page.locator('h1').textContent(), 'Approved', (await page.locator('.alert').allTextContents()).join(' | '));
    const { config } = await n.result;
    const cfg = parse(config);
    assert.equal(cfg.machine.type, 'controlplane');
    assert.equal(cfg.machine.network.hostname, 'cp-web-1');
    assert.equal(cfg.machine.install.disk, '/dev/nvme0n1', 'the extra patch from the form');
    const node = (await g.admin('GET', `/api/v1/nodes/${vars.uuid}`)).json;
    assert.equal(node.decided_by, 'ada@example.com', 'the audit trail names the signed-in admin');

    // another machine waits while the admin looks at the dashboard
    const waiting = bootNode(g, { uuid: '0d6f1c2e-9a7b-4c1d-8e2f-3a4b5c6d7e8f', mac: '52:54:00:12:34:99', serial: 'SN-WAIT-1' });
    const waitingCode = await waiting.da;
    const desk = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 }, storageState: await admin.storageState() });
    const dash = await desk.newPage();
    await dash.goto(`${g.url}/`);
    await dash.getByRole('heading', { name: 'Dashboard' }).waitFor();
    assert.match((await dash.getByTestId('pending-nodes').textContent()) ?? '', new RegExp(waitingCode.user_code), 'the waiting tab first');
    await dash.screenshot({ path: artifactPath('dashboard.png'), fullPage: true });
    await dash.goto(`${g.url}/?tab=approved`);
    const row = dash.getByTestId('nodes').locator('tr', { hasText: vars.uuid });
    assert.match((await row.textContent()) ?? '', /approved[\s\S]*controlplane[\s\S]*cp-web-1/);
    await desk.close();
    await g.admin('POST', '/api/v1/device/deny', { user_code: waitingCode.user_code });
    await assert.rejects(waiting.result);
  });

  test('deny: the node gets access_denied', async () => {
    const n = bootNode(g, { uuid: 'deny-me-0001', mac: '52:54:00:00:de:01' });
    const da = await n.da;
    const page = await admin.newPage();
    await page.goto(da.verification_uri_complete as string);
    await page.getByRole('button', { name: 'Deny' }).click();
    await page.getByRole('heading', { name: 'Denied' }).waitFor();
    await assert.rejects(n.result, (e: unknown) => e instanceof OAuthFlowError && e.code === 'access_denied');
  });

  test('typing the code by hand works, any case, with or without the dash', async () => {
    const n = bootNode(g, { uuid: 'typed-0001', mac: '52:54:00:00:77:01' });
    const da = await n.da;
    const page = await admin.newPage();
    await page.goto(`${g.url}/device`);
    await page.fill('#user_code', da.user_code.replace('-', ' ').toLowerCase());
    await page.getByRole('button', { name: 'Continue' }).click();
    assert.equal(await page.getByTestId('user-code').textContent(), da.user_code);
    await page.selectOption('#profile', 'worker');
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('heading', { name: 'Approved' }).waitFor();
    await n.result;
  });

  test('a forged POST without the CSRF token is refused and changes nothing', async () => {
    const n = bootNode(g, { uuid: 'csrf-0001', mac: '52:54:00:00:cf:01' });
    const da = await n.da;
    const page = await admin.newPage();
    const res = await page.request.post(`${g.url}/device/decision`, { form: { user_code: da.user_code, decision: 'approve', profile: 'worker' } });
    assert.equal(res.status(), 403);
    assert.match(await res.text(), /did not come from this site/);
    const api = await page.request.post(`${g.url}/api/v1/device/approve`, { data: { user_code: da.user_code, profile: 'worker' } });
    assert.equal(api.status(), 403, 'the admin API with a session needs the CSRF header too');
    assert.equal((await g.admin('GET', '/api/v1/nodes/csrf-0001')).json.status, 'pending');
    await g.admin('POST', '/api/v1/nodes/csrf-0001/deny');
  });

  test('a signed-in non-admin cannot approve, on the page or through the API', async () => {
    const n = bootNode(g, { uuid: 'viewer-0001', mac: '52:54:00:00:ee:01' });
    const da = await n.da;
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    const first = await page.goto(da.verification_uri_complete as string);
    assert.ok(first);
    await signIn(page, 'Vera (viewer)');
    await page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    assert.match((await page.textContent('main')) ?? '', /vera@example\.com/);
    const api = await page.request.post(`${g.url}/api/v1/device/approve`, { data: { user_code: da.user_code, profile: 'worker' } });
    assert.equal(api.status(), 403);
    assert.match((await api.json()).error_description, /not an admin/);
    assert.equal((await g.admin('GET', '/api/v1/nodes/viewer-0001')).json.status, 'pending');
    await ctx.close();
    await g.admin('POST', '/api/v1/nodes/viewer-0001/deny');
  });

  test('after 5 wrong codes, code entry is closed for a while', async () => {
    const n = bootNode(g, { uuid: 'lockout-0001', mac: '52:54:00:00:10:01' });
    const da = await n.da;
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, storageState: await admin.storageState() });
    const page = await ctx.newPage();
    for (let i = 0; i < 5; i++) {
      await page.goto(`${g.url}/device`);
      await page.fill('#user_code', 'BCDF-GHJK');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.locator('.alert.error').first().waitFor();
    }
    assert.match((await page.textContent('main')) ?? '', /Too many wrong codes/);
    const res = await page.goto(da.verification_uri_complete as string);
    assert.equal(res?.status(), 429, 'even the right code is refused while entry is closed');
    assert.match((await page.textContent('main')) ?? '', /Too many wrong codes/);
    await ctx.close();
    await g.admin('POST', '/api/v1/nodes/lockout-0001/deny');
  });

  test('sign out ends the session', async () => {
    const state = await admin.storageState();
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, storageState: state });
    const page = await ctx.newPage();
    await page.goto(`${g.url}/`);
    assert.equal((await page.request.get(`${g.url}/api/v1/stats`)).status(), 200, 'the session works before');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Signed out' }).waitFor();
    await ctx.close();
    // the old cookie, replayed, no longer opens anything
    const replay = await browser.newContext({ ignoreHTTPSErrors: true, storageState: state });
    const again = await replay.newPage();
    assert.equal((await again.request.get(`${g.url}/api/v1/stats`)).status(), 401);
    await replay.close();
  });
});
