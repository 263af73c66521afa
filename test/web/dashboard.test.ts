import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { parse } from 'yaml';
import { USER_CODE_ALPHABET, formatUserCode } from '../../device/user-code.js';
import { newNode, type Storage } from '../../server/storage/storage.js';
import { artifactPath } from '../helpers/browser.js';
import { bootNode, type BootingNode } from '../helpers/boot-node.js';
import { BACKENDS, type TestGate } from '../helpers/gate.js';
import { waitingNodeRequest } from '../helpers/waiting-node.js';
import { warmTimings } from '../helpers/warm-timings.js';
import { startWebGate, type WebGate } from '../helpers/web-gate.js';

// Issue 13, the dashboard at fleet scale, in chromium against a real gate and IdP, on both storage
// backends: 10,000 nodes (9,200 approved, 500 registered, 300 waiting). The bulk of them is written
// through the storage interface, as that many boots would leave them (a waiting node: a node row
// with a pending device request); the three the admin approves in bulk are real device-flow
// clients (cli/talos-node.ts), so each proves its approval by downloading its own config.

const APPROVED = 9_200;
const REGISTERED = 500;
const WAITING = 300;
const BOOTED = 3; // of the waiting ones

/** The user code of seeded waiting node i: "Q" and i in base 20, in the codes' own letters. */
function seededCode(i: number): string {
  let code = '';
  for (let n = i, k = 0; k < 7; k++, n = Math.floor(n / 20)) code = (USER_CODE_ALPHABET[n % 20] as string) + code;
  return `Q${code}`;
}

