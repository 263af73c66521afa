import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ensureSelfSignedTls } from '../server/tls/self-signed.js';
import { freePort } from '../test/helpers/gate.js';
import { cpuOf, procStatus } from './gate-process.js';
import type { ExchangeTarget } from './exchange.js';

// Starts the Node floor (node-floor/server.ts) as its own process, with TLS from the gate's
// self-signed mode and the IdP's JWKS, so its CPU is measured apart like the gate's and Go's.

export async function startNodeFloor(dir: string, opts: { jwksUrl: string; caKeyPath: string }): Promise<ExchangeTarget & { stop(): Promise<void> }> {
  const tls = ensureSelfSignedTls(dir, ['127.0.0.1']);
  const port = await freePort();
  const child = spawn(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), join(import.meta.dirname, 'node-floor', 'server.ts'),
      '--port', String(port), '--cert', join(dir, 'tls', 'server.crt'), '--key', join(dir, 'tls', 'server.key'), '--jwks', opts.jwksUrl, '--ca-key', opts.caKeyPath],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening on')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`node floor exited with ${code}: ${out}`)));
  });
  const pid = child.pid as number;
  return {
    name: 'node floor',
    url: `https://127.0.0.1:${port}`,
    ca: tls.caPem as string,
    cpuSeconds: () => cpuOf(pid),
    mainThreadCpuSeconds: () => new Map([[pid, cpuOf(pid, true)]]),
    peakRssMiB: () => procStatus(pid, 'VmHWM'),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
