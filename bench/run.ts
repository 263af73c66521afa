import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { JWK } from 'jose';
import { request } from '../cli/http.js';
import { createIssuingCa } from '../server/pki/issuing-ca.js';
import { freePort } from '../test/helpers/gate.js';
import { startIdp } from '../test/helpers/idp.js';
import { bootStorm } from './boot-storm.js';
import { cryptoBound } from './crypto-bound.js';
import { exchangeThroughput } from './exchange.js';
import { startGateProcess } from './gate-process.js';
import { fillDatabase, probe } from './state-scale.js';

// `npm run bench [-- --quick] [-- --nodes N] [-- --workers N]`: how the gate behaves on this machine
// when a rack boots at once and when every operator renews at once, compared with this machine's
// own cryptographic limit measured in the same run. The gate runs in its own process(es); the load
// generator shares the machine with it. Printed as tables and written to bench/results.json.

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, nodes: { type: 'string' }, workers: { type: 'string' } } });
const quick = values.quick === true;
const nodes = Number(values.nodes ?? (quick ? 200 : 2000));
const workers = Number(values.workers ?? 1);
const seconds = quick ? 2 : 10;
const concurrency = quick ? 16 : 64;

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-bench-'));
// every simulated node and client comes from 127.0.0.1: per-IP limits would measure themselves
const rate_limits = { device_code: 10_000_000, token: 10_000_000, exchange: 10_000_000 };
const section = (title: string, rows: [string, string][]) => {
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n${title}\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')}\n`);
};
const lat = (s: { p50: number; p99: number; max: number }) => `p50 ${s.p50}  p99 ${s.p99}  max ${s.max} ms`;

