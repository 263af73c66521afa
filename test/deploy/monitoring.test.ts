import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { request } from '../../cli/http.js';
import { packageRoot } from '../../server/paths.js';
import { newNode } from '../../server/storage/storage.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';

// Issue 13: the Prometheus alert rules and the Grafana dashboard in deploy/. promtool (Debian's
// prometheus package; .ci/run installs it) checks and unit-tests the rules; every metric that the
// rules and the dashboard query must be one a real gate serves at /metrics.

const run = promisify(execFile);
const rulesDir = join(packageRoot, 'deploy', 'prometheus');
const rulesFile = join(rulesDir, 'talos-gate-alerts.yaml');
const dashboardFile = join(packageRoot, 'deploy', 'grafana', 'talos-gate-dashboard.json');

async function promtool(args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: rulesDir });
    return stdout + stderr;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (err.code === 'ENOENT') assert.fail('promtool is not installed: apt-get install -y prometheus (Debian), as .ci/run does');
    assert.fail(`promtool ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

/** Metric names in a PromQL expression: talos_gate_* and up (label names and functions are not prefixed). */
function metricsIn(expr: string): string[] {
  const names = [...expr.matchAll(/\b(talos_gate_[a-z0-9_]+)\b/g)].map((m) => m[1] as string);
  if (/\bup\{/.test(expr)) names.push('up');
  return names;
}

describe('monitoring in deploy/', () => {
  let g: TestGate;
  let served: Set<string>;
  before(async () => {
    g = await startTestGate({ metrics: { enabled: true } });
    const res = await request(`${g.url}/metrics`, { ca: g.ca });
    assert.equal(res.status, 200);
    served = new Set(
      res.body
        .split('\n')
        .filter((l) => l.startsWith('# TYPE '))
        .flatMap((l) => {
          const [, , name, type] = l.split(' ');
          return type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`, name as string] : [name as string];
        }),
    );
  });
  after(() => g.close());

  test('promtool check rules accepts the alert rules', async () => {
    assert.match(await promtool(['check', 'rules', rulesFile]), /SUCCESS: 5 rules found/);
  });

  test('promtool test rules: the alerts fire when they should and not before', async () => {
    assert.match(await promtool(['test', 'rules', 'talos-gate-alerts.test.yaml']), /SUCCESS/);
  });

  test('the gate serves the gauges the alerts need', async () => {
    for (const m of ['talos_gate_nodes_waiting', 'talos_gate_oldest_waiting_node_age_seconds', 'talos_gate_ready', 'talos_gate_auth_failures_total']) {
      assert.ok(served.has(m), `${m} is served`);
    }
    const res = await request(`${g.url}/metrics`, { ca: g.ca });
    assert.match(res.body, /^talos_gate_ready\{check="all"\} 1$/m, 'a fresh gate is ready');
    assert.match(res.body, /^talos_gate_oldest_waiting_node_age_seconds 0$/m, 'nobody waits');
    // a machine that asked five minutes ago and still waits, and a login (not a machine) that does not count
    const now = Date.now();
    const s = g.gate.storage;
    await s.createNode(newNode('waits-5m', now - 300_000, { uuid: 'waits-5m', requestedAt: now - 300_000 }));
    for (const [kind, nodeId] of [['node', 'waits-5m'], ['operator', null]] as const) {
      await s.createDeviceRequest({
        deviceCodeHash: `hash-${kind}`, userCode: kind === 'node' ? 'BCDFGHJK' : 'BCDFGHJL', clientId: 'talos-node', kind, nodeId, variables: {},
        scope: null, audience: null, sourceIp: '192.0.2.9', sourceBucket: '192.0.2.9', createdAt: now - 300_000 - (kind === 'operator' ? 60_000 : 0), expiresAt: now + 600_000, intervalMs: 5000, status: 'pending',
      });
    }
    const later = (await request(`${g.url}/metrics`, { ca: g.ca })).body;
    assert.match(later, /^talos_gate_nodes_waiting 1$/m);
    const age = Number(/^talos_gate_oldest_waiting_node_age_seconds (\S+)$/m.exec(later)?.[1]);
    assert.ok(age >= 300 && age < 330, `the oldest machine waited about 300 s, not ${age}`);
  });

  test('every metric the rules query is served by the gate', () => {
    const doc = parse(readFileSync(rulesFile, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    for (const rule of doc.groups.flatMap((gr) => gr.rules)) {
      const names = metricsIn(rule.expr);
      assert.ok(names.length > 0, `${rule.alert} queries a metric`);
      for (const n of names) assert.ok(n === 'up' || served.has(n), `${rule.alert}: ${n} is not a metric of the gate`);
    }
  });

  test('the Grafana dashboard is valid JSON whose every panel queries metrics the gate serves', () => {
    const d = JSON.parse(readFileSync(dashboardFile, 'utf8')) as { uid: string; panels: { id: number; title: string; targets?: { expr: string }[] }[] };
    assert.equal(d.uid, 'talos-gate');
    assert.ok(d.panels.length >= 8);
    assert.equal(new Set(d.panels.map((p) => p.id)).size, d.panels.length, 'panel ids are unique');
    for (const p of d.panels) {
      assert.ok(p.targets && p.targets.length > 0, `${p.title} has a query`);
      for (const t of p.targets) {
        const names = metricsIn(t.expr);
        assert.ok(names.length > 0, `${p.title}: ${t.expr} queries a metric`);
        for (const n of names) assert.ok(served.has(n) || n === 'talos_gate_postgres_bytes' /* served by a gate on PostgreSQL, this one is on SQLite */, `${p.title}: ${n} is not a metric of the gate`);
      }
    }
  });
});
