import { randomUUID } from 'node:crypto';
import { Agent } from 'node:https';
import { createSecureContext } from 'node:tls';
import { request } from '../cli/http.js';
import { TalosNode, talosConfigUrl } from '../cli/talos-node.js';

// Part of a rack: nodes `first`…`first + count - 1` powering on within a second and running Talos'
// whole flow against the gate. Runs in a worker thread of the load generator, so the simulated nodes
// use as many cores as the machine lends them.

export interface RackShare {
  url: string;
  ca: string;
  first: number;
  count: number;
}

export interface RackShareResult {
  /** Milliseconds per request, by endpoint. */
  latencies: Record<string, number[]>;
  requests: number;
  serverErrors: number;
  failedNodes: number;
  slowDowns: number;
  /** When (epoch ms) this share's nodes began to power on. */
  startedAt: number;
  /** user_code → when (epoch ms) the node had its config. */
  configAt: [string, number][];
}

function macOf(i: number): string {
  return `52:54:00:${[16, 8, 0].map((shift) => ((i >> shift) & 255).toString(16).padStart(2, '0')).join(':')}`;
}

/** Gets ready (TLS context, compiled client code), waits for `go` so every share powers on together, then runs. */
export async function simulateRackShare(share: RackShare, go: () => Promise<void>): Promise<RackShareResult> {
  const latencies: Record<string, number[]> = {};
  const result: RackShareResult = { latencies, requests: 0, serverErrors: 0, failedNodes: 0, slowDowns: 0, startedAt: 0, configAt: [] };
  // One trust configuration for all simulated nodes: building it per connection (what `ca` on each
  // request does) blocked the load generator for seconds while the gate sat idle. Each node still
  // makes its own full TLS handshake.
  const secureContext = createSecureContext({ ca: share.ca });
  // this thread's first HTTPS request loads and compiles the client code; not the gate's time
  await request(`${share.url}/healthz`, { agent: new Agent({ secureContext }) });
  await go();
  result.startedAt = Date.now();
  await Promise.all(
    Array.from({ length: share.count }, async (_, k) => {
      await new Promise((r) => setTimeout(r, Math.random() * 1000)); // a rack powers on within a second
      const vars = { uuid: randomUUID(), mac: macOf(share.first + k) };
      const agent = new Agent({ keepAlive: true, maxSockets: 1, secureContext });
      let code = '';
      const node = new TalosNode({
        configUrl: talosConfigUrl(share.url, vars),
        clientId: 'talos-node',
        variables: vars,
        agent,
        configAttempts: 3,
        onDeviceCode: (d) => (code = d.user_code),
        observe: (endpoint, ms, status) => {
          result.requests++;
          (latencies[endpoint] ??= []).push(ms);
          if (status >= 500) result.serverErrors++;
        },
      });
      try {
        await node.run();
        result.configAt.push([code, Date.now()]);
      } catch {
        result.failedNodes++;
      } finally {
        agent.destroy();
      }
      result.slowDowns += node.stats.slowDowns + (node.stats.errorsSeen.slow_down ?? 0);
    }),
  );
  return result;
}