const idp = await startIdp({
  users: [{ sub: 'bench', claims: { email: 'bench@example.com', groups: ['ops'] } }],
  clients: [
    { client_id: 'talos-gate', redirect_uris: ['http://127.0.0.1:9/cb'] },
    { client_id: 'talos-gate-es', redirect_uris: ['http://127.0.0.1:9/cb'], id_token_signed_response_alg: 'ES256' },
  ],
});
try {
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version };
  const results: Record<string, unknown> = { machine, quick, workers };

  // 1. boot storm
  const stormGate = await startGateProcess(join(dir, 'storm'), await freePort(), {
    workers,
    rate_limits,
    device: { interval: '1s', code_ttl: '10m', max_pending_per_ip: 1_000_000 },
  });
  const storm = await bootStorm(stormGate, nodes, 1).finally(() => stormGate.stop());
  results.boot_storm = storm;
  section(`Boot storm: ${nodes} nodes, interval 1 s (targets: 0 errors, 0 slow_down, config within 2 intervals of approval, p99 ≤ 50 ms)`, [
    ['first request → last config', `${storm.seconds_first_request_to_last_config} s`],
    ['requests', `${storm.requests} (${storm.requests_per_second}/s)`],
    ...Object.entries(storm.latency_ms).map(([k, v]): [string, string] => [`/${k.replace('_', '/')}`, lat(v)]),
    ['approval → config', lat(storm.approval_to_config_ms)],
    ['nodes later than 2 intervals', String(storm.late_nodes)],
    ['slow_down / errors', `${storm.slow_down} / ${storm.errors}`],
    ['gate cores used, peak RSS', `${storm.gate_cores_used}, ${storm.peak_rss_mib} MiB`],
    ['SQLite size', `${storm.sqlite_mib} MiB`],
  ]);

  // 2. exchange throughput and 3. the bound
  const caDir = join(dir, 'ca');
  const ca = createIssuingCa(caDir, { commonName: 'bench OS CA', days: 1 });
  const exchangeConfig = {
    workers,
    rate_limits,
    oidc: { issuer_url: idp.issuer, client_id: 'talos-gate', extra_audiences: ['talos-gate-es'] },
    rbac: { rules: [{ claim: 'groups', value: 'ops', roles: ['os:operator'] }] },
    talos: { ca_cert: ca.certPath, ca_key: ca.keyPath, endpoints: ['10.0.0.1'] },
  };
  const tokens = [
    { alg: 'RS256' as const, token: (await idp.login('talos-gate', 'bench')).id_token },
    { alg: 'ES256' as const, token: (await idp.login('talos-gate-es', 'bench')).id_token },
  ];
  const jwks = JSON.parse((await request(`${idp.issuer}/jwks`)).body) as { keys: JWK[] };
  const bound = await cryptoBound(
    tokens.map((t) => ({ ...t, jwk: jwks.keys.find((k) => k.alg === t.alg) as JWK })),
    330,
    quick ? 300 : 1500,
  );
  const exGate = await startGateProcess(join(dir, 'exchange'), await freePort(), exchangeConfig);
  const runs = await exchangeThroughput(exGate, tokens, concurrency, seconds * 1000).finally(() => exGate.stop());
  const withRatio = runs.map((r) => {
    const perCore = bound.exchange_bound_per_core[r.variant] ?? 1;
    return { ...r, bound_per_core: perCore, ratio_to_bound_per_core_used: Math.round((r.per_second / (perCore * Math.max(r.gate_cores_used, 0.01))) * 100) / 100 };
  });
  results.exchange = withRatio;
  results.crypto_bound = bound;
  section(`Exchange throughput: ${concurrency} clients, ${seconds} s each (targets: ≥ 2000/s, p99 ≤ 50 ms, ≥ 0.5 of the bound per core used)`, [
    ...withRatio.map((r): [string, string] => [
      r.variant,
      `${r.per_second}/s  ${lat(r.latency_ms)}  gate cores ${r.gate_cores_used}  bound/core ${r.bound_per_core}/s  ratio ${r.ratio_to_bound_per_core_used}  statuses ${JSON.stringify(r.statuses)}`,
    ]),
    ['one core: JWT verify', Object.entries(bound.jwt_verify_per_s).map(([k, v]) => `${k} ${v}/s`).join(', ')],
    ['one core: Ed25519', `keygen ${bound.ed25519_keygen_per_s}/s, sign ${bound.ed25519_sign_per_s}/s`],
  ]);

  // 4. scale of state
  const stateGate = await startGateProcess(join(dir, 'state'), await freePort(), {
    ...exchangeConfig,
    device: { interval: '1s', max_pending_per_ip: 1_000_000 },
  });
  try {
    const probeMs = quick ? 1000 : 5000;
    const empty = await probe(stateGate, tokens[0]?.token as string, probeMs);
    const certs = quick ? 10_000 : 100_000;
    const pending = quick ? 1_000 : 10_000;
    fillDatabase(join(stateGate.dataDir, 'talos-gate.db'), certs, pending);
    const full = await probe(stateGate, tokens[0]?.token as string, probeMs);
    results.state_scale = { certificates: certs, pending_device_requests: pending, empty, full };
    const cmp = (name: string, a: { latency_ms: { p99: number } }, b: { latency_ms: { p99: number } }): [string, string] => [
      name,
      `p99 ${a.latency_ms.p99} → ${b.latency_ms.p99} ms (×${Math.round((b.latency_ms.p99 / Math.max(a.latency_ms.p99, 0.01)) * 100) / 100})`,
    ];
    section(`Scale of state: empty → ${certs} certificates + ${pending} pending requests (target: p99 within 2×, memory flat)`, [
      cmp('/token', empty.token, full.token),
      cmp('/exchange', empty.exchange, full.exchange),
      cmp('/api/v1/certs?active=true', empty.certs_active, full.certs_active),
      ['gate RSS', `${empty.rss_mib} → ${full.rss_mib} MiB`],
    ]);
  } finally {
    await stateGate.stop();
  }
  writeFileSync(join(import.meta.dirname, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\n${machine.cores} cores, ${machine.cpu}, Node ${machine.node}; gate workers: ${workers}. Written to bench/results.json\n`);
} finally {
  await idp.close();
  rmSync(dir, { recursive: true, force: true });
}
