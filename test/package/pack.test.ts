import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { packageRoot } from '../../server/paths.js';
import { freePort } from '../helpers/gate.js';

// The package as a user gets it: `npm pack` (its prepack builds dist/), installed globally into a
// prefix of its own, and the installed `talos-gate` command run: --version, serve, a simulated node
// approved with `nodes approve`, `nodes list`, healthcheck.

const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
// the installed command and npm run on this test's Node, whatever is first on PATH
const PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`;

interface Packed {
  filename: string;
  files: { path: string }[];
}

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const waitFor = (re: RegExp, ms = 30_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}:\n${out}`)), ms);
      const check = () => {
        const m = out.match(re);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      };
      child.stdout.on('data', check);
      child.stderr.on('data', check);
      check();
    });
  return { child, exit, waitFor, output: () => out };
}

test('npm pack yields a package that installs and runs: --version, serve, simulate-node, nodes', { timeout: 240_000 }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'talos-gate-pack-'));
  try {
    const { stdout } = await run(npm, ['pack', '--json', '--pack-destination', work], { cwd: packageRoot, env: { ...process.env, PATH }, maxBuffer: 16 << 20 });
    // npm prints the prepack build's output before the JSON
    const [packed] = JSON.parse(stdout.slice(stdout.indexOf('[\n'))) as Packed[];
    assert.ok(packed);
    const files = packed.files.map((f) => f.path);
    for (const must of ['package.json', 'bin/talos-gate.cjs', 'bin/thread-pool.cjs', 'dist/cli/main.js', 'dist/server/main.js', 'migrations/sqlite/001_init.sql', 'templates/worker.yaml', 'config.example.yaml']) {
      assert.ok(files.includes(must), `the package holds ${must}`);
    }
    const unwanted = files.filter((f) => /^(dist\/)?(test|bench|scratch)\//.test(f) || /\.ts$/.test(f) || /\.map$/.test(f));
    assert.deepEqual(unwanted, [], 'no tests, benchmarks, TypeScript sources or source maps');

    // Installed without install scripts: better-sqlite3 would compile for a minute or more; this
    // test's own build of it (same version, same Node) is put in place instead.
    const prefix = join(work, 'prefix');
    await run(npm, ['install', '-g', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', join(work, packed.filename)], {
      env: { ...process.env, PATH },
      maxBuffer: 16 << 20,
    });
    const installed = join(prefix, 'lib', 'node_modules', 'talos-gate');
    const sqliteHere = join(packageRoot, 'node_modules', 'better-sqlite3');
    const sqliteThere = join(installed, 'node_modules', 'better-sqlite3');
    const version = (dir: string) => (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
    if (version(sqliteHere) === version(sqliteThere)) {
      mkdirSync(join(sqliteThere, 'build', 'Release'), { recursive: true });
      copyFileSync(join(sqliteHere, 'build', 'Release', 'better_sqlite3.node'), join(sqliteThere, 'build', 'Release', 'better_sqlite3.node'));
    } else {
      await run(npm, ['rebuild', 'better-sqlite3'], { cwd: installed, env: { ...process.env, PATH }, maxBuffer: 16 << 20 });
    }
    assert.ok(!existsSync(join(installed, 'node_modules', 'tsx')), 'no development dependencies');
    const bin = join(prefix, 'bin', 'talos-gate');

    const { version: ours } = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal((await run(bin, ['--version'], { env: { ...process.env, PATH } })).stdout.trim(), ours);

    const port = await freePort();
    const adminToken = 'c2f1e8a94b7d03e6a5f2c1b8d9e04a7f3b6c2d1e';
    const cfg = join(work, 'gate.yaml');
    writeFileSync(cfg, stringify({ listen: `127.0.0.1:${port}`, data_dir: join(work, 'data'), admin_token: adminToken, secrets: { system: [randomBytes(32).toString('hex')] }, log_level: 'silent', device: { interval: '1s' } }));
    const serve = start(bin, ['serve', '--config', cfg]);
    try {
      const [, hint] = await serve.waitFor(/Try it without hardware: +(\S+) simulate-node/);
      assert.equal(hint, 'talos-gate', 'installed, the command is on PATH: no npx');
      const url = `https://127.0.0.1:${port}`;
      const ca = join(work, 'data', 'tls', 'ca.crt');
      const common = ['--server', url, '--server-ca', ca, '--admin-token', adminToken];

      const node = start(bin, ['simulate-node', '--server', url, '--server-ca', ca, '--uuid', 'packed-0001']);
      const [, code] = await node.waitFor(/enter the code ([A-Z]{4}-[A-Z]{4})/);
      const approved = await run(bin, ['nodes', 'approve', '--code', code as string, '--profile', 'worker', '--hostname', 'packed-1', ...common], { env: { ...process.env, PATH } });
      assert.match(approved.stdout, /^approved packed-0001 as worker \(packed-1\)/);
      assert.equal(await node.exit, 0, node.output());
      assert.match(node.output(), /hostname: packed-1/);

      const list = await run(bin, ['nodes', 'list', ...common], { env: { ...process.env, PATH } });
      assert.match(list.stdout, /^NODE +STATUS +PROFILE +HOSTNAME/);
      assert.match(list.stdout, /^packed-0001 +approved +worker +packed-1 /m);

      const health = await run(bin, ['healthcheck', '--config', cfg], { env: { ...process.env, PATH } });
      assert.equal(health.stdout, `healthy: ${url}/healthz\n`);
    } finally {
      serve.child.kill('SIGTERM');
    }
    assert.equal(await serve.exit, 0, serve.output());
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
