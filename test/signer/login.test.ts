import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { parse } from 'yaml';
import { launchChromium } from '../helpers/browser.js';
import { approveCliLogin, finishBrowserLogin, operatorWorkstation } from '../helpers/cli-login.js';
import { canonicalSpki } from '../helpers/der-writer.js';
import { startFakeApid, type FakeApid } from '../helpers/fake-apid.js';
import { freePort, startTestGate, type TestGate } from '../helpers/gate.js';
import { assertTalosClientCertificate, goJudge, goJudgeAll, startGoApid, type GoApid } from '../helpers/go-x509.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { mtlsCall } from '../helpers/talos-ca.js';

// `talos-gate login` against a gate whose signer is Talos (talos.signer: talos-api, the fake apid of
// test/helpers/fake-apid.ts): browser and device logins and --watch renewals, in chromium, with the
// key Talos made written into the talosconfig, judged by Go and used against a Go mTLS server that
// trusts the fake's CA, as apid would.

interface Talosconfig {
  context?: string;
  contexts: Record<string, { endpoints?: string[]; ca: string; crt: string; key: string }>;
}

const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

describe('talos-gate login with talos.signer: talos-api', () => {
  let idp: TestIdp;
  let fake: FakeApid;
  let goApid: GoApid;
  let g: TestGate;
  let browser: Browser;
  let dir: string;
  let caFile: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'talos-gate-signer-login-'));
    const port = await freePort();
    idp = await startIdp({
      users: [
        { sub: 'ada', label: 'Ada', claims: { email: 'ada@example.com', groups: ['talos-admins'] } },
        { sub: 'otto', label: 'Otto', claims: { email: 'otto@example.com', groups: ['ops'] } },
      ],
      clients: [
        { client_id: 'talos-gate', redirect_uris: [`https://127.0.0.1:${port}/auth/callback`] },
        { client_id: 'talos-gate-cli', redirect_uris: ['http://127.0.0.1/callback'], application_type: 'native' },
      ],
    });
    fake = await startFakeApid();
    goApid = await startGoApid(fake.ca.pem);
    const talosconfig = join(dir, 'gate-talosconfig');
    fake.writeTalosconfig(talosconfig, ['os:admin']);
    g = await startTestGate({
      listen: `127.0.0.1:${port}`,
      oidc: { issuer_url: idp.issuer, client_id: 'talos-gate', cli_client_id: 'talos-gate-cli', scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'] },
      rbac: {
        rules: [
          { claim: 'groups', value: 'talos-admins', roles: ['os:admin'] },
          { claim: 'groups', value: 'ops', roles: ['os:operator'] },
        ],
      },
      talos: { signer: 'talos-api', endpoints: ['127.0.0.1'], cert_ttl: '20s', api: { endpoints: [fake.endpoint], talosconfig, timeout: '2s' } },
    });
    assert.doesNotMatch(readFileSync(g.configFile, 'utf8'), /ca_key/);
    caFile = join(dir, 'gate-ca.crt');
    writeFileSync(caFile, g.ca);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await g?.close();
    await goApid?.close();
    await fake?.close();
    await idp?.close();
  });

  /** The context the CLI wrote: the key is Talos', the certificate certifies it, Go and a Go mTLS server accept it. */
  async function checkContext(file: string, roles: string[]): Promise<void> {
    assert.equal(statSync(file).mode & 0o777, 0o600, 'the talosconfig holding the key is 0600');
    const mine = (parse(readFileSync(file, 'utf8')) as Talosconfig).contexts['talos-gate'];
    assert.ok(mine);
    const crt = unb64(mine.crt);
    const key = unb64(mine.key);
    assert.equal(unb64(mine.ca), fake.ca.pem, 'the Talos OS CA, as the gate\'s talosconfig has it');
    const certKey = new X509Certificate(crt).publicKey.export({ type: 'spki', format: 'der' });
    assert.ok(certKey.equals(createPublicKey(createPrivateKey(key)).export({ type: 'spki', format: 'der' })), 'the key written is the certified one');
    assertTalosClientCertificate(await goJudge(crt, fake.ca.pem), { roles, commonName: null, spkiDer: canonicalSpki(createPrivateKey(key)) });
    const seen = await mtlsCall(goApid.port, { cert: crt, key, ca: goApid.serverCa });
    assert.deepEqual(seen.organizations, roles);
  }

  test('browser login: the CLI sends no key and writes the one Talos made', async () => {
    const ws = operatorWorkstation(dir, 'browser');
    const calls = fake.calls.length;
    const run = ws.cli(['login', '--server', g.url, '--server-ca', caFile, '--no-browser']);
    await finishBrowserLogin(browser, run, 'Ada');
    assert.equal(await run.exit, 0, run.stderr());
    assert.match(run.stderr(), /Logged in as ada@example\.com with roles os:admin/);
    const asked = fake.calls.slice(calls).filter((c) => c.roles.includes('os:admin'));
    assert.equal(asked.length, 1, 'Talos was asked once for the login');
    assert.equal(asked[0]?.ttlMs, 20_000);
    await checkContext(ws.talosconfig, ['os:admin']);
  });

  test('device login: approved in chromium on the gate\'s page', async () => {
    const ws = operatorWorkstation(dir, 'device');
    const run = ws.cli(['login', '--server', g.url, '--server-ca', caFile, '--device']);
    const [, uri, code] = await run.waitFor(/open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})/);
    await approveCliLogin(browser, `${uri}?user_code=${code}`, 'Otto');
    assert.equal(await run.exit, 0, run.stderr());
    assert.match(run.stderr(), /Logged in as otto@example\.com with roles os:operator/);
    await checkContext(ws.talosconfig, ['os:operator']);
  });

  test('--watch renews through Talos before expiry', async () => {
    const ws = operatorWorkstation(dir, 'watch');
    const run = ws.cli(['login', '--server', g.url, '--server-ca', caFile, '--no-browser', '--watch']);
    try {
      await finishBrowserLogin(browser, run, 'Ada');
      await run.waitFor(/Watching/);
      const certs = new Map<string, Date>();
      const deadline = Date.now() + 40_000;
      while (Date.now() < deadline && (run.stderr().match(/renewed /g) ?? []).length < 2) {
        const crt = (parse(readFileSync(ws.talosconfig, 'utf8')) as Talosconfig).contexts['talos-gate']?.crt;
        assert.ok(crt, 'the context is always complete');
        if (!certs.has(crt)) certs.set(crt, new Date());
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok((run.stderr().match(/renewed ada@example\.com \[os:admin\]/g) ?? []).length >= 2, run.stderr());
      await checkContext(ws.talosconfig, ['os:admin']);
      const crt = (parse(readFileSync(ws.talosconfig, 'utf8')) as Talosconfig).contexts['talos-gate']?.crt as string;
      if (!certs.has(crt)) certs.set(crt, new Date());
      assert.ok(certs.size >= 3, `the login and two renewals wrote ${certs.size} certificates`);
      // 20 s certificates, each judged as of when the file held it
      const reports = await goJudgeAll([...certs].map(([c, at]) => ({ cert: unb64(c), ca: fake.ca.pem, currentTime: at })));
      reports.forEach((r, i) => assertTalosClientCertificate(r, { roles: ['os:admin'], commonName: null }, `certificate ${i + 1} of ${certs.size}`));
    } finally {
      run.child.kill();
      await run.exit;
    }
  });
});
