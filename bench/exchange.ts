import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newKeyPair } from '../server/pki/fresh-keys.js';
import { closedLoop, type LoadResult } from './load.js';

// Exchange throughput: C clients exchanging real ID tokens (pre-minted by the oidc-provider IdP)
// for certificates, with their own public keys or with keys the server makes; with talos.signer
// talos-api only the latter (Talos makes the key, and the gate asks apid for every certificate).
// Several servers (the gate on each backend, the Go anchor) are measured variant by variant, one
// after the other, so each variant's ratio compares runs seconds apart on the same machine.

/** A server that answers POST /exchange: the gate, or the Go anchor. */
export interface ExchangeTarget {
  name: string;
  url: string;
  ca: string;
  cpuSeconds(): number;
  /** Node servers: each process's main-thread CPU seconds, by pid (the busiest one shows whether that thread is the limit). */
  mainThreadCpuSeconds?(): Map<number, number>;
  /** Peak resident memory of all its processes, MiB. */
  peakRssMiB(): number;
  /** Where its threads are, written to file (bench/gate-process.ts nativeStacksOf), when it has processes to look at. */
  nativeStacks?(file: string): string;
}

export interface ExchangeRun extends LoadResult {
  variant: string;
  target: string;
  /** Which round of the variant (1, 2, …): each round measures every target once, one after the other. */
  round: number;
  cores_used: number;
  /** Node servers: the busiest main thread's share of a core (1: the server's event loop was the limit). */
  main_thread_cores?: number;
  /** The load generator's cores in the same run (this process): with the server's, how much of the machine was busy. */
  load_generator_cores: number;
  /** The server's peak RSS so far (all its processes): memory per worker is this over the workers. */
  peak_rss_mib: number;
  /** CPU time per exchange: on a busy machine steadier than the rate, which is what the server got of the cores. */
  cpu_ms_per_exchange: number;
}

export async function exchangeThroughput(
  targets: ExchangeTarget[],
  tokens: { alg: string; token: string }[],
  concurrency: number,
  durationMs: number,
  /**
   * Load before measuring, per server and variant, so the numbers are of the servers' optimized code,
   * not their first requests: V8 optimizes a function only after thousands of calls, and a gate
   * measured after 0.5 s of load still ran partly unoptimized (its first 5 s round cost 0.76 ms of
   * CPU per exchange, the next ones 0.41–0.46 ms).
   */
  warmupMs: number,
  /** The gate's signer: with talos-api no client sends a key. */
  signer: 'ca' | 'talos-api' = 'ca',
  /** Which of client keys (true) and server-made keys (false) to measure; with talos-api only the latter. */
  keyModes: boolean[] = signer === 'ca' ? [true, false] : [false],
  /** Rounds per variant: a machine whose speed drifts is compared round by round (bench --rounds). */
  rounds = 1,
): Promise<ExchangeRun[]> {
  const publicKeys = Array.from({ length: concurrency }, () =>
    newKeyPair('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string,
  );
  const runs: ExchangeRun[] = [];
  const load = (target: ExchangeTarget, token: string, clientKeys: boolean, ms: number) =>
    closedLoop({
      concurrency,
      durationMs: ms,
      ca: target.ca,
      send: (client) => ({
        url: `${target.url}/exchange`,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(clientKeys ? { public_key: publicKeys[client] } : {}),
      }),
    });
  for (const target of targets) for (const t of tokens) for (const clientKeys of keyModes) await load(target, t.token, clientKeys, warmupMs);
  for (const t of tokens) {
    for (const clientKeys of keyModes) {
      const variant = signer === 'talos-api' ? `${t.alg}, talos-api (Talos key)` : `${t.alg}, ${clientKeys ? 'client key' : 'server key'}`;
      for (let round = 1; round <= rounds; round++) for (const target of targets) {
        const cpu = target.cpuSeconds();
        const own = process.cpuUsage();
        const mainBefore = target.mainThreadCpuSeconds?.();
        const start = Date.now();
        const r = await load(target, t.token, clientKeys, durationMs);
        // requests that got no answer at all: say where the server's threads are, while they are still there
        if (r.statuses.timeout && target.nativeStacks) {
          const file = join(tmpdir(), `talos-gate-bench-unanswered-${Date.now()}.txt`);
          process.stderr.write(`bench: ${target.name} left ${r.statuses.timeout} requests of ${variant} unanswered; ${target.nativeStacks(file)}\n`);
        }
        const elapsed = (Date.now() - start) / 1000;
        const cores = (target.cpuSeconds() - cpu) / elapsed;
        const used = process.cpuUsage(own);
        const mainAfter = target.mainThreadCpuSeconds?.();
        const mainCores = mainBefore && mainAfter ? Math.max(0, ...[...mainAfter].map(([p, c]) => (c - (mainBefore.get(p) ?? c)) / elapsed)) : undefined;
        const loadCores = Math.round(((used.user + used.system) / 1e6 / elapsed) * 100) / 100;
        runs.push({ ...r, variant, target: target.name, round, cores_used: Math.round(cores * 100) / 100, ...(mainCores !== undefined ? { main_thread_cores: Math.round(mainCores * 100) / 100 } : {}), load_generator_cores: loadCores, cpu_ms_per_exchange: Math.round((cores * 1000 * 1000) / Math.max(r.per_second, 1)) / 1000, peak_rss_mib: Math.round(target.peakRssMiB()) });
      }
    }
  }
  return runs;
}
