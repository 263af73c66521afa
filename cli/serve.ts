import cluster from 'node:cluster';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { prepareGate, startGate, type PreparedGate } from '../server/main.js';
import { packageRoot } from '../server/paths.js';

/** Tells the one worker that prunes the database (not TALOS_GATE_*: those are config keys). */
const MAINTAINER_ENV = 'GATE_WORKER_MAINTAINS';

/** How to run this command again: in a source checkout the bin is not on PATH, but npx finds it there. */
function selfCommand(): string {
  if (!existsSync(join(packageRoot, 'cli', 'main.ts'))) return 'talos-gate';
  const inside = !relative(packageRoot, process.cwd()).startsWith('..');
  return inside ? 'npx talos-gate' : `node ${join(packageRoot, 'bin', 'talos-gate.cjs')}`;
}

function banner(p: PreparedGate, url: string, workers: number): string {
  const c = p.config;
  const env = p.envSettings.length ? ` + ${p.envSettings.join(', ')}` : '';
  const lines = [
    '',
    `talos-gate is listening on ${url} (public URL ${c.public_url})${workers > 1 ? ` with ${workers} workers` : ''}`,
    `  config:        ${c.source}${env}`,
    `  data:          ${c.data_dir}`,
    ...(p.tls?.caFingerprint
      ? [`  TLS CA:        ${c.data_dir}/tls/ca.crt (also at ${c.public_url}/ca)`, `  CA SHA-256:    ${p.tls.caFingerprint}`, '', (p.tls.caPem ?? '').trimEnd()]
      : []),
    `  admin API:     ${c.public_url}/api/v1/nodes  (Authorization: Bearer <admin token>)`,
    ...(p.admin.file ? [`  admin token:   kept in ${c.database.url ? `the database (a copy in ${p.admin.file})` : p.admin.file}`] : []),
    '',
    'Boot Talos nodes with these kernel args:',
    `  talos.config=${c.public_url}/config?uuid=\${uuid}&mac=\${mac}`,
    `  talos.config.oauth.client_id=${c.node_clients[0]?.client_id ?? 'talos-node'}`,
    '  talos.config.oauth.extra_variable=uuid',
    '  talos.config.oauth.extra_variable=mac',
    '',
    ...(p.demo
      ? [
          `DEVELOPMENT MODE (the demo: ${p.envSettings.length ? 'asked for with --demo' : 'no config file and no TALOS_GATE_* settings'}): embedded test IdP and a`,
          '  throwaway Talos CA. Never use this for real clusters; give --config for a real gate.',
          `  web page:      ${c.public_url}/  (sign in as "Ada Admin" to approve machines)`,
          `  test IdP:      ${p.demo.idp.issuer}  (users: Ada Admin, Otto Operator, Vera Viewer)`,
          `  stop:          Ctrl-C; to start over, delete ${c.data_dir}`,
          '',
        ]
      : []),
    ...(!p.demo && !c.oidc.issuer_url
      ? ['No IdP (oidc.issuer_url is not set): no web sign-in and no talosctl logins; approve machines with the admin API.', '']
      : []),
    `Try it without hardware:  ${selfCommand()} simulate-node --server ${c.public_url}${p.tls?.caFingerprint ? ` --server-ca ${c.data_dir}/tls/ca.crt` : ''}`,
    '',
  ];
  return `${lines.join('\n')}\n`;
}

/** workers > 1: the primary prepares data_dir once, then forks the HTTP workers and replaces any that dies. */
async function runPrimary(configFile: string | undefined, prepared: PreparedGate): Promise<void> {
  const workers = prepared.config.workers;
  let stopping = false;
  const fork = (maintenance: boolean) => cluster.fork({ [MAINTAINER_ENV]: maintenance ? '1' : '0' });
  cluster.setupPrimary({ args: ['serve', ...(configFile ? ['--config', configFile] : [])] });
  const maintainer = new Set<number>();
  const first = fork(true);
  maintainer.add(first.id);
  for (let i = 1; i < workers; i++) fork(false);
  let listening = 0;
  cluster.on('listening', () => {
    if (++listening === workers) {
      const proto = prepared.tls ? 'https' : 'http';
      process.stdout.write(banner(prepared, `${proto}://${prepared.config.listen}`, workers));
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    process.stderr.write(`talos-gate: worker ${worker.process.pid} exited (${signal ?? code}); starting another\n`);
    const next = fork(maintainer.has(worker.id));
    if (maintainer.has(worker.id)) maintainer.add(next.id);
  });
  const stop = () => {
    stopping = true;
    const alive = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
    let left = alive.length;
    if (left === 0) process.exit(0);
    for (const w of alive) {
      w.once('exit', () => {
        if (--left === 0) process.exit(0);
      });
      w.process.kill('SIGTERM');
    }
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('run the gate; with no config file and no TALOS_GATE_* settings, the demo')
    .option('-c, --config <file>', 'YAML config file (see config.example.yaml); TALOS_GATE_* env vars override its keys')
    .option('--demo', 'run the demo even with TALOS_GATE_* settings (e.g. TALOS_GATE_LISTEN for another port)')
    .action(async (opts: { config?: string; demo?: boolean }) => {
      let prepared: PreparedGate | undefined;
      if (cluster.isPrimary) {
        prepared = await prepareGate(opts.config, process.env, opts.demo ? { demo: true } : {});
        if (prepared.config.workers > 1) {
          await runPrimary(opts.config, prepared);
          return;
        }
      }
      const gate = await startGate(opts.config, process.env, {
        runMaintenance: cluster.isPrimary || process.env[MAINTAINER_ENV] === '1',
        ...(prepared ? { prepared } : {}),
      });
      const stop = (signal: string) => {
        gate.app.log.info(`${signal}: closing`);
        gate.close().then(
          () => process.exit(0),
          (e: unknown) => {
            gate.app.log.error({ err: e }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      // after the handlers: whoever reads the banner may stop the gate at once
      if (cluster.isPrimary) process.stdout.write(banner(gate.prepared, gate.url, 1));
    });
}
