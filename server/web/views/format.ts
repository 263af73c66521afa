/** "2026-11-24 11:52:03 UTC (2 min ago)": exact for audits, relative for people. */
export function when(ms: number | null | undefined, now: number): string {
  if (ms === null || ms === undefined) return '—';
  const iso = new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  const d = Math.round((now - ms) / 1000);
  const abs = Math.abs(d);
  const rel = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 86400 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return `${iso} (${d >= 0 ? `${rel} ago` : `in ${rel}`})`;
}

/** A value as the node sent it; empty and missing are told apart. */
export function asSent(v: string | undefined): string {
  if (v === undefined) return '(not sent)';
  if (v === '') return '(empty)';
  return v;
}
