import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { artifactPath, launchChromium } from '../helpers/browser.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/gate.js';

// The README's run command on embedded defaults: the demo IdP, the banner, and a simulated node
// approved in a real browser, all as separate processes.

test('demo on embedded defaults: sign in as the demo admin and approve a simulated node', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'talos-gate-demo-'));
  const port = await freePort();
  const serve = runCli(['serve', '--demo'], { cwd, env: { TALOS_GATE_LISTEN: `127.0.0.1:${port}` } });
  const browser = await launchChromium();
  try {
    await serve.waitFor(/Try it without hardware/);
    assert.match(serve.stdout(), /DEVELOPMENT MODE/);
    assert.match(serve.stdout(), /test IdP: +http:\/\/127\.0\.0\.1:\d+/);
    const caFile = join(cwd, 'talos-gate-data', 'tls', 'ca.crt');
    const node = runCli(['simulate-node', '--server', `https://127.0.0.1:${port}`, '--server-ca', caFile, '--uuid', 'demo-node-1', '--mac', '52:54:00:de:00:01']);
    const [, url] = await node.waitFor(/please visit the URL (\S+) and enter the code/);
    const [, code] = await node.waitFor(/enter the code ([A-Z]{4}-[A-Z]{4})/);
    assert.equal(url, `https://127.0.0.1:${port}/device`);

    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    await page.goto(`${url}?user_code=${code}`);
    await page.getByRole('button', { name: 'Ada Admin (admin)' }).click();
    await page.getByRole('heading', { name: 'Approve this machine?' }).waitFor();
    assert.match((await page.textContent('.dev-banner')) ?? '', /DEVELOPMENT MODE/);
    await page.screenshot({ path: artifactPath('demo-confirm.png'), fullPage: true });
    assert.equal(await page.inputValue('#profile'), '', 'no profile is preselected (issue 13: Approve made a control plane)');
    await page.selectOption('#profile', 'worker');
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('heading', { name: 'Approved' }).waitFor();
    assert.equal(await node.exit, 0, node.stderr());
    assert.equal(parse(node.stdout()).machine.nodeLabels['talos-gate.io/uuid'], 'demo-node-1');
    assert.ok(readFileSync(join(cwd, 'talos-gate-data', 'demo-talos-ca', 'issuing-ca.crt'), 'utf8').includes('BEGIN CERTIFICATE'));
    await ctx.close();
  } finally {
    await browser.close();
    serve.child.kill('SIGTERM');
    await serve.exit;
  }
});
