import { generateKeyPairSync } from 'node:crypto';
import type { GateProcess } from './gate-process.js';
import { closedLoop, type LoadResult } from './load.js';

// Exchange throughput: C clients exchanging real ID tokens (pre-minted by the oidc-provider IdP)
// for certificates, with their own public keys or with keys the gate makes; with talos.signer
// talos-api only the latter (Talos makes the key, and the gate asks apid for every certificate).

export interface ExchangeRun extends LoadResult {
  variant: string;
  gate_cores_used: number;
}

export async function exchangeThroughput(
  gate: GateProcess,
  tokens: { alg: string; token: string }[],
  concurrency: number,
  durationMs: number,
  /** Load before measuring, so the numbers are of the gate's compiled code, not its first requests. */
  warmupMs: number,
  /** The gate's signer: with talos-api no client sends a key. */
  signer: 'ca' | 'talos-api' = 'ca',
): Promise<ExchangeRun[]> {
  const keyModes = signer === 'ca' ? [true, false] : [false];
  const publicKeys = Array.from({ length: concurrency }, () =>
    generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string,
  );
  const runs: ExchangeRun[] = [];
  const load = (token: string, clientKeys: boolean, ms: number) =>
    closedLoop({
      concurrency,
      durationMs: ms,
      ca: gate.ca,
      send: (client) => ({
        url: `${gate.url}/exchange`,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(clientKeys ? { public_key: publicKeys[client] } : {}),
      }),
    });
  for (const t of tokens) for (const clientKeys of keyModes) await load(t.token, clientKeys, warmupMs / 4);
  for (const t of tokens) {
    for (const clientKeys of keyModes) {
      const cpu = gate.cpuSeconds();
      const start = Date.now();
      const r = await load(t.token, clientKeys, durationMs);
      const cores = (gate.cpuSeconds() - cpu) / ((Date.now() - start) / 1000);
      const variant = signer === 'talos-api' ? `${t.alg}, talos-api (Talos key)` : `${t.alg}, ${clientKeys ? 'client key' : 'server key'}`;
      runs.push({ ...r, variant, gate_cores_used: Math.round(cores * 100) / 100 });
    }
  }
  return runs;
}
