import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { request } from '../../cli/http.js';
import { runCli } from '../helpers/cli.js';
import { freePort, startTestGate } from '../helpers/gate.js';

test('serve on embedded defaults and TALOS_GATE_LISTEN: prints what to do, answers, stops on SIGTERM', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'talos-gate-serve-'));
  const port = await freePort();
  // not the demo, so the gate needs its system secret (server/secrets/); it is never printed either
  const run = runCli(['serve'], { cwd, env: { TALOS_GATE_LISTEN: `127.0.0.1:${port}`, TALOS_GATE_SECRETS_SYSTEM: randomBytes(32).toString('hex') } });
  try {
    await run.waitFor(/Try it without hardware/);
    const out = run.stdout();
    assert.match(out, new RegExp(`talos-gate is listening on https://127\\.0\\.0\\.1:${port}`));
    assert.doesNotMatch(out, /DEVELOPMENT MODE/, 'a setting in the environment: not the demo');
    assert.match(out, /talos\.config=https:\/\/127\.0\.0\.1:\d+\/config\?uuid=\$\{uuid\}&mac=\$\{mac\}/);
    assert.match(out, /CA SHA-256: +([0-9A-F]{2}:){31}[0-9A-F]{2}/);
    assert.doesNotMatch(out + run.stderr(), /[0-9a-f]{64}/, 'the generated admin token is not printed, only where it is kept');
    const ca = (await import('node:fs')).readFileSync(join(cwd, 'talos-gate-data', 'tls', 'ca.crt'), 'utf8');
    assert.equal((await request(`https://127.0.0.1:${port}/healthz`, { ca })).status, 200);
  } finally {
    run.child.kill('SIGTERM');
  }
  assert.equal(await run.exit, 0, 'graceful shutdown exits 0');
});

test('serve with a broken config exits 2 naming the key and the file, before listening', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-badcfg-'));
  const file = join(dir, 'gate.yaml');
  writeFileSync(file, 'device:\n  interval: sometimes\n');
  const run = runCli(['serve', '--config', file]);
  assert.equal(await run.exit, 2);
  assert.equal(run.stderr().trim(), `talos-gate: config error: ${file}: device.interval: must be a duration such as "30s", "15m" or "4h", got string "sometimes"`);

  const missingTemplate = join(dir, 'tpl.yaml');
  writeFileSync(missingTemplate, `data_dir: ${join(dir, 'data')}\nprofiles:\n  worker:\n    template: nope.yaml\n`);
  const run2 = runCli(['serve', '--config', missingTemplate]);
  assert.equal(await run2.exit, 2);
  assert.match(run2.stderr(), /config error: .*nope\.yaml: file not found \(profile worker\)/);
});

test('simulate-node boots like a Talos node: code and QR on the console, config on stdout', async () => {
  const g = await startTestGate();
  try {
    const caFile = join(g.dir, 'ca.crt');
    writeFileSync(caFile, g.ca);
    const run = runCli(['simulate-node', '--server', g.gate.config.public_url, '--server-ca', caFile, '--uuid', 'sim-0001', '--mac', '52:54:00:12:34:56', '--serial', 'S1']);
    const [, code] = await run.waitFor(/enter the code ([A-Z]{4}-[A-Z]{4})/);
    // the whole link too, to paste into a browser on another machine
    await run.waitFor(new RegExp(`\\[OAuth\\] or open ${g.gate.config.public_url.replace(/\./g, '\\.')}/device\\?user_code=${code}\n`));
    await run.waitFor(/scan the following QR code:\n[▄▀█ ]+\n/);
    const approved = await g.admin('POST', '/api/v1/device/approve', { user_code: code, profile: 'controlplane', hostname: 'sim-cp' });
    assert.equal(approved.status, 200);
    assert.equal(await run.exit, 0, run.stderr());
    const cfg = parse(run.stdout());
    assert.equal(cfg.machine.type, 'controlplane');
    assert.equal(cfg.machine.network.hostname, 'sim-cp');
    assert.equal((await g.admin('GET', '/api/v1/nodes/sim-0001')).json.variables.serial, 'S1');

    const denied = runCli(['simulate-node', '--server', g.gate.config.public_url, '--server-ca', caFile, '--uuid', 'sim-0002']);
    const [, code2] = await denied.waitFor(/enter the code ([A-Z]{4}-[A-Z]{4})/);
    assert.equal((await g.admin('POST', '/api/v1/device/deny', { user_code: code2 })).status, 200);
    assert.equal(await denied.exit, 1);
    assert.match(denied.stderr(), /access_denied/);

    // asking again, a denied node is refused at /device/code: no code shown that could only be refused
    const again = runCli(['simulate-node', '--server', g.gate.config.public_url, '--server-ca', caFile, '--uuid', 'sim-0002']);
    assert.equal(await again.exit, 1);
    assert.match(again.stderr(), /talos-gate simulate-node: oauth2: access_denied .*an admin denied this node/);
    assert.doesNotMatch(again.stderr(), /enter the code/);
  } finally {
    await g.close();
  }
});
