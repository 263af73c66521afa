import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The package root holds migrations/ and templates/ both when run from source (tsx) and from dist/.
function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'talos-gate') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('talos-gate package root not found');
    dir = parent;
  }
}

export const packageRoot = findPackageRoot();
export const migrationsDir = join(packageRoot, 'migrations');
/** One folder of NNN_name.sql files per backend, since their SQL dialects differ. */
export const sqliteMigrationsDir = join(migrationsDir, 'sqlite');
export const postgresMigrationsDir = join(migrationsDir, 'postgres');
export const bundledTemplatesDir = join(packageRoot, 'templates');
