import { randomBytes } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { request } from '../cli/http.js';
import { packageRoot } from '../server/paths.js';

// The gate under test runs as its own process (`talos-gate serve --config`), so its CPU and memory
// are measured apart from the load generator.

/** How long a stopped gate may take to close its connections and database before it is killed. */
const STOP_GRACE_MS = 15_000;

export interface GateProcess {
  url: string;
  ca: string;
  adminToken: string;
  dataDir: string;
  child: ChildProcess;
  /** CPU seconds (user + system) the gate has used so far. */
  cpuSeconds(): number;
  /** Each process's main-thread CPU seconds so far, by pid: a Node process serves HTTP on that one thread. */
  mainThreadCpuSeconds(): Map<number, number>;
  /** Peak resident memory in MiB. */
  peakRssMiB(): number;
  rssMiB(): number;
  /** Every thread's native stack of each gate process (gdb), written to a file: for a gate that stopped answering. */
  nativeStacks(file: string): string;
  stop(): Promise<void>;
}

/**
 * Where each thread of each process is (gdb attached from outside, one process after the other),
 * written to file; what happened instead when gdb is missing or fails. A gate that stops answering
 * while idle is stuck on a lock or a system call, and this says which.
 */
export function nativeStacksOf(pids: number[], file: string): string {
  const out: string[] = [];
  for (const pid of pids) {
    const gdb = spawnSync('gdb', ['-p', String(pid), '-batch', '-ex', 'info threads', '-ex', 'thread apply all bt 40'], { encoding: 'utf8', timeout: 60_000 });
    if (gdb.error) return `no native stacks: ${gdb.error.message} (install gdb)`;
    out.push(`== pid ${pid}`, gdb.stdout, gdb.stderr);
  }
  writeFileSync(file, `${out.join('\n')}\n`);
  return `native stacks in ${file}`;
}

/** A /proc/PID/status field in MiB (VmHWM, VmRSS), 0 once the process has ended. */
export function procStatus(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0; // the process ended meanwhile
  }
}

/** The gate's processes: the one started and, with workers, its children. */
function processTree(root: number): number[] {
  const pids = [root];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
      if (ppid === root) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** CPU seconds (user + system) a process has used so far; with mainThread, its main thread's only. */
export function cpuOf(pid: number, mainThread = false): number {
  try {
    const f = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

export async function startGateProcess(
  dir: string,
  port: number,
  config: Record<string, unknown>,
  /** Extra Node.js flags for the gate, e.g. --cpu-prof to see where its time goes. */
  nodeArgs: string[] = [],
  /** Which checkout's gate to run: this one, or another (bench --compare), with its own node_modules. */
  root: string = packageRoot,
): Promise<GateProcess> {
  mkdirSync(dir, { recursive: true });
  const dataDir = join(dir, 'data');
  const adminToken = 'bench-admin-token-0123456789';
  const file = join(dir, 'gate.yaml');
  writeFileSync(
    file,
    stringify({ listen: `127.0.0.1:${port}`, data_dir: dataDir, admin_token: adminToken, secrets: { system: [randomBytes(32).toString('hex')] }, log_level: 'warn', audit_log: 'off', ...config }),
  );
  // as an operator starts it: through the launcher, which sizes libuv's thread pool first; a
  // checkout from before the launcher (bench --compare) runs its sources through tsx
  const launcher = join(root, 'bin', 'talos-gate.cjs');
  const entry = existsSync(launcher) ? [launcher] : ['--import', import.meta.resolve('tsx'), join(root, 'cli', 'main.ts')];
  const child = spawn(process.execPath, [...nodeArgs, ...entry, 'serve', '--config', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      if (!out.includes('Try it without hardware')) return;
      // from here on the gate's stdout (access and audit lines at log_level info) is read and dropped
      child.stdout?.off('data', onData);
      child.stdout?.resume();
      resolve();
    };
    child.stdout?.on('data', onData);
    child.on('exit', (code) => reject(new Error(`gate exited with ${code}: ${out}`)));
  });
  const url = `https://127.0.0.1:${port}`;
  const ca = readFileSync(join(dataDir, 'tls', 'ca.crt'), 'utf8');
  if ((await request(`${url}/healthz`, { ca })).status !== 200) throw new Error('gate not healthy');
  const pid = child.pid as number;
  return {
    url,
    ca,
    adminToken,
    dataDir,
    child,
    cpuSeconds: () => processTree(pid).reduce((sum, p) => sum + cpuOf(p), 0),
    mainThreadCpuSeconds: () => new Map(processTree(pid).map((p) => [p, cpuOf(p, true)])),
    peakRssMiB: () => processTree(pid).reduce((sum, p) => sum + procStatus(p, 'VmHWM'), 0),
    rssMiB: () => processTree(pid).reduce((sum, p) => sum + procStatus(p, 'VmRSS'), 0),
    nativeStacks: (file) => nativeStacksOf(processTree(pid), file),
    // never waits forever: a gate that exited already (a crash) has no 'exit' left to emit, and one
    // whose shutdown hangs is killed, so the bench goes on and says what it measured
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => {
          process.stderr.write(`bench: gate ${pid} still running ${STOP_GRACE_MS} ms after SIGTERM; killing it\n`);
          child.kill('SIGKILL');
        }, STOP_GRACE_MS);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
