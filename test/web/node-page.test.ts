import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { request } from '../../cli/http.js';
import { packageRoot } from '../../server/paths.js';
import { artifactPath } from '../helpers/browser.js';
import { BACKENDS, type TestGate } from '../helpers/gate.js';
import { startWebGate, type WebGate } from '../helpers/web-gate.js';

// Issue 13: the admin's node page and audit page in a real chromium against a real gate, on both
// storage backends. The node page shows what a node sent, its config and how the templates would
// render it now; its actions (Re-render, Deny, Revoke, Forget) are POSTs with the CSRF token,
// confirmed on a second page, and are checked afterwards through the admin API. The admin's pages
// run with JavaScript off: nothing here may need it.

for (const backend of BACKENDS) describe(`node page and audit page in chromium (${backend})`, () => {
  let w: WebGate;
  let g: TestGate;
  let admin: BrowserContext;
  let templates: string;

  before(async () => {
    // a templates folder of the test's own, so the test can edit a template as an admin would
    templates = join(mkdtempSync(join(tmpdir(), 'node-page-tpl-')), 'templates');
    cpSync(join(packageRoot, 'templates'), templates, { recursive: true });
    w = await startWebGate(
      [
        { sub: 'ada', label: 'Ada (admin)', claims: { email: 'ada@example.com', groups: ['gate-admins'] } },
        { sub: 'vera', label: 'Vera (viewer)', claims: { email: 'vera@example.com', groups: 'viewers' } },
      ],
      { templates_dir: templates },
      { backend },
    );
    g = w.g;
    const signIn = await w.browser.newContext({ ignoreHTTPSErrors: true });
    const page = await signIn.newPage();
    await page.goto(`${g.url}/audit`);
    await page.getByRole('button', { name: 'Ada (admin)' }).click();
    await page.getByRole('heading', { name: 'Audit trail' }).waitFor();
    admin = await w.browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false, viewport: { width: 1280, height: 900 }, storageState: await signIn.storageState() });
    await signIn.close();
  });
  after(() => w?.close());

  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  /** A node asks, as Talos does (POST /device/code), with these variables. */
  async function ask(vars: Record<string, string>): Promise<string> {
    const res = await request(`${g.url}/device/code`, { method: 'POST', headers: form, body: new URLSearchParams({ client_id: 'talos-node', ...vars }).toString(), ca: g.ca });
    assert.equal(res.status, 200, res.body);
    return (JSON.parse(res.body) as { user_code: string }).user_code;
  }
  async function approved(vars: { uuid: string; mac: string } & Record<string, string>, hostname: string): Promise<void> {
    const code = await ask(vars);
    const r = await g.admin('POST', '/api/v1/device/approve', { user_code: code, profile: 'worker', hostname });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  }
  const nodeUrl = (id: string, suffix = '') => `${g.url}/nodes/${encodeURIComponent(id)}${suffix}`;
  const auditOf = async (id: string) => ((await g.admin('GET', '/api/v1/audit?limit=1000')).json.events as { type: string; actor: string | null; subject: string }[]).filter((e) => e.subject === id);

  /** Presses an action's button on the node page, then the confirm page's. */
  async function confirmAction(page: Page, id: string, action: string, question: RegExp): Promise<void> {
    await page.goto(nodeUrl(id));
    await page.locator(`[data-testid=node-actions] button[data-action=${action}]`).click();
    await page.getByRole('heading', { name: question }).waitFor();
    assert.match((await page.locator('h1').textContent()) ?? '', new RegExp(id.replace(/[.:]/g, '\\$&')));
    await page.locator(`button[data-action=${action}]`).click();
  }

  test('the node page shows what the node sent, its requests, its config; a template edit shows as a diff until Re-render', async () => {
    const vars = { uuid: '4c4c4544-0042-3510-8052-b4c04f4e0001', mac: '52:54:00:aa:00:01', serial: 'SN-<b>PAGE</b>-1', hostname: '${hostname}' };
    await approved(vars, 'worker-page-1');
    const page = await admin.newPage();
    const res = await page.goto(nodeUrl(vars.uuid));
    assert.equal(res?.status(), 200);
    const fact = (k: string) => page.locator(`[data-fact="${k}"]`).textContent();
    assert.equal(await fact('uuid'), vars.uuid);
    assert.equal(await fact('mac'), vars.mac);
    assert.equal(await fact('serial'), vars.serial, 'markup a node sends is shown as text');
    assert.equal(await fact('hostname'), '${hostname}');
    assert.equal(await fact('source_ip'), '127.0.0.1');
    assert.equal(await fact('status'), 'approved');
    assert.equal(await fact('profile'), 'worker');
    assert.match((await fact('decided')) ?? '', /admin-token/);
    assert.equal(await fact('downloads'), '0');
    assert.match((await page.getByTestId('requests').textContent()) ?? '', /approved[\s\S]*127\.0\.0\.1/);
    const stored = (await g.admin('GET', `/api/v1/nodes/${vars.uuid}/config`)).json as string;
    assert.equal(await page.getByTestId('config').textContent(), stored, 'the stored config, shown whole and escaped');
    await page.getByTestId('config-current').waitFor();

    // the download link answers the YAML as a file
    const file = await page.request.get(nodeUrl(vars.uuid, '/config'));
    assert.equal(file.status(), 200);
    assert.equal(file.headers()['content-disposition'], `attachment; filename="${vars.uuid}.yaml"`);
    assert.match(file.headers()['content-type'] ?? '', /^application\/yaml/);
    assert.equal(await file.text(), stored);

    // an admin edits the worker template on disk; the page shows what would change
    const worker = join(templates, 'worker.yaml');
    const text = readFileSync(worker, 'utf8');
    assert.ok(text.includes('disk: /dev/sda'));
    writeFileSync(worker, text.replace('disk: /dev/sda', 'disk: /dev/nvme0n1'));
    await page.reload();
    const diff = page.getByTestId('config-diff');
    await diff.waitFor();
    assert.match((await page.getByTestId('config-changed').textContent()) ?? '', /1 line removed, 1 added/);
    const changed = await diff.locator('tr.del td.mono, tr.add td.mono').allTextContents();
    assert.deepEqual(changed.map((l) => l.replace(/^([-+])\s+/, '$1')), ['-disk: /dev/sda', '+disk: /dev/nvme0n1']);
    await page.screenshot({ path: artifactPath(`node-page-diff-${backend}.png`), fullPage: true });
    assert.equal((await g.admin('GET', `/api/v1/nodes/${vars.uuid}/config`)).json, stored, 'looking changes nothing');

    await confirmAction(page, vars.uuid, 'rerender', /Re-render the config of node/);
    await page.getByTestId('flash').waitFor();
    assert.match(page.url(), /\?done=rerender$/);
    await page.getByTestId('config-current').waitFor();
    assert.equal(await page.getByTestId('config-diff').count(), 0, 'the diff is gone');
    const now = (await g.admin('GET', `/api/v1/nodes/${vars.uuid}/config`)).json as string;
    assert.match(now, /disk: \/dev\/nvme0n1/);
    assert.equal(await page.getByTestId('config').textContent(), now);
    const events = await auditOf(vars.uuid);
    assert.deepEqual(
      events.filter((e) => e.type === 'node_rerendered').map((e) => e.actor),
      ['ada@example.com'],
      'audited with the signed-in admin',
    );
    writeFileSync(worker, text);
    await page.close();
  });

  test('Deny, Revoke and Forget: each confirmed, done through the service, audited', async () => {
    const page = await admin.newPage();
    // a waiting node, denied from its page
    await ask({ uuid: 'deny-page-0001', mac: '52:54:00:aa:00:02' });
    await confirmAction(page, 'deny-page-0001', 'deny', /Deny node/);
    await page.getByTestId('flash').waitFor();
    assert.equal((await g.admin('GET', '/api/v1/nodes/deny-page-0001')).json.status, 'denied');
    assert.equal(await page.locator('[data-fact=status]').textContent(), 'denied');
    assert.equal(await page.locator('button[data-action=deny]').count(), 0, 'a denied node offers no Deny');

    // an approved one, revoked
    await approved({ uuid: 'revoke-page-0001', mac: '52:54:00:aa:00:03' }, 'worker-revoke');
    await confirmAction(page, 'revoke-page-0001', 'revoke', /Revoke node/);
    await page.getByTestId('flash').waitFor();
    assert.equal((await g.admin('GET', '/api/v1/nodes/revoke-page-0001')).json.status, 'revoked');

    // and forgotten: gone with its requests, the audit trail keeps it
    await confirmAction(page, 'revoke-page-0001', 'forget', /Forget node/);
    await page.getByRole('heading', { name: 'Forgotten' }).waitFor();
    assert.equal((await g.admin('GET', '/api/v1/nodes/revoke-page-0001')).status, 404);
    assert.equal((await g.gate.storage.listDeviceRequests({ nodeId: 'revoke-page-0001' })).length, 0);
    const types = (await auditOf('revoke-page-0001')).map((e) => `${e.type}:${e.actor}`);
    assert.ok(types.includes('node_revoked:ada@example.com') && types.includes('node_forgotten:ada@example.com'), types.join(' '));
    assert.ok((await auditOf('deny-page-0001')).some((e) => e.type === 'device_denied' && e.actor === 'ada@example.com'));
    assert.equal((await page.goto(nodeUrl('revoke-page-0001')))?.status(), 404, 'its page is gone too');

    // the first step alone changes nothing
    await approved({ uuid: 'confirm-page-0001', mac: '52:54:00:aa:00:04' }, 'worker-confirm');
    await page.goto(nodeUrl('confirm-page-0001'));
    await page.locator('[data-testid=node-actions] button[data-action=forget]').click();
    await page.getByRole('heading', { name: /Forget node/ }).waitFor();
    await page.getByRole('link', { name: 'Cancel' }).click();
    assert.equal((await g.admin('GET', '/api/v1/nodes/confirm-page-0001')).json.status, 'approved');
    await page.close();
  });

  test('an action without the CSRF token, or with another, is refused and changes nothing', async () => {
    await approved({ uuid: 'csrf-page-0001', mac: '52:54:00:aa:00:05' }, 'worker-csrf');
    const page = await admin.newPage();
    await page.goto(nodeUrl('csrf-page-0001'));
    for (const action of ['forget', 'deny', 'revoke', 'rerender']) {
      for (const body of [{ confirm: '1' }, { confirm: '1', _csrf: 'not-a-token' }] as Record<string, string>[]) {
        const r = await page.request.post(nodeUrl('csrf-page-0001', `/${action}`), { form: body });
        assert.equal(r.status(), 403, `${action} ${JSON.stringify(body)}`);
        assert.match(await r.text(), /did not come from this site/);
      }
    }
    const n = (await g.admin('GET', '/api/v1/nodes/csrf-page-0001')).json;
    assert.equal(n.status, 'approved');
    assert.deepEqual((await auditOf('csrf-page-0001')).map((e) => e.type).filter((t) => t !== 'device_code_issued'), ['device_approved']);
    await page.close();
  });

  test('not signed in: sent to sign in; a non-admin: 403; an unknown or malformed id: 404, never 500', async () => {
    await approved({ uuid: 'access-page-0001', mac: '52:54:00:aa:00:06' }, 'worker-access');
    const anon = await w.browser.newContext({ ignoreHTTPSErrors: true });
    for (const path of ['/nodes/access-page-0001', '/nodes/access-page-0001/config', '/audit']) {
      const r = await anon.request.get(`${g.url}${path}`, { maxRedirects: 0 });
      assert.equal(r.status(), 303, path);
      assert.equal(r.headers().location, `/auth/login?return_to=${encodeURIComponent(path)}`);
    }
    const vera = await anon.newPage();
    await vera.goto(`${g.url}/nodes/access-page-0001`);
    await vera.getByRole('button', { name: 'Vera (viewer)' }).click();
    await vera.getByRole('heading', { name: 'Not allowed' }).waitFor();
    for (const path of ['/nodes/access-page-0001', '/nodes/access-page-0001/config', '/audit']) {
      assert.equal((await vera.goto(`${g.url}${path}`))?.status(), 403, path);
    }
    const csrf = await vera.inputValue('input[name=_csrf]');
    const r = await vera.request.post(`${g.url}/nodes/access-page-0001/forget`, { form: { _csrf: csrf, confirm: '1' } });
    assert.equal(r.status(), 403, 'a non-admin with a good CSRF token');
    assert.equal((await g.admin('GET', '/api/v1/nodes/access-page-0001')).json.status, 'approved');
    await anon.close();

    const page = await admin.newPage();
    for (const path of ['/nodes/no-such-node', '/nodes/no-such-node/config', `/nodes/${'x'.repeat(70)}`, '/nodes/%00%3Cscript%3E', '/nodes/a%2Fb', '/nodes/%E2%9C%93']) {
      const res = await page.goto(`${g.url}${path}`);
      assert.equal(res?.status(), 404, path);
      assert.equal(await page.locator('main script').count(), 0, `${path}: nothing of the id is markup`);
    }
    const csrf2 = await (async () => {
      await page.goto(nodeUrl('access-page-0001'));
      return page.inputValue('input[name=_csrf]');
    })();
    assert.equal((await page.request.post(`${g.url}/nodes/no-such-node/forget`, { form: { _csrf: csrf2, confirm: '1' } })).status(), 404);
    assert.equal((await page.request.post(`${g.url}/nodes/no-such-node/deny`, { form: { _csrf: csrf2 } })).status(), 404, 'the confirm step of no node');
    // a registered node never asked: it has no config, and its page says so
    assert.equal((await g.admin('POST', '/api/v1/nodes', { uuid: 'registered-page-0001', profile: 'worker' })).status, 201);
    await page.goto(nodeUrl('registered-page-0001'));
    await page.getByTestId('no-config').waitFor();
    assert.equal((await page.request.get(nodeUrl('registered-page-0001', '/config'))).status(), 404);
    for (const q of ['before=abc', 'before=0', `subject=${'s'.repeat(300)}`]) {
      assert.equal((await page.goto(`${g.url}/audit?${q}`))?.status(), 400, q);
    }
    await page.close();
  });

  test('the audit page pages newest first and filters by event, subject and actor', async () => {
    for (let i = 0; i < 60; i++) {
      const r = await g.admin('POST', '/api/v1/nodes', { uuid: `audit-page-${String(i).padStart(4, '0')}`, profile: 'worker' });
      assert.equal(r.status, 201);
    }
    const page = await admin.newPage();
    await page.goto(`${g.url}/audit`);
    const subjects = () => page.locator('[data-testid=audit-events] tbody tr td:nth-child(4)').allTextContents();
    const first = await subjects();
    assert.equal(first.length, 50);
    assert.deepEqual(first.slice(0, 3), ['audit-page-0059', 'audit-page-0058', 'audit-page-0057'], 'newest first');
    // an event after the first page was read does not move the next one
    await g.admin('POST', '/api/v1/nodes', { uuid: 'audit-page-late', profile: 'worker' });
    await page.getByTestId('audit-older').click();
    const second = await subjects();
    assert.equal(second[0], 'audit-page-0009', 'the older page starts where the first ended');
    assert.ok(second.length > 0 && !second.some((s) => first.includes(s) && s.startsWith('audit-page-')));
    await page.getByTestId('audit-newest').waitFor();

    // filtered by subject through the form
    await page.goto(`${g.url}/audit`);
    await page.fill('#subject', 'audit-page-0007');
    await page.getByRole('button', { name: 'Filter' }).click();
    assert.deepEqual(await subjects(), ['audit-page-0007']);
    assert.match(page.url(), /subject=audit-page-0007/);
    // by event type and actor: the registrations were by the admin token, the re-render by Ada
    await page.goto(`${g.url}/audit`);
    await page.selectOption('#type', 'node_registered');
    await page.fill('#actor', 'admin-token');
    await page.getByRole('button', { name: 'Filter' }).click();
    const registered = await subjects();
    assert.equal(registered.length, 50);
    assert.ok(registered.every((s) => s.includes('-page-')));
    await page.screenshot({ path: artifactPath(`audit-page-${backend}.png`), fullPage: true });
    const types = await page.locator('[data-testid=audit-events] tbody tr td:nth-child(2)').allTextContents();
    assert.ok(types.every((t) => t === 'node_registered'));
    await page.getByTestId('audit-older').click();
    const rest = await subjects();
    assert.ok(rest.length >= 12 && rest.every((s) => !registered.includes(s)), 'the filter is kept from page to page');
    await page.goto(`${g.url}/audit?actor=ada%40example.com&type=node_rerendered`);
    assert.deepEqual(await subjects(), ['4c4c4544-0042-3510-8052-b4c04f4e0001']);
    await page.goto(`${g.url}/audit?subject=nobody-at-all`);
    await page.getByTestId('audit-empty').waitFor();
    // the nav links the audit page for admins
    await page.goto(`${g.url}/device`);
    await page.locator('nav.main').getByRole('link', { name: 'Audit' }).click();
    await page.getByRole('heading', { name: 'Audit trail' }).waitFor();
    await page.close();
  });
});
