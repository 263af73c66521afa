import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { OAuthFlowError, TalosNode, talosConfigUrl } from './talos-node.js';

interface SimulateOptions {
  server: string;
  serverCa?: string;
  uuid: string;
  mac: string;
  serial?: string;
  hostname?: string;
  clientId: string;
  clientSecret?: string;
}

function randomMac(): string {
  return `52:54:00:${[...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
}

export function simulateNodeCommand(program: Command): void {
  program
    .command('simulate-node')
    .description('behave like a booting Talos metal node: device flow, console code and QR, config download')
    .requiredOption('-s, --server <url>', 'the gate, as in talos.config (e.g. https://gate.example.com)')
    .option('--server-ca <file>', "PEM of the CA that signed the gate's certificate (self-signed mode prints it)")
    .option('--uuid <uuid>', 'SMBIOS uuid the node reports (default: random)', randomUUID())
    .option('--mac <mac>', 'MAC address the node reports (default: random 52:54:00:…)', randomMac())
    .option('--serial <serial>', 'also send serial as talos.config.oauth.extra_variable=serial')
    .option('--hostname <name>', 'also send hostname as talos.config.oauth.extra_variable=hostname')
    .option('--client-id <id>', 'talos.config.oauth.client_id', 'talos-node')
    .option('--client-secret <secret>', 'talos.config.oauth.client_secret, when the gate requires one')
    .addHelpText(
      'after',
      '\nExit codes: 0 config downloaded, 1 the gate refused (denied, expired, unauthorized), 2 bad usage or unreachable gate.',
    )
    .action(async (opts: SimulateOptions) => {
      const variables: Record<string, string> = { uuid: opts.uuid, mac: opts.mac.toLowerCase() };
      if (opts.serial !== undefined) variables.serial = opts.serial;
      if (opts.hostname !== undefined) variables.hostname = opts.hostname;
      const node = new TalosNode({
        configUrl: talosConfigUrl(opts.server, variables),
        clientId: opts.clientId,
        clientSecret: opts.clientSecret,
        variables,
        ca: opts.serverCa ? readFileSync(opts.serverCa, 'utf8') : undefined,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stderr.write(`simulated node uuid=${variables.uuid} mac=${variables.mac}\n`);
      try {
        const { config } = await node.run();
        process.stdout.write(config);
      } catch (e) {
        if (e instanceof OAuthFlowError) {
          process.stderr.write(`talos-gate simulate-node: ${e.message}\n`);
          process.exitCode = 1;
          return;
        }
        throw e;
      }
    });
}
