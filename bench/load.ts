import { Agent } from 'node:https';
import { request } from '../cli/http.js';
import { summarize, type Summary } from './stats.js';

// A closed-loop load generator: C clients, each sending its next request when the last answered,
// for a fixed time, over keep-alive connections. A run always ends: a request not answered within
// requestTimeoutMs is aborted and counted as status "timeout", a failed one as "error" (the client
// goes on with its next request), and the connections are closed whatever happened.

/** Long past any latency worth measuring, short enough that a server that stopped answering ends the run. */
export const REQUEST_TIMEOUT_MS = 15_000;

export interface LoadResult {
  requests: number;
  per_second: number;
  latency_ms: Summary;
  /** HTTP status → count, and "timeout" / "error" for requests that got no answer. */
  statuses: Record<string, number>;
}

export async function closedLoop(opts: {
  concurrency: number;
  durationMs: number;
  ca: string;
  send: (client: number, agent: Agent) => { url: string; method?: string; headers?: Record<string, string>; body?: string };
  expectStatus?: number;
  /** See REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
}): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency, ca: opts.ca });
  const requestTimeoutMs = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const count = (status: string) => {
    statuses[status] = (statuses[status] ?? 0) + 1;
  };
  const end = Date.now() + opts.durationMs;
  const start = Date.now();
  try {
    await Promise.all(
      Array.from({ length: opts.concurrency }, async (_, client) => {
        while (Date.now() < end) {
          const r = opts.send(client, agent);
          const t = performance.now();
          const signal = AbortSignal.timeout(requestTimeoutMs);
          try {
            const res = await request(r.url, { method: r.method ?? 'GET', headers: r.headers ?? {}, ...(r.body !== undefined ? { body: r.body } : {}), ca: opts.ca, agent, signal });
            latencies.push(performance.now() - t);
            count(String(res.status));
          } catch {
            count(signal.aborted ? 'timeout' : 'error');
          }
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  const seconds = (Date.now() - start) / 1000;
  return { requests: latencies.length, per_second: Math.round(latencies.length / seconds), latency_ms: summarize(latencies), statuses };
}
