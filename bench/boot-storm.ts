import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { Agent } from 'node:https';
import { createSecureContext } from 'node:tls';
import { join } from 'node:path';
import { request } from '../cli/http.js';
import { TalosNode, talosConfigUrl } from '../cli/talos-node.js';
import type { GateProcess } from './gate-process.js';
import { Latencies, type Summary } from './stats.js';

// A rack booting at once: N nodes with Talos' request pattern (device code with uuid/mac, polls as
// Basic-then-body twins at the interval, config download), each on its own keep-alive connection as
// a Go client is, approved through the admin API while they poll.

export interface BootStormResult {
  nodes: number;
  interval_s: number;
  seconds_first_request_to_last_config: number;
  requests: number;
  requests_per_second: number;
  latency_ms: Record<string, Summary>;
  slow_down: number;
  errors: number;
  late_nodes: number;
  approval_to_config_ms: Summary;
  peak_rss_mib: number;
  sqlite_mib: number;
  /** Cores the gate process kept busy on average (CPU seconds / wall seconds). */
  gate_cores_used: number;
  /** The same for the simulated nodes, which share the machine with the gate. */
  load_generator_cores_used: number;
}

const cpuMicros = (u: NodeJS.CpuUsage) => u.user + u.system;

export async function bootStorm(gate: GateProcess, nodes: number, intervalSeconds: number): Promise<BootStormResult> {
  const lat = new Latencies();
  let requests = 0;
  let errors = 0;
  const approvedAt = new Map<string, number>();
  const configAt = new Map<string, number>();
  const start = Date.now();
  const cpuStart = gate.cpuSeconds();
  const ownCpuStart = process.cpuUsage();

  let approving = true;
  const approver = (async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 4, ca: gate.ca });
    while (approving) {
      const res = await request(`${gate.url}/api/v1/nodes?status=pending`, { headers: { authorization: `Bearer ${gate.adminToken}` }, ca: gate.ca, agent });
      const pending = (JSON.parse(res.body) as { nodes: { pending: { user_code: string }[] }[] }).nodes.flatMap((n) => n.pending.map((p) => p.user_code));
      await Promise.all(
        pending.map(async (code) => {
          const r = await request(`${gate.url}/api/v1/device/approve`, {
            method: 'POST',
            headers: { authorization: `Bearer ${gate.adminToken}`, 'content-type': 'application/json' },
            body: JSON.stringify({ user_code: code, profile: 'worker' }),
            ca: gate.ca,
            agent,
          });
          if (r.status === 200) approvedAt.set(code, Date.now());
        }),
      );
      await new Promise((r) => setTimeout(r, 250));
    }
    agent.destroy();
  })();

  // One trust configuration for all simulated nodes: building it per connection (what `ca` on each
  // request does) blocked the load generator for seconds while the gate sat idle. Each node still
  // makes its own full TLS handshake.
  const secureContext = createSecureContext({ ca: gate.ca });
  const runs = Array.from({ length: nodes }, async (_, i) => {
    await new Promise((r) => setTimeout(r, Math.random() * 1000)); // a rack powers on within a second
    const mac = `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    const vars = { uuid: randomUUID(), mac };
    const agent = new Agent({ keepAlive: true, maxSockets: 1, secureContext });
    let code = '';
    const node = new TalosNode({
      configUrl: talosConfigUrl(gate.url, vars),
      clientId: 'talos-node',
      variables: vars,
      agent,
      configAttempts: 3,
      onDeviceCode: (d) => (code = d.user_code),
      observe: (endpoint, ms, status) => {
        requests++;
        lat.add(endpoint, ms);
        if (status >= 500) errors++;
      },
    });
    try {
      await node.run();
      configAt.set(code, Date.now());
    } catch {
      errors++;
    } finally {
      agent.destroy();
    }
    return node.stats.slowDowns + (node.stats.errorsSeen.slow_down ?? 0);
  });
  const slowDowns = (await Promise.all(runs)).reduce((a, b) => a + b, 0);
  approving = false;
  await approver;
  const seconds = (Math.max(...configAt.values()) - start) / 1000;
  const delays = [...configAt].map(([code, at]) => at - (approvedAt.get(code) ?? at));
  const { summarize } = await import('./stats.js');
  return {
    nodes,
    interval_s: intervalSeconds,
    seconds_first_request_to_last_config: Math.round(seconds * 100) / 100,
    requests,
    requests_per_second: Math.round(requests / seconds),
    latency_ms: lat.summary(),
    slow_down: slowDowns,
    errors: errors + (nodes - configAt.size),
    late_nodes: delays.filter((d) => d > 2 * intervalSeconds * 1000).length,
    approval_to_config_ms: summarize(delays),
    peak_rss_mib: Math.round(gate.peakRssMiB()),
    gate_cores_used: Math.round(((gate.cpuSeconds() - cpuStart) / ((Date.now() - start) / 1000)) * 100) / 100,
    load_generator_cores_used: Math.round((cpuMicros(process.cpuUsage(ownCpuStart)) / 1e6 / ((Date.now() - start) / 1000)) * 100) / 100,
    sqlite_mib: Math.round((statSync(join(gate.dataDir, 'talos-gate.db')).size / 2 ** 20) * 100) / 100,
  };
}
