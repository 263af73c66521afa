import { performance } from 'node:perf_hooks';

/**
 * Runs `request` `n` times, one after another, and times each. The page-speed tests bound the
 * fastest (what the page costs the gate: on a loaded 2-core CI machine a single request's time is
 * mostly whether the gate got a core, e.g. 203, 71, 493, 370, 257 ms in one run) and may bound the
 * median more loosely, so a page that is slow every time still fails.
 */
export async function warmTimings<T>(n: number, request: () => Promise<T>): Promise<{ results: T[]; ms: number[]; sorted: number[]; seen: string }> {
  const results: T[] = [];
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    results.push(await request());
    ms.push(performance.now() - started);
  }
  return { results, ms, sorted: [...ms].sort((a, b) => a - b), seen: ms.map(Math.round).join(', ') };
}