const hex = (i: number) => `${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

async function fillFleet(s: Storage): Promise<void> {
  const now = Date.now();
  await s.transaction(async (tx) => {
    for (let i = 0; i < APPROVED; i++) {
      const id = `fleet-${String(i).padStart(5, '0')}`;
      const mac = i === 77 ? '0c:c4:7a:5e:77:01' : `52:54:00:00:${hex(i)}`;
      await tx.createNode(
        newNode(id, now - 100_000 + i, { uuid: id, mac, variables: { uuid: id, mac }, status: 'approved', profile: 'worker', hostname: `w-${i}`, config: 'machine: {}\n', decidedAt: now, decidedBy: 'seed' }),
      );
    }
    for (let i = 0; i < REGISTERED; i++) {
      const mac = `52:54:01:00:${hex(i)}`;
      await tx.createNode(newNode(mac, now - 50_000 + i, { mac, variables: { mac, serial: `INV-${i}` }, profile: 'worker' }));
    }
    for (let i = 0; i < WAITING - BOOTED; i++) {
      const id = `wait-${String(i).padStart(4, '0')}`;
      const mac = `52:54:02:00:${hex(i)}`;
      await tx.createNode(newNode(id, now - 10_000 + i, { uuid: id, mac, variables: { uuid: id, mac }, requestedAt: now, sourceIp: '192.0.2.9' }));
      await tx.createDeviceRequest(waitingNodeRequest(id, { userCode: seededCode(i), variables: { uuid: id, mac }, sourceIp: '192.0.2.9', createdAt: now, expiresAt: now + 3_600_000 }));
    }
  });
}

const rowIds = (page: Page) => page.getByTestId('nodes').locator('tbody a[href^="/nodes/"]').allTextContents();
const tabCount = async (page: Page, tab: string) => Number(await page.locator(`nav.tabs a[data-tab="${tab}"] .count`).textContent());

for (const backend of BACKENDS) describe(`dashboard with 10,000 nodes in chromium (${backend})`, () => {
  let w: WebGate;
  let g: TestGate;
  let ctx: BrowserContext;
  let page: Page;
  const booted: BootingNode[] = [];

  before(async () => {
    w = await startWebGate([{ sub: 'ada', label: 'Ada (admin)', claims: { email: 'ada@example.com', groups: ['gate-admins'] } }], {}, { backend });
    g = w.g;
    await fillFleet(g.gate.storage);
    for (let i = 0; i < BOOTED; i++) booted.push(bootNode(g, { uuid: `6f1c2e00-0000-4000-8000-00000000000${i}`, mac: `0c:c4:7a:9a:bc:0${i}`, serial: `BULK-${i}` }));
    await Promise.all(booted.map((b) => b.da));
    ctx = await w.browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
    page = await ctx.newPage();
    await page.goto(`${g.url}/`);
    await page.getByRole('button', { name: 'Ada (admin)' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  });
  after(async () => {
    await ctx?.close();
    await w?.close();
  });

  test('the first page is the waiting tab: under 300 KB, served in under 200 ms, with counts per tab and no meta refresh', async (t) => {
    await page.request.get(`${g.url}/`); // warm
    // the time the browser waits, so the gate's own share is less. The bound is on the
    // fastest warm request (see warmTimings: on two cores shared with two other test files, chromium
    // among them, a request's time is mostly whether the gate got a core); the median gets a looser
    // bound, so a page that is slow every time still fails.
    const { results, sorted, seen } = await warmTimings(7, () => page.request.get(`${g.url}/`));
    const sizes: number[] = [];
    for (const res of results) {
      assert.equal(res.status(), 200);
      sizes.push((await res.body()).length);
    }
    assert.ok((sorted[0] as number) < 200, `the dashboard took at least ${Math.round(sorted[0] as number)} ms (warm requests ${seen} ms)`);
    assert.ok((sorted[3] as number) < 600, `the dashboard took a median of ${Math.round(sorted[3] as number)} ms (warm requests ${seen} ms)`);
    assert.ok(Math.max(...sizes) < 300 * 1024, `the page is ${Math.max(...sizes)} bytes`);
    t.diagnostic(`${backend}: first page ${Math.max(...sizes)} bytes, warm requests ${seen} ms`);

    await page.goto(`${g.url}/`);
    assert.equal(await page.locator('meta[http-equiv=refresh]').count(), 0, 'no reload behind the admin’s back');
    assert.equal(await page.getByTestId('pending-nodes').locator('input[name=user_code]').count(), 100, 'a page of 100 codes');
    assert.equal(await tabCount(page, 'waiting'), WAITING);
    assert.equal(await tabCount(page, 'registered'), REGISTERED);
    assert.equal(await tabCount(page, 'approved'), APPROVED);
    assert.equal(await tabCount(page, 'denied'), 0);
    // the newest first: the three that booted last are on the first page, each row links to its node page
    for (const b of booted) {
      const code = (await b.da).user_code;
      const row = page.getByTestId('pending-nodes').locator('tr', { hasText: code });
      assert.equal(await row.locator(`a[href="/nodes/${b.vars.uuid}"]`).count(), 1);
    }
    await page.screenshot({ path: artifactPath(`dashboard-waiting-${backend}.png`) });
  });

  test('tabs and paging: next pages show other nodes, each once, to the last page', async () => {
    await page.locator('nav.tabs a[data-tab="registered"]').click();
    await page.getByTestId('nodes').waitFor();
    assert.match(page.url(), /tab=registered/);
    const seen: string[] = [];
    for (let p = 0; p < REGISTERED / 100; p++) {
      const ids = await rowIds(page);
      assert.equal(ids.length, 100, `page ${p + 1}`);
      assert.ok(ids.every((id) => id.startsWith('52:54:01:')), 'registered nodes only');
      seen.push(...ids);
      const next = page.locator('a[rel=next]');
      if (p < REGISTERED / 100 - 1) await Promise.all([page.waitForURL(/cursor=/), next.click()]);
      else assert.equal(await next.count(), 0, 'no next page after the last');
    }
    assert.equal(new Set(seen).size, REGISTERED, 'every registered node once');
    assert.equal(seen[0], '52:54:01:00:01:f3', 'newest first');

    await page.goto(`${g.url}/?tab=approved`);
    const first = await rowIds(page);
    assert.equal(first[0], 'fleet-09199');
    await page.locator('a[rel=next]').click();
    await page.waitForURL(/cursor=/);
    const second = await rowIds(page);
    assert.equal(second[0], 'fleet-09099');
    assert.equal(second.filter((id) => first.includes(id)).length, 0, 'the next page shows different nodes');
  });

  test('search finds a node by a mac prefix, any case, within the tab', async () => {
    await page.goto(`${g.url}/?tab=approved`);
    await page.fill('#q', '0C:C4:7A:5E');
    await Promise.all([page.waitForURL(/q=0C/), page.getByRole('button', { name: 'Search' }).click()]);
    assert.deepEqual(await rowIds(page), ['fleet-00077']);
    assert.equal(await page.inputValue('#q'), '0C:C4:7A:5E', 'the search stays in the box');
    // sixteen macs 52:54:00:00:12:30 to :3f, over the prefix index
    await page.goto(`${g.url}/?tab=approved&q=52:54:00:00:12:3`);
    const ids = await rowIds(page);
    assert.deepEqual(ids, Array.from({ length: 16 }, (_, i) => `fleet-${String(0x123f - i).padStart(5, '0')}`));
    // on the waiting tab the booted nodes are found by theirs; a search in another tab does not show them
    await page.goto(`${g.url}/?tab=waiting&q=0c:c4:7a:9a`);
    assert.equal(await page.getByTestId('pending-nodes').locator('input[name=user_code]').count(), BOOTED);
    await page.goto(`${g.url}/?tab=registered&q=0c:c4:7a`);
    assert.match((await page.getByTestId('no-nodes').textContent()) ?? '', /No machine here starts with/);
    const bad = await page.goto(`${g.url}/?tab=nonsense`);
    assert.equal(bad?.status(), 400, 'an unknown tab is a client mistake');
  });

  test('three waiting nodes approved in one bulk action, profile chosen once: each gets its own config', async () => {
    await page.goto(`${g.url}/?tab=waiting`);
    assert.equal(await page.inputValue('#bulk-profile'), '', 'no profile preselected: none is marked default');
    for (const b of booted) await page.check(`input[name=user_code][value="${(await b.da).user_code}"]`);
    await page.selectOption('#bulk-profile', 'worker');
    await page.fill('#bulk-hostname', 'rack1-{{mac_suffix}}');
    await page.getByRole('button', { name: 'Approve selected' }).click();
    await page.getByRole('heading', { name: 'Bulk approval' }).waitFor();
    assert.equal(await page.getByTestId('bulk-summary').textContent(), '3 of 3 machines approved.');
    await page.screenshot({ path: artifactPath(`dashboard-bulk-${backend}.png`) });
    for (const b of booted) {
      const cfg = parse((await b.result).config);
      assert.equal(cfg.machine.type, 'worker');
      assert.equal(cfg.machine.network.hostname, `rack1-${b.vars.mac?.replace(/:/g, '').slice(-6)}`, 'its own name from the template');
      const node = (await g.admin('GET', `/api/v1/nodes/${b.vars.uuid}`)).json;
      assert.equal(node.decided_by, 'ada@example.com');
    }
    await page.goto(`${g.url}/`);
    assert.equal(await tabCount(page, 'waiting'), WAITING - BOOTED);
    assert.equal(await tabCount(page, 'approved'), APPROVED + BOOTED);
  });

  test('bulk deny by node id on the registered tab; select-all ticks the page; a form without CSRF changes nothing', async () => {
    await page.goto(`${g.url}/?tab=registered`);
    await page.check('input[data-select-all]');
    assert.equal(await page.locator('input[name=node_id]:checked').count(), 100);
    await page.uncheck('input[data-select-all]');
    await page.check('input[name=node_id][value="52:54:01:00:01:f3"]');
    await page.check('input[name=node_id][value="52:54:01:00:01:f2"]');
    await page.getByRole('button', { name: 'Deny selected' }).click();
    await page.getByRole('heading', { name: 'Bulk denial' }).waitFor();
    assert.equal(await page.getByTestId('bulk-summary').textContent(), '2 of 2 machines denied.');
    await page.goto(`${g.url}/?tab=denied`);
    assert.deepEqual(await rowIds(page), ['52:54:01:00:01:f3', '52:54:01:00:01:f2']);
    assert.equal(await page.locator('input[type=checkbox]').count(), 0, 'nothing to decide in bulk on closed nodes');

    const forged = await page.request.post(`${g.url}/nodes/bulk`, { form: { decision: 'deny', node_id: '52:54:01:00:01:f1' } });
    assert.equal(forged.status(), 403);
    assert.equal((await g.admin('GET', '/api/v1/nodes/52:54:01:00:01:f1')).json.state, 'registered');
  });

  test('a mix of good and bad codes: one result per machine', async () => {
    await page.goto(`${g.url}/?tab=waiting`);
    // the newest seeded ones, on the first page
    const [good, gone] = [formatUserCode(seededCode(WAITING - BOOTED - 1)), formatUserCode(seededCode(WAITING - BOOTED - 2))];
    await page.check(`input[name=user_code][value="${good}"]`);
    // a code decided elsewhere while the admin looked at the page
    assert.equal((await g.admin('POST', '/api/v1/device/deny', { user_code: gone })).status, 200);
    await page.check(`input[name=user_code][value="${gone}"]`);
    await page.selectOption('#bulk-profile', 'worker');
    await page.getByRole('button', { name: 'Approve selected' }).click();
    await page.getByRole('heading', { name: 'Bulk approval' }).waitFor();
    assert.equal(await page.getByTestId('bulk-summary').textContent(), '1 of 2 machines approved; 1 not (see below).');
    const rows = await page.getByTestId('bulk-results').locator('tbody tr').allTextContents();
    assert.match(rows[0] ?? '', new RegExp(`${good}[\\s\\S]*approved[\\s\\S]*wait-0296[\\s\\S]*worker`));
    assert.match(rows[1] ?? '', new RegExp(`${gone}[\\s\\S]*error`));
  });

  test('Revoke asks for confirmation, then returns to the tab, search and page it was pressed on', async () => {
    const here = `${g.url}/?tab=approved&q=52%3A54%3A00%3A00%3A12%3A3`;
    await page.goto(here);
    const closed = await tabCount(page, 'denied');
    await page.getByTestId('nodes').locator('tr', { hasText: 'fleet-04671' }).getByRole('button', { name: 'Revoke' }).click();
    // the node page's confirmation step (server/routes/web-nodes.ts): nothing changed yet
    await page.getByRole('button', { name: /^Yes, / }).waitFor();
    assert.equal((await g.admin('GET', '/api/v1/nodes/fleet-04671')).json.status, 'approved');
    await page.getByRole('button', { name: /^Yes, / }).click();
    await page.waitForURL(here);
    assert.equal((await rowIds(page)).length, 15, 'the revoked node left the approved tab');
    assert.equal((await g.admin('GET', '/api/v1/nodes/fleet-04671')).json.status, 'revoked');
    assert.equal(await tabCount(page, 'denied'), closed + 1);
  });

  test('the waiting tab reloads itself only while the admin leaves it alone', async () => {
    const p = await ctx.newPage();
    await p.goto(`${g.url}/?tab=waiting`);
    const refreshEvery = (s: number) => p.evaluate((v) => document.querySelector('[data-refresh-seconds]')?.setAttribute('data-refresh-seconds', String(v)), s);
    // a ticked box: no reload, however long it waits
    await p.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
    await p.locator('input[name=user_code]').first().check();
    await refreshEvery(1);
    await p.waitForTimeout(3000);
    assert.equal(await p.evaluate(() => (window as unknown as { marker?: number }).marker), 1, 'the page was not reloaded');
    assert.equal(await p.locator('input[name=user_code]').first().isChecked(), true);
    // left alone, it reloads
    await p.goto(`${g.url}/?tab=waiting`);
    await Promise.all([p.waitForEvent('load'), refreshEvery(1)]);
    // other tabs never reload
    await p.goto(`${g.url}/?tab=approved`);
    assert.equal(await p.getAttribute('[data-refresh-seconds]', 'data-refresh-seconds'), '0');
    await p.close();
  });
});
