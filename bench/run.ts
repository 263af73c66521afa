import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../test/helpers/gate.js';
import { bootStorm } from './boot-storm.js';
import { startGateProcess } from './gate-process.js';

// `npm run bench [-- --quick] [-- --nodes N]`: how the gate behaves when a rack boots at once, on
// this machine. The gate runs in its own process; the simulated nodes share the machine with it.
// Written to bench/results.json and printed as a table. (Exchange throughput, the crypto bound and
// the scale-of-state runs are still to come: see the issue.)

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, nodes: { type: 'string' } } });
const nodes = Number(values.nodes ?? (values.quick ? 200 : 2000));
const intervalSeconds = 1;

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-bench-'));
const gate = await startGateProcess(dir, await freePort(), {
  device: { interval: `${intervalSeconds}s`, code_ttl: '10m', max_pending_per_ip: 1_000_000 },
});
try {
  const storm = await bootStorm(gate, nodes, intervalSeconds);
  const results = { machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version }, boot_storm: storm };
  writeFileSync(join(import.meta.dirname, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const rows: [string, string][] = [
    ['machine', `${results.machine.cores} cores, ${results.machine.cpu}, Node ${results.machine.node}`],
    ['nodes / interval', `${storm.nodes} / ${storm.interval_s} s`],
    ['first request → last config', `${storm.seconds_first_request_to_last_config} s`],
    ['requests, rate', `${storm.requests}, ${storm.requests_per_second}/s`],
    ...Object.entries(storm.latency_ms).map(([k, v]): [string, string] => [`latency ${k} (ms)`, `p50 ${v.p50}  p99 ${v.p99}  max ${v.max}  (n=${v.count})`]),
    ['approval → config (ms)', `p50 ${storm.approval_to_config_ms.p50}  p99 ${storm.approval_to_config_ms.p99}  max ${storm.approval_to_config_ms.max}`],
    ['nodes later than 2 intervals', String(storm.late_nodes)],
    ['slow_down answers', String(storm.slow_down)],
    ['errors', String(storm.errors)],
    ['gate: cores used, peak RSS', `${storm.gate_cores_used}, ${storm.peak_rss_mib} MiB`],
    ['SQLite size', `${storm.sqlite_mib} MiB`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\nBoot storm\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')}\n\nwritten to bench/results.json\n`);
} finally {
  await gate.stop();
  rmSync(dir, { recursive: true, force: true });
}
