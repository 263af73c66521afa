// Where the system secrets come from: secrets.system (the config file, or TALOS_GATE_SECRETS_SYSTEM
// as "new,old"), or secrets.system_file, one secret a line, readable by the gate's user alone. The
// demo makes one in data_dir; a real gate without one does not start (Ory Hydra refuses to start
// without its system secret too), since a database it writes in plaintext is what this guards against.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config/schema-kit.js';
import { HOW_TO_MAKE_A_SECRET, weakSecretReason } from '../config/secret-strength.js';
import { SealedBox } from './sealed-box.js';

/** A secrets file is a few lines; anything bigger is the wrong file. */
const MAX_FILE_BYTES = 64 * 1024;

/** The problem with a key, for ConfigError: key path and what is wrong (never the secret itself). */
export class SecretConfigProblem extends Error {
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(`${key}: ${problem}`);
  }
}

export const HOW_TO_SET_A_SYSTEM_SECRET =
  `${HOW_TO_MAKE_A_SECRET} and set it as secrets.system, in a file named by secrets.system_file (mode 0600), or in TALOS_GATE_SECRETS_SYSTEM`;

/** Checks each secret (strong enough, not a placeholder, not listed twice); throws SecretConfigProblem. */
export function checkSystemSecrets(secrets: readonly string[], key: (i: number) => string): void {
  const seen = new Set<string>();
  secrets.forEach((s, i) => {
    const weak = weakSecretReason(s);
    if (weak) throw new SecretConfigProblem(key(i), weak);
    if (seen.has(s)) throw new SecretConfigProblem(key(i), 'is listed twice');
    seen.add(s);
  });
}

/**
 * The secrets of secrets.system_file: one a line, blank lines and lines starting with # skipped. The
 * file must not be readable or writable by group or others (like ssh keys), or it is refused.
 */
export function readSystemSecretFile(file: string): string[] {
  const key = 'secrets.system_file';
  if (!existsSync(file)) throw new SecretConfigProblem(key, `file ${file} not found`);
  const st = statSync(file);
  if (!st.isFile()) throw new SecretConfigProblem(key, `${file} is not a file`);
  if ((st.mode & 0o077) !== 0) {
    throw new SecretConfigProblem(key, `${file} is readable or writable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 ${file}`);
  }
  if (st.size > MAX_FILE_BYTES) throw new SecretConfigProblem(key, `${file} is bigger than ${MAX_FILE_BYTES} bytes: not a secrets file`);
  const secrets = readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (secrets.length === 0) throw new SecretConfigProblem(key, `${file} holds no secret: ${HOW_TO_MAKE_A_SECRET}`);
  checkSystemSecrets(secrets, (i) => `${key} (${file}, secret ${i + 1})`);
  return secrets;
}

/** The demo's secret: made once in data_dir/system-secret (0600), like its admin token. */
export function demoSystemSecret(dataDir: string): string {
  const file = join(dataDir, 'system-secret');
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  return readSystemSecretFile(file)[0] as string;
}

/** The box that seals the database's secrets: the config's system secrets, which a real gate must have. */
export function sealedBoxFor(config: { source: string; secrets: { system: string[] } }): SealedBox {
  if (config.secrets.system.length === 0) {
    throw new ConfigError(config.source, 'secrets.system', `is required: it seals the cluster secrets the database keeps (machine configs, IdP tokens); ${HOW_TO_SET_A_SYSTEM_SECRET}`);
  }
  return new SealedBox(config.secrets.system);
}
