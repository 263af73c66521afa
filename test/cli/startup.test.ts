import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { request } from '../../cli/http.js';
import { healthzUrl } from '../../cli/healthcheck.js';
import { loadConfig } from '../../server/config/load.js';
import { prepareGate } from '../../server/main.js';
import { runCli } from '../helpers/cli.js';
import { freePort, startTestGate } from '../helpers/gate.js';

// What `serve` checks before it listens, which gate it becomes, and `healthcheck`.

function configDir(files: Record<string, string>, config: Record<string, unknown>): { dir: string; file: string; dataDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-startup-'));
  mkdirSync(join(dir, 'tpl'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'tpl', name), text);
  const dataDir = join(dir, 'data');
  const file = join(dir, 'gate.yaml');
  writeFileSync(file, stringify({ data_dir: dataDir, templates_dir: join(dir, 'tpl'), log_level: 'silent', ...config }));
  return { dir, file, dataDir };
}

const TEMPLATE = 'version: v1alpha1\nmachine:\n  type: worker\n  network:\n    hostname: "{{hostname}}"\n';

test('every profile renders at start-up with placeholder values: an unknown placeholder stops serve before it listens', async () => {
  const port = await freePort();
  const { file, dataDir } = configDir(
    { 'ok.yaml': TEMPLATE, 'bad.yaml': 'version: v1alpha1\nmachine:\n  type: worker\n  install:\n    disk: "{{disk}}"\n' },
    { listen: `127.0.0.1:${port}`, profiles: { worker: { template: 'ok.yaml' }, storage: { template: 'bad.yaml' } } },
  );
  const run = runCli(['serve', '--config', file]);
  assert.equal(await run.exit, 2);
  assert.match(
    run.stderr(),
    /^talos-gate: config error: \S+bad\.yaml at \/machine\/install\/disk: unknown placeholder \{\{disk\}\} \(known: uuid, mac, serial, hostname, profile\) \(profile storage, rendered at start-up with placeholder values\)\n$/,
  );
  assert.ok(!existsSync(dataDir), 'refused before data_dir was made');
  await assert.rejects(request(`https://127.0.0.1:${port}/healthz`), /ECONNREFUSED/, 'never listened');
});

test('a profile patch that does not apply stops serve at start-up, naming the patch', async () => {
  const { file } = configDir(
    { 'worker.yaml': TEMPLATE, 'drop-disk.yaml': '- op: remove\n  path: /machine/install/disk\n' },
    { profiles: { worker: { template: 'worker.yaml', patches: ['drop-disk.yaml'] } } },
  );
  const run = runCli(['serve', '--config', file]);
  assert.equal(await run.exit, 2);
  assert.match(run.stderr(), /config error: \S+drop-disk\.yaml: operation #1 \(remove \/machine\/install\/disk\): .*not found.*\(profile worker, rendered at start-up/);
});

test('TALOS_GATE_* settings without a config file are a gate of their own, never silently the demo', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'talos-gate-envonly-'));
  const port = await freePort();
  // a gate of its own needs its system secret, which the demo would have made for itself
  const unsealed = runCli(['serve'], { cwd, env: { TALOS_GATE_LISTEN: `127.0.0.1:${port}`, TALOS_GATE_LOG_LEVEL: 'silent' } });
  assert.equal(await unsealed.exit, 2);
  assert.match(unsealed.stderr(), /config error: embedded defaults: secrets\.system: is required: .*openssl rand -hex 32.*TALOS_GATE_SECRETS_SYSTEM/);
  const secret = randomBytes(32).toString('hex');
  const run = runCli(['serve'], { cwd, env: { TALOS_GATE_LISTEN: `127.0.0.1:${port}`, TALOS_GATE_LOG_LEVEL: 'silent', TALOS_GATE_SECRETS_SYSTEM: secret } });
  try {
    await run.waitFor(/Try it without hardware/);
    assert.match(run.stdout(), /config: +embedded defaults \+ TALOS_GATE_LISTEN, TALOS_GATE_LOG_LEVEL, TALOS_GATE_SECRETS_SYSTEM\n/);
    assert.doesNotMatch(run.stdout(), new RegExp(secret), 'the secret itself is never printed');
    assert.doesNotMatch(run.stdout(), /DEVELOPMENT MODE/);
    assert.match(run.stdout(), /No IdP \(oidc\.issuer_url is not set\)/);
    assert.ok(!existsSync(join(cwd, 'talos-gate-data', 'demo-talos-ca')), 'no throwaway CA');
  } finally {
    run.child.kill('SIGTERM');
  }
  assert.equal(await run.exit, 0);

  // asked for by name, the demo takes the settings, and says why it is the demo (in a data_dir of
  // its own: the one above is sealed with the secret given there, which the demo does not have)
  const demoPort = await freePort();
  const demoCwd = mkdtempSync(join(tmpdir(), 'talos-gate-envdemo-'));
  const demo = runCli(['serve', '--demo'], { cwd: demoCwd, env: { TALOS_GATE_LISTEN: `127.0.0.1:${demoPort}` } });
  try {
    await demo.waitFor(/Try it without hardware/);
    assert.match(demo.stdout(), /DEVELOPMENT MODE \(the demo: asked for with --demo\)/);
    assert.match(demo.stdout(), /stop: +Ctrl-C; to start over, delete \S+talos-gate-data/);
    assert.match(demo.stdout(), new RegExp(`listening on https://127\\.0\\.0\\.1:${demoPort}`));
  } finally {
    demo.child.kill('SIGTERM');
  }
  assert.equal(await demo.exit, 0);

  const both = runCli(['serve', '--demo', '--config', join(cwd, 'none.yaml')], { cwd });
  assert.equal(await both.exit, 2);
});

