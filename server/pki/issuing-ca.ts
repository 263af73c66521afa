import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newKeyPair } from './fresh-keys.js';
import { issueCertificate } from './x509.js';

const DAY = 86_400_000;

/**
 * Makes a dedicated Ed25519 CA for client certificates, so the gate never holds the cluster's own
 * CA key. Nodes trust it through machine.acceptedCAs. Refuses to overwrite an existing one.
 */
export function createIssuingCa(dir: string, opts: { commonName: string; days: number; now?: number }): { certPath: string; keyPath: string } {
  const certPath = join(dir, 'issuing-ca.crt');
  const keyPath = join(dir, 'issuing-ca.key');
  for (const p of [certPath, keyPath]) if (existsSync(p)) throw new Error(`${p} already exists; not overwriting it`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = opts.now ?? Date.now();
  const { publicKey, privateKey } = newKeyPair('ed25519');
  const name = { commonName: opts.commonName, organizations: ['talos-gate'] };
  const cert = issueCertificate(
    {
      subject: name,
      publicKey,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + opts.days * DAY),
      isCa: true,
      keyUsage: ['keyCertSign', 'cRLSign', 'digitalSignature'],
    },
    { name, key: privateKey, publicKey },
  );
  writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(certPath, cert.pem, { mode: 0o644 });
  return { certPath, keyPath };
}
