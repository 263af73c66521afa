import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../server/paths.js';

export interface CliRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when stderr or stdout has printed something matching re. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exit: Promise<number | null>;
}

/** Runs `talos-gate ARGS` from source as a real process, as a user would: through bin/ (which runs the sources through tsx, so any cwd works). */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): CliRun {
  const child = spawn(process.execPath, [join(packageRoot, 'bin', 'talos-gate.cjs'), ...args], {
    cwd: opts.cwd ?? packageRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    waiters.forEach((w) => w());
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    waiters.forEach((w) => w());
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exit,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = (out + err).match(re);
          if (m) {
            clearTimeout(timer);
            resolve(m);
          }
        };
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${out}\n${err}`)), timeoutMs);
        waiters.push(check);
        check();
      });
    },
  };
}