test('the demo is what runs with no config file and no TALOS_GATE_* settings at all', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'talos-gate-nothing-'));
  const before = process.cwd();
  process.chdir(cwd); // data_dir of the embedded defaults is ./talos-gate-data
  try {
    const bare = await prepareGate(undefined, {});
    assert.ok(bare.demo, 'nothing configured: the demo');
    assert.deepEqual(bare.envSettings, []);
    await bare.demo.idp.close();
    await assert.rejects(() => prepareGate(undefined, { TALOS_GATE_LOG_LEVEL: 'warn' }), /secrets\.system: is required/, 'one setting: not the demo, so a secret of its own is needed');
    const configured = await prepareGate(undefined, { TALOS_GATE_LOG_LEVEL: 'warn', TALOS_GATE_SECRETS_SYSTEM: randomBytes(32).toString('hex') });
    assert.equal(configured.demo, undefined, 'settings: not the demo');
    assert.deepEqual(configured.envSettings, ['TALOS_GATE_LOG_LEVEL', 'TALOS_GATE_SECRETS_SYSTEM']);
  } finally {
    process.chdir(before);
  }
});

test('listening on every address without public_url is refused, naming the key', async () => {
  const run = runCli(['serve'], { cwd: mkdtempSync(join(tmpdir(), 'talos-gate-any-')), env: { TALOS_GATE_LISTEN: '0.0.0.0:8443' } });
  assert.equal(await run.exit, 2);
  assert.match(run.stderr(), /config error: embedded defaults: public_url: is required when listen is 0\.0\.0\.0:8443 \(every address\)/);
  assert.doesNotMatch(run.stdout() + run.stderr(), /https:\/\/0\.0\.0\.0/);
});

test('healthcheck follows the listen address and TLS mode of the config', async () => {
  const base = { data_dir: '/tmp/x', public_url: 'https://gate.example.com' };
  assert.equal(healthzUrl(loadConfig(undefined, { TALOS_GATE_LISTEN: '0.0.0.0:9443', TALOS_GATE_PUBLIC_URL: base.public_url })), 'https://127.0.0.1:9443/healthz');
  assert.equal(healthzUrl(loadConfig(undefined, { TALOS_GATE_LISTEN: '[::]:9443', TALOS_GATE_PUBLIC_URL: base.public_url })), 'https://127.0.0.1:9443/healthz');
  assert.equal(healthzUrl(loadConfig(undefined, { TALOS_GATE_LISTEN: '[::1]:80', TALOS_GATE_TLS_MODE: 'off' })), 'http://[::1]:80/healthz');

  const tls = await startTestGate();
  const plain = await startTestGate({ tls: { mode: 'off' } });
  try {
    const ok = runCli(['healthcheck', '--config', tls.configFile]);
    assert.equal(await ok.exit, 0, ok.stderr());
    assert.equal(ok.stdout(), `healthy: ${tls.url}/healthz\n`);
    const okPlain = runCli(['healthcheck', '--config', plain.configFile]);
    assert.equal(await okPlain.exit, 0, okPlain.stderr());
    assert.equal(okPlain.stdout(), `healthy: ${plain.url}/healthz\n`);
    assert.match(plain.url, /^http:\/\//);
  } finally {
    await tls.close();
    await plain.close();
  }
  const port = await freePort();
  const down = runCli(['healthcheck'], { env: { TALOS_GATE_LISTEN: `127.0.0.1:${port}` } });
  assert.equal(await down.exit, 1, 'nothing listening: unhealthy');
  assert.match(down.stderr(), new RegExp(`talos-gate healthcheck: https://127\\.0\\.0\\.1:${port}/healthz: .*ECONNREFUSED`));
  const broken = runCli(['healthcheck'], { env: { TALOS_GATE_LISTN: '127.0.0.1:1' } });
  assert.equal(await broken.exit, 1, 'a config error is unhealthy too (Docker reserves exit code 2)');
  assert.match(broken.stderr(), /did you mean TALOS_GATE_LISTEN/);
});
