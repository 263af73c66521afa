import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext } from 'playwright-core';
import { request } from '../../cli/http.js';
import type { TestGate } from '../helpers/gate.js';
import { startWebGate, type WebGate } from '../helpers/web-gate.js';

// Security review #6: POST /device/decision had neither lockout nor limit, told existing codes from
// others (403 vs 404), and let any signed-in user deny (or, for CLI logins, approve as themselves)
// codes they never looked up. Now a decision needs the ticket of this session's own lookup, and
// every other try counts as a wrong code.

describe('device decisions only for what this session looked up', () => {
  let w: WebGate;
  let g: TestGate;
  let browser: Browser;

  before(async () => {
    w = await startWebGate([
      { sub: 'ada', label: 'Ada (admin)', claims: { email: 'ada@example.com', groups: ['gate-admins'] } },
      { sub: 'vera', label: 'Vera (viewer)', claims: { email: 'vera@example.com', groups: 'viewers' } },
    ]);
    ({ g, browser } = w);
  });
  after(() => w?.close());

  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const deviceCode = async (body: string) =>
    JSON.parse((await request(`${g.url}/device/code`, { method: 'POST', headers: form, body, ca: g.ca })).body) as { user_code: string; verification_uri_complete: string };

  /** A signed-in browser session and the CSRF token of its code-entry page. */
  async function session(who: string): Promise<{ ctx: BrowserContext; csrf: string }> {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    await page.goto(`${g.url}/device`);
    await page.getByRole('button', { name: who }).click();
    await page.getByRole('heading', { name: 'Enter the code' }).waitFor();
    const csrf = await page.inputValue('input[name=_csrf]');
    await page.close();
    return { ctx, csrf };
  }

  test('decisions without this session lookup are wrong codes: nothing changes, five of them lock entry', async () => {
    const node = await deviceCode('client_id=talos-node&uuid=decision-0001&mac=52%3A54%3A00%3A00%3Add%3A01');
    const login = await deviceCode('client_id=talos-gate-cli');
    const vera = await session('Vera (viewer)');
    const decide = (user_code: string, decision: string, ticket?: string) =>
      vera.ctx.request.post(`${g.url}/device/decision`, { form: { _csrf: vera.csrf, user_code, decision, ...(ticket ? { ticket } : {}) } });

    // another person's CLI login and a machine's code, straight to the decision: refused alike
    for (const [code, decision] of [[login.user_code, 'approve'], [login.user_code, 'deny'], [node.user_code, 'deny']] as const) {
      const r = await decide(code, decision);
      assert.equal(r.status(), 400, `${decision} ${code}`);
      assert.match(await r.text(), /not valid here/);
    }
    // a ticket of another session is worth nothing
    const ada = await session('Ada (admin)');
    const page = await ada.ctx.newPage();
    await page.goto(node.verification_uri_complete);
    const adaTicket = await page.inputValue('input[name=ticket]');
    assert.equal((await decide(node.user_code, 'deny', adaTicket)).status(), 400);
    // the same answer for a code that does not exist
    assert.equal((await decide('BCDF-GHJK', 'deny')).status(), 400);
    assert.equal((await g.admin('GET', '/api/v1/nodes/decision-0001')).json.status, 'pending', 'nothing was decided');
    // five wrong tries: entry is closed for this session, on the decision as on the code page
    assert.equal((await decide(node.user_code, 'deny')).status(), 429);
    const own = await vera.ctx.newPage();
    const res = await own.goto(login.verification_uri_complete);
    assert.equal(res?.status(), 429);

    // the admin behind the same address, with her own lookup's ticket, is not locked out and decides as before
    await page.getByRole('button', { name: 'Deny' }).click();
    await page.getByRole('heading', { name: 'Denied' }).waitFor();
    assert.equal((await g.admin('GET', '/api/v1/nodes/decision-0001')).json.status, 'denied');
    await vera.ctx.close();
    await ada.ctx.close();
  });
});

describe('ip_allowlist.admin covers machine decisions on the shared /device pages', () => {
  test('an admin outside the list cannot see or decide a machine, and still approves her own CLI login', async () => {
    const w2 = await startWebGate([{ sub: 'ada', label: 'Ada (admin)', claims: { email: 'ada@example.com', groups: ['gate-admins'] } }], {
      ip_allowlist: { admin: ['192.0.2.0/24'] },
    });
    const { g, browser } = w2;
    try {
      const code = async (body: string) =>
        JSON.parse((await request(`${g.url}/device/code`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body, ca: g.ca })).body) as { verification_uri_complete: string };
      const node = await code('client_id=talos-node&uuid=outside-0001');
      const login = await code('client_id=talos-gate-cli');
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await ctx.newPage();
      const res = await page.goto(node.verification_uri_complete);
      await page.getByRole('button', { name: 'Ada (admin)' }).click();
      await page.getByRole('heading', { name: 'Not from this address' }).waitFor();
      assert.ok(res);
      await page.goto(login.verification_uri_complete);
      await page.getByRole('button', { name: 'Approve login' }).click();
      await page.getByRole('heading', { name: 'Logged in' }).waitFor();
      await ctx.close();
    } finally {
      await w2.close();
    }
  });
});
