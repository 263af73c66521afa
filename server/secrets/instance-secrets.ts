import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Storage } from '../storage/storage.js';
import { openSecret, sealSecret } from './sealing.js';

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

/** With PostgreSQL: rows of instance_secrets; values pass through sealing.ts. */
export class DatabaseSecrets implements SecretPlace {
  readonly where = 'the database (instance_secrets)';
  /** The stored form last read per name: replace() compares with it. */
  private readonly stored = new Map<string, Buffer>();

  constructor(
    private readonly storage: Storage,
    private readonly now: () => number = Date.now,
  ) {}

  async get(name: string, make: () => string): Promise<string> {
    const row = await this.storage.instanceSecret(name, sealSecret(Buffer.from(make(), 'utf8')), this.now());
    this.stored.set(name, row.value);
    return openSecret(row.value).toString('utf8');
  }

  async replace(name: string, value: string): Promise<string> {
    const expected = this.stored.get(name);
    if (!expected) throw new Error(`secrets: ${name} replaced before it was read`);
    const sealed = sealSecret(Buffer.from(value, 'utf8'));
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

/** 32 random bytes, hex: the form of the cookie secret and the generated admin token. */
export function randomSecret(): string {
  return randomBytes(32).toString('hex');
}
