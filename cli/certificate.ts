import { newKeyPair } from '../server/pki/fresh-keys.js';
import { exchange, type ExchangeResult, type GateConnection } from './gate-api.js';
import { writeContext } from './talosconfig.js';

/**
 * Makes a new Ed25519 key here (the private key never leaves this machine), has the gate certify
 * it, and writes ca/crt/key into the talosconfig context. When the gate's signer makes the key
 * (Talos, conn.clientKeys false) none is sent, and the one that comes back is written (0600, as the
 * talosconfig always is).
 */
export async function issueIntoTalosconfig(
  conn: GateConnection,
  credential: string,
  target: { talosconfig: string; context: string; nodes?: string[] | undefined; switchContext: boolean; ttlSeconds?: number | undefined },
): Promise<ExchangeResult> {
  const own = conn.clientKeys === false ? undefined : newKeyPair('ed25519');
  const result = await exchange(conn, credential, own?.publicKey.export({ type: 'spki', format: 'pem' }) as string | undefined, target.ttlSeconds);
  const keyPem = own ? (own.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string) : result.key;
  if (keyPem === undefined) throw new Error('the gate sent a certificate without its key');
  await writeContext(
    target.talosconfig,
    target.context,
    {
      endpoints: result.endpoints,
      nodes: target.nodes,
      caPem: result.ca,
      certPem: result.cert,
      keyPem,
    },
    target.switchContext,
  );
  return result;
}
