import { generateKeyPairSync } from 'node:crypto';
import type { GateProcess } from './gate-process.js';
import { closedLoop, type LoadResult } from './load.js';

// Exchange throughput: C clients exchanging real ID tokens (pre-minted by the oidc-provider IdP)
// for certificates, with their own public keys or with keys the gate makes.

export interface ExchangeRun extends LoadResult {
  variant: string;
  gate_cores_used: number;
}

export async function exchangeThroughput(
  gate: GateProcess,
  tokens: { alg: string; token: string }[],
  concurrency: number,
  durationMs: number,
): Promise<ExchangeRun[]> {
  const publicKeys = Array.from({ length: concurrency }, () =>
    generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string,
  );
  const runs: ExchangeRun[] = [];
  for (const t of tokens) {
    for (const clientKeys of [true, false]) {
      const cpu = gate.cpuSeconds();
      const start = Date.now();
      const r = await closedLoop({
        concurrency,
        durationMs,
        ca: gate.ca,
        send: (client) => ({
          url: `${gate.url}/exchange`,
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}` },
          body: JSON.stringify(clientKeys ? { public_key: publicKeys[client] } : {}),
        }),
      });
      const cores = (gate.cpuSeconds() - cpu) / ((Date.now() - start) / 1000);
      runs.push({ ...r, variant: `${t.alg}, ${clientKeys ? 'client key' : 'server key'}`, gate_cores_used: Math.round(cores * 100) / 100 });
    }
  }
  return runs;
}
