import { existsSync, statSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { request } from '../cli/http.js';
import type { GateProcess } from './gate-process.js';
import { gateSideLatency, type GateSideLatency } from './gate-metrics.js';
import { simulateRackShare, type RackShareResult } from './simulated-rack.js';
import { Latencies, summarize, type Summary } from './stats.js';

// A rack booting at once: N nodes with Talos' request pattern (device code with uuid/mac, polls as
// Basic-then-body twins at the interval, config download), each on its own keep-alive connection as
// a Go client is, spread over worker threads (simulated-rack.ts), approved through the admin API
// while they poll.

export interface BootStormResult {
  nodes: number;
  interval_s: number;
  seconds_first_request_to_last_config: number;
  requests: number;
  requests_per_second: number;
  /** As the simulated nodes saw it: TLS handshakes and the load generator's own queueing included. */
  latency_ms: Record<string, Summary>;
  /** As the gate measured it (its /metrics histogram): from having the request to answering. */
  gate_side_latency_ms: Record<string, GateSideLatency>;
  slow_down: number;
  errors: number;
  late_nodes: number;
  approval_to_config_ms: Summary;
  peak_rss_mib: number;
  sqlite_mib: number;
  /** Cores the gate process kept busy on average (CPU seconds / wall seconds). */
  gate_cores_used: number;
  /** The same for the simulated nodes, which share the machine with the gate. */
  load_generator_cores_used: number;
  load_generator_threads: number;
}

const cpuMicros = (u: NodeJS.CpuUsage) => u.user + u.system;

type RackMessage = { ready: true } | { result: RackShareResult };

const WARM_UP_NODES = 20;

export async function bootStorm(
  gate: GateProcess,
  nodes: number,
  intervalSeconds: number,
  /** Worker threads the simulated nodes are spread over. */
  generators: number,
): Promise<BootStormResult> {
  const approvedAt = new Map<string, number>();
  let approving = true;
  const approver = (async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 4, ca: gate.ca });
    while (approving) {
      const res = await request(`${gate.url}/api/v1/nodes?status=pending`, { headers: { authorization: `Bearer ${gate.adminToken}` }, ca: gate.ca, agent });
      const pending = (JSON.parse(res.body) as { nodes: { pending: { user_code: string }[] }[] }).nodes.flatMap((n) => n.pending.map((p) => p.user_code));
      await Promise.all(
        pending.map(async (code) => {
          const r = await request(`${gate.url}/api/v1/device/approve`, {
            method: 'POST',
            headers: { authorization: `Bearer ${gate.adminToken}`, 'content-type': 'application/json' },
            body: JSON.stringify({ user_code: code, profile: 'worker' }),
            ca: gate.ca,
            agent,
          });
          if (r.status === 200) approvedAt.set(code, Date.now());
        }),
      );
      await new Promise((r) => setTimeout(r, 250));
    }
    agent.destroy();
  })();

  // A few nodes first, so the storm meets a gate that has served before (as a rack meets a running
  // gate), not code paths compiled on their first request. Their requests stay in the gate's own
  // histogram: 20 nodes of thousands.
  await simulateRackShare({ url: gate.url, ca: gate.ca, first: nodes, count: WARM_UP_NODES }, async () => {});
  const start = Date.now();
  const cpuStart = gate.cpuSeconds();
  const ownCpuStart = process.cpuUsage();

  const results = await runRackInThreads(gate, nodes, generators);
  const lat = new Latencies();
  for (const r of results) for (const [endpoint, ms] of Object.entries(r.latencies)) ms.forEach((m) => lat.add(endpoint, m));
  const configAt = new Map(results.flatMap((r) => r.configAt));
  const requests = results.reduce((a, r) => a + r.requests, 0);
  const errors = results.reduce((a, r) => a + r.serverErrors + r.failedNodes, 0);
  const slowDowns = results.reduce((a, r) => a + r.slowDowns, 0);
  approving = false;
  await approver;
  const firstRequestAt = Math.min(...results.map((r) => r.startedAt));
  const seconds = (Math.max(...configAt.values()) - firstRequestAt) / 1000;
  const gateSide = await gateSideLatency(gate, { device_code: '/device/code', token: '/token', config: '/config' });
  const delays = [...configAt].map(([code, at]) => at - (approvedAt.get(code) ?? at));
  return {
    nodes,
    interval_s: intervalSeconds,
    seconds_first_request_to_last_config: Math.round(seconds * 100) / 100,
    requests,
    requests_per_second: Math.round(requests / seconds),
    latency_ms: lat.summary(),
    gate_side_latency_ms: gateSide,
    slow_down: slowDowns,
    errors,
    late_nodes: delays.filter((d) => d > 2 * intervalSeconds * 1000).length,
    approval_to_config_ms: summarize(delays),
    peak_rss_mib: Math.round(gate.peakRssMiB()),
    gate_cores_used: Math.round(((gate.cpuSeconds() - cpuStart) / ((Date.now() - start) / 1000)) * 100) / 100,
    load_generator_threads: generators,
    load_generator_cores_used: Math.round((cpuMicros(process.cpuUsage(ownCpuStart)) / 1e6 / ((Date.now() - start) / 1000)) * 100) / 100,
    // no file on PostgreSQL
    sqlite_mib: existsSync(join(gate.dataDir, 'talos-gate.db')) ? Math.round((statSync(join(gate.dataDir, 'talos-gate.db')).size / 2 ** 20) * 100) / 100 : 0,
  };
}

/** The rack spread over worker threads that load first, then power their nodes on together. */
async function runRackInThreads(gate: GateProcess, nodes: number, generators: number): Promise<RackShareResult[]> {
  const shares = Array.from({ length: generators }, (_, g) => {
    const first = Math.floor((nodes * g) / generators);
    return { url: gate.url, ca: gate.ca, first, count: Math.floor((nodes * (g + 1)) / generators) - first };
  });
  const workers = shares.map((share) => {
    // a TypeScript entry: Node 20's workers do not take tsx from --import, so the worker loads it itself
    const entry = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ tsImport }) => tsImport(${JSON.stringify(new URL('./rack-worker.ts', import.meta.url).href)}, ${JSON.stringify(import.meta.url)}))`;
    const worker = new Worker(entry, { eval: true, workerData: share });
    const failed = new Promise<never>((_, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`rack worker exited with ${code}`)));
    });
    const message = (key: 'ready' | 'result') =>
      Promise.race([
        new Promise<RackMessage>((resolve) => {
          const on = (m: RackMessage) => {
            if (key in m) {
              worker.off('message', on);
              resolve(m);
            }
          };
          worker.on('message', on);
        }),
        failed,
      ]);
    return { worker, ready: message('ready'), result: message('result') };
  });
  await Promise.all(workers.map((w) => w.ready));
  for (const w of workers) w.worker.postMessage('go');
  return Promise.all(
    workers.map(async (w) => {
      const m = await w.result;
      if (!('result' in m)) throw new Error('rack worker answered without a result');
      return m.result;
    }),
  );
}
