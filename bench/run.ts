import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { JWK } from 'jose';
import { request } from '../cli/http.js';
import { createIssuingCa } from '../server/pki/issuing-ca.js';
import { startFakeApid } from '../test/helpers/fake-apid.js';
import { freePort } from '../test/helpers/gate.js';
import { startIdp, type TestIdp } from '../test/helpers/idp.js';
import { bootStorm } from './boot-storm.js';
import { cryptoBound } from './crypto-bound.js';
import { exchangeThroughput, type ExchangeRun, type ExchangeTarget } from './exchange.js';
import { startGateProcess } from './gate-process.js';
import { goAnchorBinary, startGoAnchor } from './go-anchor.js';
import { startNodeFloor } from './node-floor.js';
import { benchDatabase, type BenchDatabase } from './postgres.js';
import { recordCost } from './record-cost.js';
import { median } from './stats.js';
import { fillDatabase, probe } from './state-scale.js';
import { startWatchdog } from './watchdog.js';

// `npm run bench [-- --quick] [-- --nodes N] [-- --workers N] [-- --only boot_storm,exchange,record,state_scale]
// [-- --generators N] [-- --profile DIR] [-- --seconds N] [-- --clients N] [-- --database postgres|postgres://…]
// [-- --watchdog S] [-- --rounds N] [-- --algs RS256,ES256] [-- --keys client,server] [-- --compare DIR]`:
// how the gate behaves on this machine when a rack boots at once and when every operator renews at
// once, compared with this machine's own cryptographic limit and with a Go server doing the
// exchange's work (bench/go-anchor), both measured in the same run. The gate runs in its own
// process(es); the load generator shares the machine with it. Printed as tables and written to
// bench/results.json. --profile writes each gate process's V8 CPU profile (.cpuprofile, open in
// Chrome DevTools) to DIR. --database: the boot storm on PostgreSQL, and the exchange on SQLite and
// PostgreSQL both; `postgres` alone starts a throwaway cluster (test/helpers/with-postgres.sh).
// --watchdog: a run whose main thread makes no progress for S seconds (default 180) writes its
// threads' states to a file and aborts (bench/watchdog.ts). For the exchange: --rounds measures each
// variant N times (every server once per round), --algs and --keys pick the variants (the talos-api
// rows are server-key rows), --compare DIR runs the gate of another checkout (its own node_modules)
// beside this one: an A/B of two commits, round by round, on the same machine at the same time.
// See docs/performance.md.

