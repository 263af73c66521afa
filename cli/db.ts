// `talos-gate db …`: work on the gate's database itself, with the config the gate runs with.
import type { Command } from 'commander';
import { loadConfig } from '../server/config/load.js';
import { UsageError } from './connection.js';
import { reencrypt } from '../server/secrets/reencrypt.js';
import { sealedBoxFor } from '../server/secrets/system-secret.js';
import { openStorage } from '../server/storage/open.js';

export function dbCommand(program: Command): void {
  const db = program.command('db').description("the gate's database: re-encryption (with the gate's config)");
  db.command('reencrypt')
    .description('seal every stored secret with the first system secret (secrets.system), and seal plaintext values from before secrets.system; online and resumable')
    .option('-c, --config <file>', 'the config the gate runs with (TALOS_GATE_* env vars apply as for serve)')
    .option('--batch <n>', 'values read and written per batch', '50')
    .addHelpText(
      'after',
      `
Rotation: put the new secret first in secrets.system (keep the old after it), restart the gates,
run this, then drop the old secret. Safe while gates run; run it again if it was cut short.
Exit codes: 0 every value is under the first secret; 1 some values could not be opened (named);
2 config error.`,
    )
    .action(async (o: { config?: string; batch: string }) => {
      const config = loadConfig(o.config);
      const box = sealedBoxFor(config);
      const batch = Number(o.batch);
      if (!Number.isInteger(batch) || batch < 1 || batch > 10_000) throw new UsageError('--batch must be a whole number from 1 to 10000');
      const storage = await openStorage(config, { box });
      try {
        const report = await reencrypt(storage, box, { batch });
        let unreadable = 0;
        for (const [name, c] of Object.entries(report)) {
          process.stdout.write(
            `${name}: ${c.scanned} scanned, ${c.current} already current, ${c.resealed} re-sealed, ${c.sealed} plaintext sealed, ${c.changedMeanwhile} changed meanwhile, ${c.unreadable.length} unreadable\n`,
          );
          for (const u of c.unreadable) process.stderr.write(`  ${u.problem}\n`);
          unreadable += c.unreadable.length;
        }
        process.stdout.write(`all values are sealed with key id ${box.primaryKeyId}${unreadable ? `, except ${unreadable} that could not be opened` : ''}\n`);
        if (unreadable > 0) process.exitCode = 1;
      } finally {
        await storage.close();
      }
    });
}
