import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../cli/http.js';
import { buildGoProgram, GoBuildError } from '../test/helpers/go-build.js';

// The Go server the exchange is measured against (go-anchor/main.go: standard library only, what a
// user would run instead of the gate). Built with the machine's Go (Debian: golang-go) on first use
// and kept under the temp folder keyed by its source and the Go version, as test/helpers/go-x509.ts
// does; no Go, no anchor: the bench says so and measures the gate alone.

const srcDir = join(import.meta.dirname, 'go-anchor');

export interface GoAnchor {
  url: string;
  ca: string;
  cpuSeconds(): number;
  peakRssMiB(): number;
  stop(): Promise<void>;
}

/** The anchor's binary, or why there is none (Go missing, or the build failed). */
export async function goAnchorBinary(): Promise<{ bin: string } | { missing: string }> {
  try {
    return { bin: await buildGoProgram(srcDir, 'go-anchor') };
  } catch (e) {
    if (!(e instanceof GoBuildError)) throw e;
    return { missing: e.goMissing ? `${e.message}: install Go (Debian: apt-get install golang-go) to measure the Go anchor` : e.message };
  }
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
