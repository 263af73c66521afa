import { resolve } from 'node:path';
import type { Command } from 'commander';
import { createIssuingCa } from '../server/pki/issuing-ca.js';

export function caCommand(program: Command): void {
  const ca = program.command('ca').description('certificate authorities the gate uses');
  ca.command('init')
    .description('create a dedicated Ed25519 CA for talosctl client certificates (the gate then never holds the cluster CA key)')
    .option('--out <dir>', 'where to write issuing-ca.crt and issuing-ca.key (0600)', './talos-gate-data/issuing-ca')
    .option('--name <cn>', 'common name of the CA', 'talos-gate issuing CA')
    .option('--days <n>', 'validity in days', (v) => Number.parseInt(v, 10), 3650)
    .action((opts: { out: string; name: string; days: number }) => {
      if (!Number.isInteger(opts.days) || opts.days < 1) throw new Error('--days must be a positive whole number');
      const { certPath, keyPath } = createIssuingCa(resolve(opts.out), { commonName: opts.name, days: opts.days });
      process.stdout.write(
        [
          `wrote ${certPath}`,
          `wrote ${keyPath} (0600)`,
          '',
          'Add to the gate config:',
          'talos:',
          '  ca_cert: /path/to/os-ca.crt        # the cluster CA certificate only: talosctl trusts it',
          `  issuing_ca_cert: ${certPath}`,
          `  issuing_ca_key: ${keyPath}`,
          '',
          'Every machine config the gate serves then lists this CA in machine.acceptedCAs (Talos 1.7+).',
          'For nodes enrolled elsewhere, add it to their config yourself:',
          '  machine:',
          '    acceptedCAs:',
          `      - crt: <base64 of ${certPath}>`,
          '',
        ].join('\n'),
      );
    });
}
