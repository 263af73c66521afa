import type { Browser } from 'playwright-core';
import type { DevIdpUser } from '../../server/dev-idp/provider.js';
import { launchChromium } from './browser.js';
import { freePort, startTestGate, type Backend, type TestGate } from './gate.js';
import { startIdp, type TestIdp } from './idp.js';

export interface WebGate {
  idp: TestIdp;
  g: TestGate;
  browser: Browser;
  close(): Promise<void>;
}

/**
 * What the browser tests start: a real IdP with the gate's web client, a gate signing in with it
 * (admins: the gate-admins group), and Debian's chromium.
 */
export async function startWebGate(users: DevIdpUser[], gateConfig: Record<string, unknown> = {}, opts: { backend?: Backend } = {}): Promise<WebGate> {
  const port = await freePort();
  const idp = await startIdp({ users, clients: [{ client_id: 'talos-gate', redirect_uris: [`https://127.0.0.1:${port}/auth/callback`] }] });
  const g = await startTestGate({
    listen: `127.0.0.1:${port}`,
    oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' },
    admins: [{ claim: 'groups', value: 'gate-admins' }],
    ...gateConfig,
  }, opts);
  const browser = await launchChromium();
  return {
    idp,
    g,
    browser,
    async close() {
      await browser.close();
      await g.close();
      await idp.close();
    },
  };
}
