import type { Command } from 'commander';
import { startGate } from '../server/main.js';

export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('run the gate (embedded defaults when --config is not given)')
    .option('-c, --config <file>', 'YAML config file (see config.example.yaml); TALOS_GATE_* env vars override its keys')
    .action(async (opts: { config?: string }) => {
      const gate = await startGate(opts.config);
      const c = gate.config;
      const lines = [
        '',
        `talos-gate is listening on ${gate.url} (public URL ${c.public_url})`,
        `  config:        ${c.source}`,
        `  data:          ${c.data_dir}`,
        ...(gate.tls?.caFingerprint
          ? [`  TLS CA:        ${c.data_dir}/tls/ca.crt`, `  CA SHA-256:    ${gate.tls.caFingerprint}`]
          : []),
        `  admin API:     ${c.public_url}/api/v1/nodes  (Authorization: Bearer <admin token>)`,
        '',
        'Boot Talos nodes with these kernel args:',
        `  talos.config=${c.public_url}/config?uuid=\${uuid}&mac=\${mac}`,
        `  talos.config.oauth.client_id=${c.node_clients[0]?.client_id ?? 'talos-node'}`,
        '  talos.config.oauth.extra_variable=uuid',
        '  talos.config.oauth.extra_variable=mac',
        '',
        ...(gate.demo
          ? [
              'DEVELOPMENT MODE: embedded test IdP and a throwaway Talos CA. Never use this for real clusters.',
              `  web page:      ${c.public_url}/  (sign in as "Ada Admin" to approve machines)`,
              `  test IdP:      ${gate.demo.idp.issuer}  (users: Ada Admin, Otto Operator, Vera Viewer)`,
              '',
            ]
          : []),
        `Try it without hardware:  talos-gate simulate-node --server ${c.public_url}${gate.tls?.caFingerprint ? ` --server-ca ${c.data_dir}/tls/ca.crt` : ''}`,
        '',
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
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
    });
}
