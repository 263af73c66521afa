import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { runCli, type CliRun } from './cli.js';

// The operator's side of `talos-gate login` in tests: a workstation of its own, and the human
// steps in chromium against the test IdP (test/helpers/idp.ts: one button per user).

/** A fresh operator workstation under dir: its own HOME, config folder and talosconfig, no admin token. */
export function operatorWorkstation(dir: string, name: string) {
  const home = join(dir, name);
  const env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config'), TALOSCONFIG: join(home, '.talos', 'config'), TALOS_GATE_ADMIN_TOKEN: '' };
  const cli = (args: string[]) => runCli(args, { env });
  return { home, env, cli, talosconfig: env.TALOSCONFIG };
}

/** The browser login: opens the URL `talos-gate login --no-browser` prints and signs `who` in at the IdP. */
export async function finishBrowserLogin(browser: Browser, run: CliRun, who: string): Promise<void> {
  const [, url] = await run.waitFor(/Open this URL in a browser to log in:\s+(\S+)/);
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(url as string);
  await page.getByRole('button', { name: who, exact: true }).click();
  await page.waitForLoadState();
  await page.getByRole('heading', { name: 'Logged in' }).waitFor({ timeout: 10_000 }).catch(async (e: Error) => {
    throw new Error(`${e.message}\nat ${page.url()}:\n${await page.textContent('body')}\nCLI: ${run.stderr()}`);
  });
  await ctx.close();
}

/**
 * The device login: `who` opens the gate's confirmation page (url, with the user code), signs in at
 * the IdP, sees which login asks (from where, when) and approves it.
 */
export async function approveCliLogin(browser: Browser, url: string, who: string): Promise<void> {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  await page.goto(url);
  await page.getByRole('button', { name: who, exact: true }).click();
  await page.getByRole('heading', { name: 'Log in the talos-gate CLI?' }).waitFor({ timeout: 10_000 }).catch(async (e: Error) => {
    throw new Error(`${e.message}\nat ${page.url()}:\n${await page.textContent('body')}`);
  });
  assert.match((await page.textContent('main')) ?? '', /talos-gate CLI login from 127\.0\.0\.1, requested/);
  await page.getByRole('button', { name: 'Approve login' }).click();
  await page.getByRole('heading', { name: 'Logged in' }).waitFor();
  await ctx.close();
}