const SECTIONS = ['boot_storm', 'exchange', 'record', 'state_scale'] as const;
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    nodes: { type: 'string' },
    workers: { type: 'string' },
    only: { type: 'string' },
    profile: { type: 'string' },
    generators: { type: 'string' },
    seconds: { type: 'string' },
    clients: { type: 'string' },
    database: { type: 'string' },
    watchdog: { type: 'string' },
    rounds: { type: 'string' },
    algs: { type: 'string' },
    keys: { type: 'string' },
    compare: { type: 'string' },
  },
});
// `--database postgres`: the bench runs again inside a throwaway cluster, which with-postgres.sh
// starts, names in TEST_POSTGRES_URL and removes when the bench ends
if (values.database === 'postgres' && !process.env.TEST_POSTGRES_URL) {
  const script = join(import.meta.dirname, '..', 'test', 'helpers', 'with-postgres.sh');
  const r = spawnSync(script, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
const databaseUrl = values.database === 'postgres' ? process.env.TEST_POSTGRES_URL : values.database;
if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
  process.stderr.write(`--database: expected postgres (a throwaway cluster) or a postgres:// URL, got ${databaseUrl}\n`);
  process.exit(2);
}
const only = values.only?.split(',') ?? [...SECTIONS];
const unknown = only.filter((s) => !(SECTIONS as readonly string[]).includes(s));
if (unknown.length > 0) {
  process.stderr.write(`--only: unknown section ${unknown.join(', ')} (known: ${SECTIONS.join(', ')})\n`);
  process.exit(2);
}
const quick = values.quick === true;
const nodes = Number(values.nodes ?? (quick ? 200 : 2000));
const workers = Number(values.workers ?? 1);
// the simulated nodes' worker threads: by default one per core, so the load generator is not the bottleneck
const generators = Number(values.generators ?? cpus().length);
const seconds = Number(values.seconds ?? (quick ? 2 : 10));
const concurrency = Number(values.clients ?? (quick ? 16 : 64));
const rounds = Number(values.rounds ?? 1);
const algs = values.algs?.split(',') ?? ['RS256', 'ES256'];
const keyModes = (values.keys?.split(',') ?? ['client', 'server']).map((k) => k === 'client');
if (!Number.isInteger(rounds) || rounds < 1 || algs.some((a) => a !== 'RS256' && a !== 'ES256') || (values.keys?.split(',') ?? []).some((k) => k !== 'client' && k !== 'server')) {
  process.stderr.write('--rounds: a whole number ≥ 1; --algs: RS256, ES256; --keys: client, server\n');
  process.exit(2);
}
const compareDir = values.compare;
if (compareDir !== undefined && !existsSync(join(compareDir, 'cli', 'main.ts'))) {
  process.stderr.write(`--compare: ${compareDir} is not a talos-gate checkout (no cli/main.ts)\n`);
  process.exit(2);
}
const gateNodeArgs = values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : [];

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-bench-'));
// every simulated node and client comes from 127.0.0.1: per-IP limits would measure themselves
const rate_limits = { device_code: 10_000_000, token: 10_000_000, exchange: 10_000_000 };
const section = (title: string, rows: [string, string][]) => {
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\n${title}\n${rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')}\n`);
};
const lat = (s: { p50: number; p99: number; max: number }) => `p50 ${s.p50}  p99 ${s.p99}  max ${s.max} ms`;

async function runBootStorm() {
  const db = databaseUrl ? await benchDatabase(databaseUrl, 'storm') : undefined;
  const gate = await startGateProcess(join(dir, 'storm'), await freePort(), {
    workers,
    ...(db ? { database: { url: db.url } } : {}),
    rate_limits,
    device: { interval: '1s', code_ttl: '10m', max_pending_per_ip: 1_000_000 },
  }, gateNodeArgs);
  const storm = await bootStorm(gate, nodes, 1, generators).finally(async () => {
    await gate.stop();
    await db?.drop();
  });
  section(`Boot storm${db ? ' on PostgreSQL' : ''}: ${nodes} nodes, interval 1 s (targets: 0 errors, 0 slow_down, config within 2 intervals of approval, p99 ≤ 50 ms)`, [
    ['first request → last config', `${storm.seconds_first_request_to_last_config} s`],
    ['requests', `${storm.requests} (${storm.requests_per_second}/s)`],
    ...Object.entries(storm.latency_ms).map(([k, v]): [string, string] => {
      const own = storm.gate_side_latency_ms[k];
      return [`/${k.replace('_', '/')}`, `${lat(v)}   gate side: p50 ≤ ${own?.p50_at_most} p99 ≤ ${own?.p99_at_most} ms`];
    }),
    ['approval → config', lat(storm.approval_to_config_ms)],
    ['nodes later than 2 intervals', String(storm.late_nodes)],
    ['slow_down / errors', `${storm.slow_down} / ${storm.errors}`],
    ['gate cores used, peak RSS', `${storm.gate_cores_used}, ${storm.peak_rss_mib} MiB`],
    ['load generator cores used', `${storm.load_generator_cores_used} (${storm.load_generator_threads} threads)`],
    ...(db ? [] : [['SQLite size', `${storm.sqlite_mib} MiB`] as [string, string]]),
  ]);
  return { database: db ? 'postgres' : 'sqlite', ...storm };
}

/** What the exchange and state sections share: the IdP's tokens and a gate configuration that accepts them. */
async function exchangeSetup(idp: TestIdp) {
  const ca = createIssuingCa(join(dir, 'ca'), { commonName: 'bench OS CA', days: 1 });
  const config = {
    workers,
    rate_limits,
    oidc: { issuer_url: idp.issuer, client_id: 'talos-gate', extra_audiences: ['talos-gate-es'] },
    rbac: { rules: [{ claim: 'groups', value: 'ops', roles: ['os:operator'] }] },
    talos: { ca_cert: ca.certPath, ca_key: ca.keyPath, endpoints: ['10.0.0.1'] },
  };
  const tokens = [
    { alg: 'RS256' as const, token: (await idp.login('talos-gate', 'bench')).id_token },
    { alg: 'ES256' as const, token: (await idp.login('talos-gate-es', 'bench')).id_token },
  ].filter((t) => algs.includes(t.alg));
  return { config, tokens };
}

async function runExchange(idp: TestIdp, setup: Awaited<ReturnType<typeof exchangeSetup>>) {
  const { config, tokens } = setup;
  const jwks = JSON.parse((await request(`${idp.issuer}/jwks`)).body) as { keys: JWK[] };
  const bound = await cryptoBound(
    tokens.map((t) => ({ ...t, jwk: jwks.keys.find((k) => k.alg === t.alg) as JWK })),
    330,
    quick ? 300 : 1500,
  );
  // every server is up for the whole section and measured variant by variant, one after the other
  const stops: (() => Promise<void>)[] = [];
  const targets: ExchangeTarget[] = [];
  let goNote: string | undefined;
  let pgDb: BenchDatabase | undefined;
  try {
    const gate = await startGateProcess(join(dir, 'exchange'), await freePort(), config, gateNodeArgs);
    stops.push(() => gate.stop());
    targets.push({ name: 'gate', ...gate });
    if (databaseUrl) {
      pgDb = await benchDatabase(databaseUrl, 'exchange');
      const pgGate = await startGateProcess(join(dir, 'exchange-pg'), await freePort(), { ...config, database: { url: pgDb.url } }, gateNodeArgs);
      stops.push(() => pgGate.stop());
      targets.push({ name: 'gate (PostgreSQL)', ...pgGate });
    }
    if (compareDir) {
      const rev = spawnSync('git', ['-C', compareDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim() || compareDir;
      const other = await startGateProcess(join(dir, 'exchange-compare'), await freePort(), config, gateNodeArgs, compareDir);
      stops.push(() => other.stop());
      targets.push({ name: `gate (${rev})`, ...other });
    }
    const go = await goAnchorBinary();
    if ('bin' in go) {
      const anchor = await startGoAnchor(go.bin, join(dir, 'go-anchor'), {
        issuer: idp.issuer,
        audiences: [config.oidc.client_id, ...config.oidc.extra_audiences],
        caCert: config.talos.ca_cert,
        caKey: config.talos.ca_key,
        claim: 'groups',
        value: 'ops',
        roles: ['os:operator'],
        endpoints: config.talos.endpoints,
      });
      stops.push(() => anchor.stop());
      targets.push({ name: 'go', ...anchor });
    } else {
      goNote = `Go anchor skipped: ${go.missing}`;
    }
    // the floor under both: Node.js doing only the exchange's cryptography, TLS and JSON (node-floor/server.ts)
    const floor = await startNodeFloor(join(dir, 'node-floor'), { jwksUrl: `${idp.issuer}/jwks`, caKeyPath: config.talos.ca_key });
    stops.push(() => floor.stop());
    targets.push(floor);
    const runs = await exchangeThroughput(targets, tokens, concurrency, seconds * 1000, quick ? 500 : 3000, 'ca', keyModes, rounds);
    for (const stop of stops.splice(0)) await stop();
    // The ceiling: no gate that records its exchanges can spend less CPU per exchange than the Node
    // floor plus the record (bench/record-cost.ts, here with every server stopped, in groups as
    // large as there are clients: the cheapest the record gets). Go's CPU per exchange over that sum
    // is the best gate/go (CPU) any gate on this platform could reach with the gate's semantics.
    const record = await recordCost(join(dir, 'record-ceiling'), quick ? 5_000 : 20_000, concurrency);
    const talosApi = keyModes.includes(false) ? await runExchangeTalosApi(setup) : { runs: [] };
    const find = (variant: string, target: string, round: number) => runs.find((r) => r.variant === variant && r.target === target && r.round === round);
    const rate = (variant: string, target: string, round: number) => find(variant, target, round)?.per_second;
    const cpuPer = (variant: string, target: string, round: number) => find(variant, target, round)?.cpu_ms_per_exchange;
    const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? Math.round((a / b) * 100) / 100 : null);
    const withRatio = runs.map((r) => {
      const perCore = bound.exchange_bound_per_core[r.variant] ?? 1;
      return {
        ...r,
        bound_per_core: perCore,
        ratio_to_bound_per_core_used: Math.round((r.per_second / (perCore * Math.max(r.cores_used, 0.01))) * 100) / 100,
        // the issue's measure: the gate's rate over the Go server's, same variant, seconds apart
        ratio_to_go: r.target === 'go' ? null : ratio(r.per_second, rate(r.variant, 'go', r.round)),
        // the same in CPU per exchange (go's over the gate's): what the ratio would be if each had the cores to itself
        cpu_ratio_to_go: r.target === 'go' ? null : ratio(cpuPer(r.variant, 'go', r.round), r.cpu_ms_per_exchange),
        ...(r.target === 'gate (PostgreSQL)' ? { ratio_to_sqlite: ratio(r.per_second, rate(r.variant, 'gate', r.round)) } : {}),
      };
    });
    const ceilings = runs.filter((r) => r.target === 'node floor').map((floorRun) => {
      const { variant, round } = floorRun;
      const cpu = Math.round((floorRun.cpu_ms_per_exchange + record.cpu_us_per_exchange / 1000) * 1000) / 1000;
      return { variant, round, floor_cpu_ms_per_exchange: floorRun.cpu_ms_per_exchange, record_cpu_us_per_exchange: record.cpu_us_per_exchange, ceiling_cpu_ms_per_exchange: cpu, best_cpu_ratio_to_go: ratio(cpuPer(variant, 'go', round), cpu) };
    });
    const extra = (r: (typeof withRatio)[number]) =>
      [r.ratio_to_go !== null ? `${r.target === 'node floor' ? 'floor' : 'gate'}/go ${r.ratio_to_go} (CPU ${r.cpu_ratio_to_go})` : '', r.ratio_to_sqlite !== undefined ? `pg/sqlite ${r.ratio_to_sqlite}` : ''].filter(Boolean).join('  ');
    section(
      `Exchange throughput: ${concurrency} clients, ${seconds} s each, gate workers ${workers} (targets: ≥ 2000/s, p99 ≤ 50 ms, gate/go ≥ 1.0, PostgreSQL ≥ 0.7 of SQLite)`,
      [
        ...withRatio.map((r): [string, string] => [
          `${r.variant}: ${r.target}${rounds > 1 ? ` #${r.round}` : ''}`,
          `${r.per_second}/s  ${lat(r.latency_ms)}  cores ${r.cores_used}${r.main_thread_cores !== undefined ? ` (main thread ${r.main_thread_cores})` : ''} load ${r.load_generator_cores}  CPU ${r.cpu_ms_per_exchange} ms/exchange  RSS ${r.peak_rss_mib} MiB  ${extra(r)}  bound/core ${r.bound_per_core}/s  ratio to bound ${r.ratio_to_bound_per_core_used}  statuses ${JSON.stringify(r.statuses)}`,
        ]),
        // what no gate on this platform can spend less than, and the best gate/go (CPU) it allows
        ...ceilings.map((c): [string, string] => [
          `${c.variant}: ceiling${rounds > 1 ? ` #${c.round}` : ''}`,
          `floor ${c.floor_cpu_ms_per_exchange} + record ${(c.record_cpu_us_per_exchange / 1000).toFixed(4)} = ${c.ceiling_cpu_ms_per_exchange} ms/exchange: gate/go (CPU) at most ${c.best_cpu_ratio_to_go ?? 'n/a (no Go anchor)'}`,
        ]),
        // next to the CA-file rows: the same clients when Talos signs (a fake apid in this process)
        ...talosApi.runs.map((r): [string, string] => [
          `${r.variant}: gate`,
          `${r.per_second}/s  ${lat(r.latency_ms)}  cores ${r.cores_used}  load generator + fake apid cores ${r.bench_process_cores_used}  statuses ${JSON.stringify(r.statuses)}`,
        ]),
        // with rounds: each target's medians, and this checkout's gate over each other server round by round
        ...(rounds > 1 ? roundMedians(runs) : []),
        ['one core: JWT verify', Object.entries(bound.jwt_verify_per_s).map(([k, v]) => `${k} ${v}/s`).join(', ')],
        ['one core: Ed25519', `keygen ${bound.ed25519_keygen_per_s}/s, sign ${bound.ed25519_sign_per_s}/s`],
        ...(goNote ? [['note', goNote] as [string, string]] : []),
      ],
    );
    return { exchange: withRatio, exchange_ceiling: ceilings, exchange_talos_api: talosApi.runs, crypto_bound: bound, ...(goNote ? { go_anchor: goNote } : {}) };
  } finally {
    for (const stop of stops) await stop();
    await pgDb?.drop();
  }
}

/** Per variant and server, over the rounds: the median rate and CPU per exchange, and the gate's median ratio to it. */
function roundMedians(runs: ExchangeRun[]): [string, string][] {
  const rows: [string, string][] = [];
  const two = (x: number) => Math.round(x * 100) / 100;
  for (const variant of [...new Set(runs.map((r) => r.variant))]) {
    const of = (target: string) => runs.filter((r) => r.variant === variant && r.target === target);
    for (const target of [...new Set(runs.map((r) => r.target))]) {
      const mine = of(target);
      const gateOver = mine.map((r) => (of('gate').find((g) => g.round === r.round)?.per_second ?? 0) / Math.max(r.per_second, 1));
      const cpuOver = mine.map((r) => r.cpu_ms_per_exchange / Math.max(of('gate').find((g) => g.round === r.round)?.cpu_ms_per_exchange ?? 0, 0.001));
      rows.push([
        `${variant}: ${target}, median of ${mine.length}`,
        `${Math.round(median(mine.map((r) => r.per_second)))}/s  p99 ${two(median(mine.map((r) => r.latency_ms.p99)))} ms  CPU ${Math.round(median(mine.map((r) => r.cpu_ms_per_exchange)) * 1000) / 1000} ms/exchange` +
          (target === 'gate' ? '' : `  gate/${target} ${two(median(gateOver))} (CPU ${two(median(cpuOver))}; rounds ${gateOver.map(two).join(' ')})`),
      ]);
    }
  }
  return rows;
}

/**
 * The exchange with talos.signer talos-api: the gate asks a fake apid (test/helpers/fake-apid.ts,
 * in this process: it signs with Ed25519 and makes an Ed25519 key per certificate, as Talos does)
 * over mTLS for every certificate. The fake's CPU is the load generator's, measured apart.
 */
async function runExchangeTalosApi(setup: Awaited<ReturnType<typeof exchangeSetup>>) {
  const fake = await startFakeApid();
  try {
    const talosconfig = join(dir, 'gate-talosconfig');
    fake.writeTalosconfig(talosconfig, ['os:admin']);
    const { ca_cert: _cert, ca_key: _key, ...talos } = setup.config.talos;
    const config = { ...setup.config, talos: { ...talos, signer: 'talos-api', api: { endpoints: [fake.endpoint], talosconfig } } };
    const gate = await startGateProcess(join(dir, 'exchange-talos-api'), await freePort(), config, gateNodeArgs);
    const cpu = process.cpuUsage();
    const started = Date.now();
    const runs = await exchangeThroughput([{ name: 'gate', ...gate }], setup.tokens, concurrency, seconds * 1000, quick ? 500 : 3000, 'talos-api').finally(() => gate.stop());
    const used = process.cpuUsage(cpu);
    // the fake shares this process with the load generator: this is both together
    const fakeCores = Math.round(((used.user + used.system) / 1e6 / ((Date.now() - started) / 1000)) * 100) / 100;
    return { runs: runs.map((r) => ({ ...r, bench_process_cores_used: fakeCores })) };
  } finally {
    await fake.close();
  }
}

async function runStateScale(setup: Awaited<ReturnType<typeof exchangeSetup>>) {
  const gate = await startGateProcess(join(dir, 'state'), await freePort(), {
    ...setup.config,
    device: { interval: '1s', max_pending_per_ip: 1_000_000 },
  }, gateNodeArgs);
  try {
    const idToken = setup.tokens[0]?.token as string;
    const probeMs = quick ? 1000 : 5000;
    await probe(gate, idToken, probeMs / 2); // warm-up: the baseline is the gate's compiled code, not its first requests
    const empty = await probe(gate, idToken, probeMs);
    const certs = quick ? 10_000 : 100_000;
    const pending = quick ? 1_000 : 10_000;
    await fillDatabase(join(gate.dataDir, 'talos-gate.db'), certs, pending);
    const full = await probe(gate, idToken, probeMs);
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
    return { certificates: certs, pending_device_requests: pending, empty, full };
  } finally {
    await gate.stop();
  }
}

const watchdog = startWatchdog(join(tmpdir(), `talos-gate-bench-stall-${process.pid}.txt`), values.watchdog ? Number(values.watchdog) : undefined);
const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version };
const results: Record<string, unknown> = { machine, quick, workers };
try {
  if (only.includes('boot_storm')) results.boot_storm = await runBootStorm();
  if (only.includes('record')) {
    // in this process, with nothing else running: five runs, the median is the number
    const runs = [];
    for (let i = 0; i < 5; i++) runs.push(await recordCost(join(dir, `record-${i}`), quick ? 5_000 : 40_000, concurrency));
    const cpu = median(runs.map((r) => r.cpu_us_per_exchange));
    section(`The exchange's record on SQLite alone: block check, certificate row, two audit rows, in groups of ${concurrency}`, [
      ['CPU per exchange', `${cpu} µs (median of 5 runs: ${runs.map((r) => r.cpu_us_per_exchange).join(', ')})`],
      ['wall time per exchange', `${median(runs.map((r) => r.wall_us_per_exchange))} µs`],
    ]);
    results.record = { cpu_us_per_exchange: cpu, runs };
  }
  if (only.includes('exchange') || only.includes('state_scale')) {
    const idp = await startIdp({
      users: [{ sub: 'bench', claims: { email: 'bench@example.com', groups: ['ops'] } }],
      clients: [
        { client_id: 'talos-gate', redirect_uris: ['http://127.0.0.1:9/cb'] },
        { client_id: 'talos-gate-es', redirect_uris: ['http://127.0.0.1:9/cb'], id_token_signed_response_alg: 'ES256' },
      ],
    });
    try {
      const setup = await exchangeSetup(idp);
      if (only.includes('exchange')) Object.assign(results, await runExchange(idp, setup));
      if (only.includes('state_scale')) results.state_scale = await runStateScale(setup);
    } finally {
      await idp.close();
    }
  }
  writeFileSync(join(import.meta.dirname, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\n${machine.cores} cores, ${machine.cpu}, Node ${machine.node}; gate workers: ${workers}. Written to bench/results.json\n`);
} finally {
  watchdog.stop();
  rmSync(dir, { recursive: true, force: true });
}
