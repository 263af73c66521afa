import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from '../cli/http.js';

// The Go server the exchange is measured against (go-anchor/main.go: standard library only, what a
// user would run instead of the gate). Built with the machine's Go (Debian: golang-go) on first use
// and kept under the temp folder keyed by its source and the Go version, as test/helpers/go-x509.ts
// does; no Go, no anchor: the bench says so and measures the gate alone.

const execFileP = promisify(execFile);
const srcDir = join(import.meta.dirname, 'go-anchor');

export interface GoAnchor {
  url: string;
  ca: string;
  cpuSeconds(): number;
  peakRssMiB(): number;
  stop(): Promise<void>;
}

function goEnv(): NodeJS.ProcessEnv {
  const base = join(tmpdir(), 'talos-gate-go');
  // never the network, never the user's Go setup
  return {
    ...process.env,
    GOCACHE: process.env.GOCACHE ?? join(base, 'cache'),
    GOPATH: process.env.GOPATH ?? join(base, 'gopath'),
    GOPROXY: 'off',
    GOSUMDB: 'off',
    GO111MODULE: 'on',
    GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0',
  };
}

/** The anchor's binary, or why there is none (Go missing, or the build failed). */
export async function goAnchorBinary(): Promise<{ bin: string } | { missing: string }> {
  const go = process.env.GO ?? 'go';
  let version: string;
  try {
    version = (await execFileP(go, ['version'], { env: goEnv() })).stdout.trim();
  } catch (e) {
    return { missing: `\`${go} version\` failed (${(e as Error).message.split('\n')[0]}): install Go (Debian: apt-get install golang-go) to measure the Go anchor` };
  }
  const hash = createHash('sha256');
  for (const f of ['main.go', 'go.mod']) hash.update(readFileSync(join(srcDir, f)));
  hash.update(version);
  const outDir = join(tmpdir(), `talos-gate-go-anchor-${hash.digest('hex').slice(0, 16)}`);
  const bin = join(outDir, 'go-anchor');
  if (existsSync(bin)) return { bin };
  mkdirSync(outDir, { recursive: true });
  const tmp = join(outDir, `go-anchor.${process.pid}.${Date.now()}`);
  try {
    await execFileP(go, ['build', '-trimpath', '-o', tmp, '.'], { cwd: srcDir, env: goEnv(), timeout: 300_000 });
  } catch (e) {
    rmSync(tmp, { force: true });
    const err = e as Error & { stderr?: string };
    return { missing: `building bench/go-anchor failed: ${err.message}\n${err.stderr ?? ''}` };
  }
  renameSync(tmp, bin);
  return { bin };
}

function statOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  } catch {
    return [];
  }
}

export async function startGoAnchor(
  bin: string,
  dir: string,
  opts: { issuer: string; audiences: string[]; caCert: string; caKey: string; claim: string; value: string; roles: string[]; endpoints: string[] },
): Promise<GoAnchor> {
  mkdirSync(dir, { recursive: true });
  const tlsCa = join(dir, 'go-anchor-tls.crt');
  const child: ChildProcess = spawn(
    bin,
    [
      '-listen', '127.0.0.1:0', '-issuer', opts.issuer, '-audiences', opts.audiences.join(','),
      '-ca-cert', opts.caCert, '-ca-key', opts.caKey, '-tls-ca-out', tlsCa,
      '-claim', opts.claim, '-value', opts.value, '-roles', opts.roles.join(','), '-endpoints', opts.endpoints.join(','),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const addr = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1] as string);
    });
    child.on('exit', (code) => reject(new Error(`go-anchor exited with ${code}: ${out}`)));
  });
  const url = `https://${addr}`;
  const ca = readFileSync(tlsCa, 'utf8');
  if ((await request(`${url}/healthz`, { ca })).status !== 200) throw new Error('go-anchor not healthy');
  const pid = child.pid as number;
  return {
    url,
    ca,
    cpuSeconds: () => {
      const f = statOf(pid);
      return (Number(f[11] ?? 0) + Number(f[12] ?? 0)) / 100;
    },
    peakRssMiB: () => {
      try {
        const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        return m ? Number(m[1]) / 1024 : 0;
      } catch {
        return 0;
      }
    },
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
