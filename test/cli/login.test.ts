import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { parse } from 'yaml';
import { request } from '../../cli/http.js';
import { packageRoot } from '../../server/paths.js';
import { launchChromium } from '../helpers/browser.js';
import { runCli } from '../helpers/cli.js';
import { approveCliLogin, finishBrowserLogin, operatorWorkstation } from '../helpers/cli-login.js';
import { canonicalSpki } from '../helpers/der-writer.js';
import { freePort, startTestGate, type TestGate } from '../helpers/gate.js';
import { assertTalosClientCertificate, goJudge, goJudgeAll } from '../helpers/go-x509.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { makeTalosCa, mtlsCall, startApidLike, type ApidLike, type TestCa } from '../helpers/talos-ca.js';

// `talos-gate login` as operators run it: a real CLI process, a real gate, a real oidc-provider IdP,
// Debian chromium for the human part, and the talosconfig used for a real mTLS handshake.

interface Talosconfig {
  context?: string;
  contexts: Record<string, { endpoints?: string[]; nodes?: string[]; ca: string; crt: string; key: string; [k: string]: unknown }>;
}

const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

describe('talos-gate login', () => {
  let idp: TestIdp;
  let g: TestGate;
  let ca: TestCa;
  let apid: ApidLike;
  let browser: Browser;
  let dir: string;
  let caFile: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'talos-gate-login-'));
    const port = await freePort();
    idp = await startIdp({
      users: [
        { sub: 'ada', label: 'Ada', claims: { email: 'ada@example.com', groups: ['talos-admins', 'gate-admins'] } },
        { sub: 'otto', label: 'Otto', claims: { email: 'otto@example.com', groups: ['ops'] } },
        { sub: 'olga', label: 'Olga', claims: { email: 'olga@example.com', groups: ['ops'] } },
      ],
      clients: [
        { client_id: 'talos-gate', redirect_uris: [`https://127.0.0.1:${port}/auth/callback`] },
        { client_id: 'talos-gate-cli', redirect_uris: ['http://127.0.0.1/callback'], application_type: 'native' },
      ],
    });
    ca = makeTalosCa(dir, 'ed25519', 'login-ca');
    g = await startTestGate({
      listen: `127.0.0.1:${port}`,
      oidc: { issuer_url: idp.issuer, client_id: 'talos-gate', cli_client_id: 'talos-gate-cli', scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'] },
      admins: [{ claim: 'groups', value: 'gate-admins' }],
      rbac: {
        rules: [
          { claim: 'groups', value: 'talos-admins', roles: ['os:admin'] },
          { claim: 'groups', value: 'ops', roles: ['os:operator'] },
        ],
      },
      talos: { ca_cert: ca.certPath, ca_key: ca.keyPath, endpoints: ['127.0.0.1'], cert_ttl: '20s' },
    });
    caFile = join(dir, 'gate-ca.crt');
    writeFileSync(caFile, g.ca);
    apid = await startApidLike(ca, dir);
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await apid?.close();
    await g?.close();
    await idp?.close();
  });

  test('browser login writes a working talosconfig and keeps other contexts as they were', async () => {
    const ws = operatorWorkstation(dir, 'browser');
    const other = { endpoints: ['192.0.2.1'], nodes: ['192.0.2.2'], ca: 'b3RoZXI=', crt: 'b3RoZXI=', key: 'b3RoZXI=', 'unknown-field': { keep: [1, 2] } };
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(ws.home, '.talos'), { recursive: true });
    writeFileSync(ws.talosconfig, `# my clusters\ncontext: prod\ncontexts:\n  prod:\n${Object.entries(other).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`).join('\n')}\n`);

    const run = ws.cli(['login', '--server', g.url, '--server-ca', caFile, '--no-browser', '--nodes', '10.5.0.1,10.5.0.2']);
    await finishBrowserLogin(browser, run, 'Ada');
    assert.equal(await run.exit, 0, run.stderr());
    assert.match(run.stderr(), /Logged in as ada@example\.com with roles os:admin/);

    const cfg = parse(readFileSync(ws.talosconfig, 'utf8')) as Talosconfig;
    assert.equal(cfg.context, 'talos-gate', 'the new context is current');
    assert.deepEqual(cfg.contexts.prod, other, 'the unrelated context is unchanged, unknown fields too');
    const mine = cfg.contexts['talos-gate'];
    assert.ok(mine);
    assert.deepEqual(mine.endpoints, ['127.0.0.1']);
    assert.deepEqual(mine.nodes, ['10.5.0.1', '10.5.0.2']);
    assert.equal(statSync(ws.talosconfig).mode & 0o777, 0o600);
    assert.equal(statSync(join(ws.home, '.config', 'talos-gate', 'tokens.json')).mode & 0o777, 0o600);
    assert.equal(statSync(join(ws.home, '.config', 'talos-gate')).mode & 0o777, 0o700);
    const seen = await mtlsCall(apid.port, { cert: unb64(mine.crt), key: unb64(mine.key), ca: unb64(mine.ca) });
    assert.deepEqual(seen.organizations, ['os:admin']);
    assert.equal(seen.cn, 'ada@example.com');
    assertTalosClientCertificate(await goJudge(unb64(mine.crt), unb64(mine.ca)), { roles: ['os:admin'], commonName: 'ada@example.com', spkiDer: canonicalSpki(createPrivateKey(unb64(mine.key))) });

    const status = ws.cli(['status', '--json']);
    assert.equal(await status.exit, 0, status.stderr());
    const st = JSON.parse(status.stdout()) as Record<string, unknown>;
    assert.equal(st.subject, 'ada@example.com');
    assert.deepEqual(st.roles, ['os:admin']);
    assert.equal(st.login, 'browser');
    assert.equal(st.refresh_available, true);

    // admin commands as the logged-in admin (an ID token refreshed from the IdP)
    const stats = ws.cli(['stats', '--json']);
    assert.equal(await stats.exit, 0, stats.stderr());
    assert.ok((JSON.parse(stats.stdout()) as { total_certs_issued: number }).total_certs_issued >= 1);
  });

  test('device login: approve on the gate page in chromium; logout revokes it', async () => {
    const ws = operatorWorkstation(dir, 'device');
    const run = ws.cli(['login', '--server', g.url, '--server-ca', caFile, '--device']);
    const [, uri, code] = await run.waitFor(/open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})/);
    await run.waitFor(/scan this QR code:\n[▄▀█ ]+/);
    assert.equal(uri, `${g.gate.config.public_url}/device`);
    await approveCliLogin(browser, `${uri}?user_code=${code}`, 'Otto');
    assert.equal(await run.exit, 0, run.stderr());
    assert.match(run.stderr(), /Logged in as otto@example\.com with roles os:operator/);
    const cfg = parse(readFileSync(ws.talosconfig, 'utf8')) as Talosconfig;
    const mine = cfg.contexts['talos-gate'];
    assert.ok(mine);
    assert.deepEqual((await mtlsCall(apid.port, { cert: unb64(mine.crt), key: unb64(mine.key), ca: unb64(mine.ca) })).organizations, ['os:operator']);
    assertTalosClientCertificate(await goJudge(unb64(mine.crt), unb64(mine.ca)), { roles: ['os:operator'], commonName: 'otto@example.com', spkiDer: canonicalSpki(createPrivateKey(unb64(mine.key))) });

    const tokens = JSON.parse(readFileSync(join(ws.home, '.config', 'talos-gate', 'tokens.json'), 'utf8')) as Record<string, { refreshToken: string }>;
    const refresh = Object.values(tokens)[0]?.refreshToken as string;
    const notAdmin = ws.cli(['nodes', 'list']);
    assert.equal(await notAdmin.exit, 1, 'an operator is not an admin');
    assert.match(notAdmin.stderr(), /not an admin/);

    const out = ws.cli(['logout']);
    assert.equal(await out.exit, 0, out.stderr());
    const reuse = await request(`${g.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refresh, client_id: 'talos-gate-cli' }).toString(),
      ca: g.ca,
    });
    assert.equal(reuse.status, 400);
    assert.equal(JSON.parse(reuse.body).error, 'invalid_grant', 'logout revoked the login at the gate');
    assert.equal((parse(readFileSync(ws.talosconfig, 'utf8')) as Talosconfig).contexts['talos-gate'], undefined);
  });

  test('--watch renews before expiry and stops when the IdP removes the group', async () => {
    const ws = operatorWorkstation(dir, 'watch');
    const run = ws.cli(['login', '--server', g.url, '--server-ca', caFile, '--no-browser', '--watch']);
    await finishBrowserLogin(browser, run, 'Ada');
    await run.waitFor(/Watching/);
    const certs = new Set<string>();
    const seenAt = new Map<string, Date>();
    const deadline = Date.now() + 40_000;
    while (Date.now() < deadline && (run.stderr().match(/renewed /g) ?? []).length < 2) {
      const cfg = parse(readFileSync(ws.talosconfig, 'utf8')) as Talosconfig; // valid YAML at every read
      const crt = cfg.contexts['talos-gate']?.crt;
      assert.ok(crt, 'the context is always complete');
      certs.add(crt);
      if (!seenAt.has(crt)) seenAt.set(crt, new Date());
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok((run.stderr().match(/renewed ada@example\.com \[os:admin\]/g) ?? []).length >= 2, run.stderr());
    assert.ok(certs.size >= 2, 'the certificate in the file changed');
    // the IdP takes the group away: the next renewal must not get a certificate
    (idp.users.get('ada') as { claims: Record<string, unknown> }).claims.groups = ['gate-admins'];
    assert.equal(await run.exit, 1, run.stderr());
    assert.match(run.stderr(), /refused a new certificate: .*no Talos role/);
    (idp.users.get('ada') as { claims: Record<string, unknown> }).claims.groups = ['talos-admins', 'gate-admins'];
    // every renewed certificate is one Go reads as a Talos client certificate (20 s certificates:
    // verified as of when the file held them; judged once the CLI has exited, so a failure leaves no process behind)
    const reports = await goJudgeAll([...certs].map((c) => ({ cert: unb64(c), ca: ca.certPem, currentTime: seenAt.get(c) as Date })));
    reports.forEach((r, i) => assertTalosClientCertificate(r, { roles: ['os:admin'], commonName: 'ada@example.com' }, `certificate ${i + 1} of ${certs.size}`));
  });

  test('a device login stops renewing when the user is removed at the IdP', async () => {
    const ws = operatorWorkstation(dir, 'device-watch');
    const run = ws.cli(['login', '--server', g.url, '--server-ca', caFile, '--device', '--watch']);
    const [, uri, code] = await run.waitFor(/open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})/);
    await approveCliLogin(browser, `${uri}?user_code=${code}`, 'Olga');
    await run.waitFor(/Watching/);
    await run.waitFor(/renewed olga@example\.com \[os:operator\]/, 20_000);
    idp.users.delete('olga');
    assert.equal(await run.exit, 1, run.stderr());
    assert.match(run.stderr(), /the gate refused to renew the login: invalid_grant: the identity provider no longer accepts this user/);
  });

  test('security review #2: a device login loses its roles as soon as the IdP stops sending the group claim', async () => {
    const ws = operatorWorkstation(dir, 'device-claims');
    const run = ws.cli(['login', '--server', g.url, '--server-ca', caFile, '--device', '--watch']);
    const [, uri, code] = await run.waitFor(/open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})/);
    await approveCliLogin(browser, `${uri}?user_code=${code}`, 'Otto');
    await run.waitFor(/renewed otto@example\.com \[os:operator\]/, 20_000);
    // not a changed value but a claim that is no longer sent at all: merging old and new claims kept it
    const otto = idp.users.get('otto') as { claims: Record<string, unknown> };
    delete otto.claims.groups;
    try {
      // the certificate lives 20 s: the next renewal (and its refresh at the IdP) comes well within 45 s
      await run.waitFor(/refused a new certificate: .*no Talos role/, 45_000);
      assert.equal(await run.exit, 1, run.stderr());
    } finally {
      run.child.kill();
      otto.claims.groups = ['ops'];
    }
  });

  test('two writers at once never corrupt the talosconfig', async () => {
    const file = join(dir, 'concurrent', 'config');
    const script = (ctx: string) =>
      `import { writeContext } from ${JSON.stringify(join(packageRoot, 'cli', 'talosconfig.ts'))};
       for (let i = 0; i < 25; i++) await writeContext(${JSON.stringify(file)}, '${ctx}', { endpoints: ['${ctx}-' + i], caPem: 'ca', certPem: 'crt-' + i, keyPem: 'key' }, false);`;
    const runOne = (ctx: string) =>
      new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', script(ctx)], { stdio: 'inherit' });
        child.on('exit', resolve);
      });
    const codes = await Promise.all([runOne('a'), runOne('b'), runOne('c')]);
    assert.deepEqual(codes, [0, 0, 0]);
    const cfg = parse(readFileSync(file, 'utf8')) as Talosconfig;
    assert.deepEqual(Object.keys(cfg.contexts).sort(), ['a', 'b', 'c']);
    for (const c of ['a', 'b', 'c']) assert.deepEqual(cfg.contexts[c]?.endpoints, [`${c}-24`]);
  });

  test('admin commands with the admin token: tables, --json and exit codes', async () => {
    const ws = operatorWorkstation(dir, 'admin');
    const env = { ...ws.env, TALOS_GATE_ADMIN_TOKEN: g.adminToken };
    const cli = (args: string[]) => runCli([...args, '--server', g.url, '--server-ca', caFile], { env });
    const add = cli(['nodes', 'add', '--uuid', 'cli-node-1', '--profile', 'worker', '--auto-approve']);
    assert.equal(await add.exit, 0, add.stderr());
    const list = cli(['nodes', 'list']);
    assert.equal(await list.exit, 0, list.stderr());
    assert.match(list.stdout(), /^NODE\s+STATUS\s+PROFILE/m);
    assert.match(list.stdout(), /cli-node-1\s+approved\s+worker/);
    const json = cli(['nodes', 'show', 'cli-node-1', '--json']);
    assert.equal(await json.exit, 0);
    assert.equal((JSON.parse(json.stdout()) as { auto_approve: boolean }).auto_approve, true);
    const missing = cli(['nodes', 'show', 'no-such-node']);
    assert.equal(await missing.exit, 3, 'not found');
    const block = cli(['block', 'someone', '--reason', 'test']);
    assert.equal(await block.exit, 0, block.stderr());
    const certs = cli(['certs', 'list', '--active']);
    assert.equal(await certs.exit, 0, certs.stderr());
    assert.match(certs.stdout(), /USER\s+ROLES/);
    const audit = cli(['audit', '--limit', '5', '--json']);
    assert.equal(await audit.exit, 0);
    assert.equal((JSON.parse(audit.stdout()) as unknown[]).length, 5);
    const noServer = runCli(['stats'], { env: { ...ws.env, TALOS_GATE_ADMIN_TOKEN: '' } });
    assert.equal(await noServer.exit, 2, 'usage error without a server or login');
    const plain = runCli(['login', '--server', 'http://127.0.0.1:1'], { env: ws.env });
    assert.equal(await plain.exit, 2);
    assert.match(plain.stderr(), /--insecure-http/);
  });
});
