import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

// Builds one of our small standard-library Go programs (the certificate judge test/helpers/go-x509/,
// the bench's Go anchor bench/go-anchor/) with the machine's Go (Debian: golang-go), keyed by its
// source and the Go version under the temp folder, so a second run reuses the binary.

const execFileP = promisify(execFile);

/** Never the network, never the user's Go setup: HOME may not be writable on CI either. */
export function goEnv(): NodeJS.ProcessEnv {
  const base = join(tmpdir(), 'talos-gate-go');
  return {
    ...process.env,
    GOCACHE: process.env.GOCACHE ?? join(base, 'cache'),
    GOPATH: process.env.GOPATH ?? join(base, 'gopath'),
    GOFLAGS: '-mod=mod',
    GOPROXY: 'off',
    GOSUMDB: 'off',
    GO111MODULE: 'on',
    GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0',
  };
}

/** Why a program could not be built: Go is missing (`goMissing`), or the build failed. */
export class GoBuildError extends Error {
  constructor(
    message: string,
    readonly goMissing: boolean,
  ) {
    super(message);
    this.name = 'GoBuildError';
  }
}

/** The binary of the program in srcDir (main.go, go.mod), built now unless one of the same source is there. */
export async function buildGoProgram(srcDir: string, name: string): Promise<string> {
  const go = process.env.GO ?? 'go';
  let version: string;
  try {
    version = (await execFileP(go, ['version'], { env: goEnv() })).stdout.trim();
  } catch (e) {
    throw new GoBuildError(`\`${go} version\` failed: ${(e as Error).message.split('\n')[0]}`, true);
  }
  const hash = createHash('sha256');
  for (const f of ['main.go', 'go.mod']) hash.update(readFileSync(join(srcDir, f)));
  hash.update(version);
  const outDir = join(tmpdir(), `talos-gate-${name}-${hash.digest('hex').slice(0, 16)}`);
  const bin = join(outDir, name);
  if (existsSync(bin)) return bin;
  mkdirSync(outDir, { recursive: true });
  // built under a private name and renamed: processes running at once never run half a binary
  const tmp = join(outDir, `${name}.${process.pid}.${Date.now()}`);
  try {
    await execFileP(go, ['build', '-trimpath', '-o', tmp, '.'], { cwd: srcDir, env: goEnv(), timeout: 300_000 });
  } catch (e) {
    rmSync(tmp, { force: true });
    const err = e as Error & { stderr?: string };
    throw new GoBuildError(`building ${name} failed: ${err.message}\n${err.stderr ?? ''}`, false);
  }
  renameSync(tmp, bin);
  return bin;
}
