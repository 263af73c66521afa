import { generateKeyPairSync } from 'node:crypto';
import { exchange, type ExchangeResult, type GateConnection } from './gate-api.js';
import { writeContext } from './talosconfig.js';

/**
 * Makes a new Ed25519 key here (the private key never leaves this machine), has the gate certify
 * it, and writes ca/crt/key into the talosconfig context.
 */
export async function issueIntoTalosconfig(
  conn: GateConnection,
  credential: string,
  target: { talosconfig: string; context: string; nodes?: string[] | undefined; switchContext: boolean; ttlSeconds?: number | undefined },
): Promise<ExchangeResult> {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const result = await exchange(conn, credential, publicKey.export({ type: 'spki', format: 'pem' }) as string, target.ttlSeconds);
  await writeContext(
    target.talosconfig,
    target.context,
    {
      endpoints: result.endpoints,
      nodes: target.nodes,
      caPem: result.ca,
      certPem: result.cert,
      keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    },
    target.switchContext,
  );
  return result;
}
