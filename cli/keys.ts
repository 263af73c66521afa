import type { Command } from 'commander';
import { loadConfig } from '../server/config/load.js';
import { retiredKeys, rotateSigningKey, signerOf } from '../server/operators/signing-keys.js';
import { openStorage } from '../server/storage/open.js';
import type { Storage } from '../server/storage/storage.js';
import { UsageError } from './connection.js';

// `talos-gate keys …`: the gate-token signing keys (docs/ha.md, "Signing keys"). Server-side like
// `serve`: it reads the gate's config file and works on its database directly, so it runs where
// the gate runs; running instances pick the change up within 10 s (RING_REFRESH_MS).

async function withStorage<T>(configFile: string | undefined, fn: (s: Storage, accessTokenTtlMs: number) => Promise<T>): Promise<T> {
  const config = loadConfig(configFile, process.env);
  const storage = await openStorage(config);
  try {
    return await fn(storage, config.operator.access_token_ttl);
  } finally {
    await storage.close();
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

export function keysCommand(program: Command): void {
  const keys = program.command('keys').description("the gate-token signing keys (in the gate's database)");
  keys
    .command('list')
    .description('every key: when made, when it signs, which one signs now')
    .option('-c, --config <file>', 'the gate config file')
    .action(async (o: { config?: string }) => {
      await withStorage(o.config, async (s, ttl) => {
        const now = Date.now();
        const all = await s.listSigningKeys();
        const signer = signerOf(all, now);
        const retired = new Set(retiredKeys(all, now, ttl).map((k) => k.kid));
        for (const k of all) {
          const state = k.kid === signer?.kid ? 'signing' : k.activatesAt > now ? `published, signs from ${iso(k.activatesAt)}` : retired.has(k.kid) ? 'retired (deleted at the next maintenance)' : 'verifying until its tokens expire';
          process.stdout.write(`${k.kid}  created ${iso(k.createdAt)}  ${state}\n`);
        }
      });
    });
  keys
    .command('rotate')
    .description('make a new key: published now, signing 6 minutes later (--now: at once)')
    .option('-c, --config <file>', 'the gate config file')
    .option('--now', 'sign with it at once (a leaked key); then `keys retire` the old one')
    .action(async (o: { config?: string; now?: boolean }) => {
      await withStorage(o.config, async (s) => {
        const now = Date.now();
        const key = await rotateSigningKey(s, now, o.now ? { immediately: true } : {});
        if (!key) throw new UsageError('another key was made at the same moment; see `talos-gate keys list`');
        process.stdout.write(`${key.kid}  signs from ${iso(key.activatesAt)}\n`);
      });
    });
  keys
    .command('retire')
    .description('delete a key now: tokens it signed are refused at once (not the one that signs)')
    .argument('<kid>', 'the key, as `keys list` shows it')
    .option('-c, --config <file>', 'the gate config file')
    // a kid is a base64url thumbprint: one in 64 begins with '-', which a parser takes for an option
    // (POSIX utility syntax guideline 10: operands after `--`)
    .addHelpText('after', "\nA kid that begins with '-' goes after --:\n  talos-gate keys retire --config FILE -- -AbC…")
    .showHelpAfterError("(a kid that begins with '-' goes after --: talos-gate keys retire --config FILE -- KID)")
    .action(async (kid: string, o: { config?: string }) => {
      await withStorage(o.config, async (s) => {
        const all = await s.listSigningKeys();
        if (!all.some((k) => k.kid === kid)) throw new UsageError(`no signing key ${kid}; see \`talos-gate keys list\``);
        if (signerOf(all, Date.now())?.kid === kid) throw new UsageError(`${kid} signs now: \`talos-gate keys rotate --now\` first`);
        await s.deleteSigningKey(kid);
        process.stdout.write(`${kid} deleted\n`);
      });
    });
}
