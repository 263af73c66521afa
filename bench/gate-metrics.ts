import { request } from '../cli/http.js';
import type { GateProcess } from './gate-process.js';

// The gate's own view of its latency, from the request-duration histogram of GET /metrics: the time
// from fastify having the request to the answer, without the TLS handshake and the load generator's
// own queueing that the client-side numbers include. Histogram quantiles are bucket upper bounds.

export interface GateSideLatency {
  count: number;
  /** Upper bound (ms) of the bucket holding the 50th / 99th percentile. */
  p50_at_most: number;
  p99_at_most: number;
}

const BUCKET = /^talos_gate_http_request_duration_seconds_bucket\{(.*)\} (\d+(?:\.\d+)?)$/;

export async function gateSideLatency(gate: GateProcess, routes: Record<string, string>): Promise<Record<string, GateSideLatency>> {
  const res = await request(`${gate.url}/metrics`, { ca: gate.ca, headers: { authorization: `Bearer ${gate.adminToken}` } });
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
  // route → upper bound → count, summed over methods and statuses
  const buckets = new Map<string, Map<number, number>>();
  for (const line of res.body.split('\n')) {
    const m = BUCKET.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[1] as string).matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    const route = labels.route as string;
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le) * 1000;
    const perRoute = buckets.get(route) ?? new Map<number, number>();
    perRoute.set(le, (perRoute.get(le) ?? 0) + Number(m[2]));
    buckets.set(route, perRoute);
  }
  const out: Record<string, GateSideLatency> = {};
  for (const [name, route] of Object.entries(routes)) {
    const sorted = [...(buckets.get(route) ?? new Map<number, number>())].sort((a, b) => a[0] - b[0]);
    const count = sorted[sorted.length - 1]?.[1] ?? 0;
    const at = (q: number) => sorted.find(([, n]) => n >= q * count)?.[0] ?? Infinity;
    out[name] = { count, p50_at_most: at(0.5), p99_at_most: at(0.99) };
  }
  return out;
}
