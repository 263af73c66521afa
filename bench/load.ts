import { Agent } from 'node:https';
import { request } from '../cli/http.js';
import { summarize, type Summary } from './stats.js';

// A closed-loop load generator: C clients, each sending its next request when the last answered,
// for a fixed time, over keep-alive connections.

export interface LoadResult {
  requests: number;
  per_second: number;
  latency_ms: Summary;
  statuses: Record<string, number>;
}

export async function closedLoop(opts: {
  concurrency: number;
  durationMs: number;
  ca: string;
  send: (client: number, agent: Agent) => { url: string; method?: string; headers?: Record<string, string>; body?: string };
  expectStatus?: number;
}): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency, ca: opts.ca });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const end = Date.now() + opts.durationMs;
  const start = Date.now();
  await Promise.all(
    Array.from({ length: opts.concurrency }, async (_, client) => {
      while (Date.now() < end) {
        const r = opts.send(client, agent);
        const t = performance.now();
        const res = await request(r.url, { method: r.method ?? 'GET', headers: r.headers ?? {}, ...(r.body !== undefined ? { body: r.body } : {}), ca: opts.ca, agent });
        latencies.push(performance.now() - t);
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      }
    }),
  );
  agent.destroy();
  const seconds = (Date.now() - start) / 1000;
  return { requests: latencies.length, per_second: Math.round(latencies.length / seconds), latency_ms: summarize(latencies), statuses };
}
