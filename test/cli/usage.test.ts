import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import forge from 'node-forge';
import { parse, stringify } from 'yaml';
import { TalosNode, talosConfigUrl } from '../../cli/talos-node.js';
import { packageRoot } from '../../server/paths.js';
import { runCli } from '../helpers/cli.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';

// The command line as its contract says: usage errors exit 2, a closed pipe is no crash, and the
// messages say what is wrong.

const home = mkdtempSync(join(tmpdir(), 'talos-gate-usage-'));
/** No cached login, no talosconfig, no admin token from the environment of whoever runs the tests. */
const env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config'), TALOSCONFIG: join(home, 'talosconfig'), TALOS_GATE_ADMIN_TOKEN: '' };

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = runCli(args, { env });
  const code = await r.exit;
  return { code, stdout: r.stdout(), stderr: r.stderr() };
}

test('usage errors exit 2: missing --server, missing --profile or targets, an unknown flag or command', async () => {
  const cases: [string[], RegExp][] = [
    [['simulate-node'], /required option '-s, --server <url>' not specified/],
    [['nodes', 'list'], /--server is required/],
    [['nodes', 'approve', '--server', 'https://127.0.0.1:1'], /give user codes or machine ids, or --all-pending/],
    [['nodes', 'approve', 'some-node', '--match', 'mac=*', '--server', 'https://127.0.0.1:1'], /--match needs --all-pending/],
    [['nodes', 'add', '--uuid', 'u', '--server', 'https://127.0.0.1:1'], /required option '--profile <name>' not specified/],
    [['nodes', 'list', '--bogus'], /unknown option '--bogus'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['nodes'], /Usage: talos-gate nodes/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
  }
});

test('--version prints the version of package.json; --help exits 0', async () => {
  const { version } = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  const v = await run(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), version);
  const h = await run(['nodes', 'list', '--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Usage: talos-gate nodes list/);
});

test('status says how long ago the certificate expired', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-status-'));
  const keys = forge.pki.rsa.generateKeyPair(1024);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() - 3 * 60_000);
  cert.setSubject([{ name: 'commonName', value: 'ada@demo.test' }, { name: 'organizationName', value: 'os:admin' }]);
  cert.setIssuer([{ name: 'commonName', value: 'test CA' }]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const talosconfig = join(dir, 'talosconfig');
  writeFileSync(talosconfig, stringify({ context: 'talos-gate', contexts: { 'talos-gate': { endpoints: ['10.0.0.10'], crt: b64(forge.pki.certificateToPem(cert)), key: b64('unused') } } }));
  const r = runCli(['status', '--talosconfig', talosconfig], { env });
  assert.equal(await r.exit, 1, 'an expired certificate is exit code 1');
  assert.match(r.stdout(), /Certificate +was valid until \S+ \(expired 3 min ago\)/);
  assert.doesNotMatch(r.stdout(), /expired left/);
  const json = runCli(['status', '--talosconfig', talosconfig, '--json'], { env });
  assert.equal(await json.exit, 1);
  assert.equal(JSON.parse(json.stdout()).certificate_time_left, 'expired', '--json keeps its value');
});

describe('against a gate', () => {
  let g: TestGate;
  let caFile: string;
  let common: string[];
  before(async () => {
    g = await startTestGate();
    caFile = join(g.dir, 'ca.crt');
    writeFileSync(caFile, g.ca);
    common = ['--server', g.url, '--server-ca', caFile, '--admin-token', g.adminToken];
  });
  after(() => g.close());

  test('nodes list | head: the rest of a long listing is dropped quietly', async () => {
    for (let i = 0; i < 250; i++) {
      const r = await g.admin('POST', '/api/v1/nodes', { uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, profile: 'worker', hostname: `node-${i}` });
      assert.equal(r.status, 201, JSON.stringify(r.json));
    }
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const cli = [process.execPath, '--import', import.meta.resolve('tsx'), join(packageRoot, 'cli', 'main.ts'), 'nodes', 'list', '--json', ...common];
    // pipefail: the exit code of talos-gate, not of head
    const sh = spawn('bash', ['-o', 'pipefail', '-c', `${cli.map(quote).join(' ')} | head -c 100 >/dev/null`], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    sh.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => sh.on('exit', resolve));
    assert.doesNotMatch(stderr, /EPIPE|Error|\n\s+at /);
    assert.equal(code, 0, stderr);
    // and the listing is more than a pipe holds, so the write did meet a closed pipe
    const whole = runCli(['nodes', 'list', '--json', ...common], { env });
    assert.equal(await whole.exit, 0, whole.stderr());
    assert.ok(whole.stdout().length > 64 * 1024, `${whole.stdout().length} bytes`);
  });

  test('http:// to the TLS port says so instead of "socket hang up"; https:// to plain HTTP too', async () => {
    const port = new URL(g.url).port;
    const r = await run(['nodes', 'list', '--server', `http://127.0.0.1:${port}`, '--insecure-http', '--admin-token', g.adminToken]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim(), `talos-gate: cannot reach the gate: http://127.0.0.1:${port} speaks TLS, not plain HTTP: use https://127.0.0.1:${port}`);

    const plain = createServer((_req, res) => res.end('{}')).listen(0, '127.0.0.1');
    await new Promise((resolve) => plain.once('listening', resolve));
    try {
      const p = (plain.address() as { port: number }).port;
      const r2 = await run(['nodes', 'list', '--server', `https://127.0.0.1:${p}`, '--admin-token', g.adminToken]);
      assert.equal(r2.code, 2);
      assert.match(r2.stderr, new RegExp(`https://127\\.0\\.0\\.1:${p} speaks plain HTTP, not TLS: use http://127\\.0\\.0\\.1:${p}`));
    } finally {
      plain.close();
    }
  });

  test('nodes show ID --config prints the config the node downloads', async () => {
    const uuid = 'c0ffee00-0000-4000-8000-000000000001';
    const node = new TalosNode({
      configUrl: talosConfigUrl(g.url, { uuid, mac: '52:54:00:c0:ff:ee' }),
      clientId: 'talos-node',
      variables: { uuid, mac: '52:54:00:c0:ff:ee' },
      ca: g.ca,
      onDeviceCode: (da) => void g.admin('POST', '/api/v1/device/approve', { user_code: da.user_code, profile: 'worker', hostname: 'shown-1' }),
    });
    const { config } = await node.run();
    const r = await run(['nodes', 'show', uuid, '--config', ...common]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, config, 'the same bytes the node got');
    assert.equal(parse(r.stdout).machine.network.hostname, 'shown-1');
    const j = await run(['nodes', 'show', uuid, '--config', '--json', ...common]);
    assert.deepEqual(JSON.parse(j.stdout), { id: uuid, config });
    const info = await run(['nodes', 'show', uuid, ...common]);
    assert.match(info.stdout, /^status +approved$/m, 'without --config: the node itself');

    const pending = await g.admin('POST', '/api/v1/nodes', { uuid: 'c0ffee00-0000-4000-8000-000000000002', profile: 'worker' });
    assert.equal(pending.status, 201);
    const none = await run(['nodes', 'show', 'c0ffee00-0000-4000-8000-000000000002', '--config', ...common]);
    assert.equal(none.code, 3, 'no config yet: not found');
    assert.match(none.stderr, /has no rendered config/);
  });
});
