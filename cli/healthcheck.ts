import type { Command } from 'commander';
import { ConfigError, loadConfig, type GateConfig } from '../server/config/load.js';
import { request } from './http.js';

/**
 * Where this machine reaches the gate of a config: its listen address (an unspecified address,
 * 0.0.0.0 or ::, by loopback) with https unless tls.mode is off.
 */
export function healthzUrl(config: GateConfig): string {
  const i = config.listen.lastIndexOf(':');
  const host = config.listen.slice(0, i).replace(/^\[|\]$/g, '');
  const port = config.listen.slice(i + 1);
  const local = host === '' || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `${config.tls.mode === 'off' ? 'http' : 'https'}://${local.includes(':') ? `[${local}]` : local}:${port}/healthz`;
}

export function healthcheckCommand(program: Command): void {
  program
    .command('healthcheck')
    .description("check that the gate of a config answers /healthz on its listen address (Docker HEALTHCHECK, monitoring)")
    .option('-c, --config <file>', 'the config the gate runs with (TALOS_GATE_* env vars apply as for serve)')
    .option('--timeout <seconds>', 'give up after this long', '4')
    .addHelpText(
      'after',
      "\nThe certificate is not verified: this checks the gate's own port, not the TLS set-up.\nExit codes: 0 healthy, 1 not healthy or the config cannot be read (Docker reserves 2).",
    )
    .action(async (o: { config?: string; timeout: string }) => {
      let url: string;
      try {
        url = healthzUrl(loadConfig(o.config));
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        process.stderr.write(`talos-gate healthcheck: config error: ${e.message}\n`);
        process.exitCode = 1;
        return;
      }
      try {
        const res = await request(url, { timeoutMs: Number(o.timeout) * 1000 || 4000, rejectUnauthorized: false });
        if (res.status === 200) {
          process.stdout.write(`healthy: ${url}\n`);
          return;
        }
        process.stderr.write(`talos-gate healthcheck: ${url} answered HTTP ${res.status}\n`);
      } catch (e) {
        process.stderr.write(`talos-gate healthcheck: ${url}: ${e instanceof Error ? e.message : String(e)}\n`);
      }
      process.exitCode = 1;
    });
}
