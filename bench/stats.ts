// Latency samples per endpoint and the summaries the tables print.

export interface Summary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export class Latencies {
  private readonly samples = new Map<string, number[]>();

  add(endpoint: string, ms: number): void {
    let a = this.samples.get(endpoint);
    if (!a) this.samples.set(endpoint, (a = []));
    a.push(ms);
  }

  summary(): Record<string, Summary> {
    const out: Record<string, Summary> = {};
    for (const [k, a] of this.samples) out[k] = summarize(a);
    return out;
  }
}

export function summarize(values: number[]): Summary {
  const a = [...values].sort((x, y) => x - y);
  const at = (q: number) => a[Math.min(a.length - 1, Math.floor(q * a.length))] ?? 0;
  const round = (n: number) => Math.round(n * 100) / 100;
  return { count: a.length, p50: round(at(0.5)), p99: round(at(0.99)), max: round(a[a.length - 1] ?? 0) };
}

/** The middle of a few values (rounds, runs): for an even count, the mean of the two in the middle. */
export function median(values: number[]): number {
  const a = [...values].sort((x, y) => x - y);
  const m = Math.floor(a.length / 2);
  return a.length % 2 ? (a[m] ?? 0) : ((a[m - 1] ?? 0) + (a[m] ?? 0)) / 2;
}
