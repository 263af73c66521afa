import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Storage } from '../storage/storage.js';

// The secrets that are made once and must be the same in every process of one gate: the cookie/CSRF
// secret, the generated admin token, the self-signed TLS material. Where they live depends on the
// backend (docs/ha.md): with PostgreSQL in its instance_secrets table, so that instances on other
// machines share them; with SQLite in data_dir files as always (one machine, and the files are what
// an operator reads: `cat data_dir/admin-token`).

export interface SecretPlace {
  /** Where the secrets are kept, for messages. */
  readonly where: string;
  /** NAME's value; when there is none, make()'s is kept first. Of two processes racing one value wins and both get it. */
  get(name: string, make: () => string): Promise<string>;
  /**
   * Replaces NAME's value (a renewed certificate) unless another process replaced it since this one
   * read it; returns the value kept, which is another process's when it was first.
   */
  replace(name: string, value: string): Promise<string>;
}

/**
 * With PostgreSQL: rows of instance_secrets (sealed by the storage with secrets.system, bound
 * to their name, like every secret the database holds). A value not in the
 * database yet is first taken from `adoptFrom` (the data_dir a SQLite gate kept it in, see
 * dataDirValue), so a gate moved with `db migrate` keeps its cookies, admin token and pinned CA.
 */
export class DatabaseSecrets implements SecretPlace {
  readonly where = 'the database (instance_secrets)';
  /** The value last read per name: replace() replaces only that one. */
  private readonly stored = new Map<string, Buffer>();

  constructor(
    private readonly storage: Storage,
    private readonly now: () => number = Date.now,
    private readonly adoptFrom?: string,
  ) {}

  async get(name: string, make: () => string): Promise<string> {
    const first = (this.adoptFrom !== undefined ? dataDirValue(this.adoptFrom, name) : undefined) ?? make();
    const row = await this.storage.instanceSecret(name, Buffer.from(first, 'utf8'), this.now());
    this.stored.set(name, row.value);
    return row.value.toString('utf8');
  }

  async replace(name: string, value: string): Promise<string> {
    const expected = this.stored.get(name);
    if (!expected) throw new Error(`secrets: ${name} replaced before it was read`);
    const sealed = Buffer.from(value, 'utf8');
    if (await this.storage.replaceInstanceSecret(name, expected, sealed, this.now())) {
      this.stored.set(name, sealed);
      return value;
    }
    return this.get(name, () => value); // another instance renewed it first: use theirs
  }
}

/** With SQLite: files in data_dir (0600), NAME being the file's name. */
export class DataDirSecrets implements SecretPlace {
  constructor(private readonly dataDir: string) {}

  get where(): string {
    return this.dataDir;
  }

  async get(name: string, make: () => string): Promise<string> {
    const file = join(this.dataDir, name);
    // 'wx': of two processes creating it at once the second fails and reads the first's
    if (!existsSync(file)) {
      try {
        writeFileSync(file, `${make()}\n`, { mode: 0o600, flag: 'wx' });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    return readFileSync(file, 'utf8').trim();
  }

  async replace(name: string, value: string): Promise<string> {
    writeFileSync(join(this.dataDir, name), `${value}\n`, { mode: 0o600 });
    return value;
  }
}

/**
 * The value a SQLite gate kept in data_dir under NAME, in DatabaseSecrets' form: the cookie secret
 * and generated admin token as files of their name, the self-signed CA as tls/ca.crt with tls/ca.key
 * (a PostgreSQL instance writes only ca.crt there, so its copy is never taken for a CA). The server
 * certificate is not adopted: one is made for the names from the adopted CA.
 */
export function dataDirValue(dataDir: string, name: string): string | undefined {
  const read = (...parts: string[]) => {
    const file = join(dataDir, ...parts);
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  };
  switch (name) {
    case 'cookie-secret':
    case 'admin-token':
      return read(name)?.trim() || undefined;
    case 'tls-ca': {
      const cert = read('tls', 'ca.crt');
      const key = read('tls', 'ca.key');
      return cert && key ? JSON.stringify({ cert, key }) : undefined;
    }
    default:
      return undefined;
  }
}

/** 32 random bytes, hex: the form of the cookie secret and the generated admin token. */
export function randomSecret(): string {
  return randomBytes(32).toString('hex');
}
