import { createHash, createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newKeyPair } from '../pki/fresh-keys.js';
import { issueCertificate, type Issuer } from '../pki/x509.js';
import type { SecretPlace } from '../secrets/instance-secrets.js';

export interface TlsMaterial {
  cert: string;
  key: string;
  /** The CA that clients pin (self-signed mode), and its SHA-256 fingerprint. */
  caPem?: string;
  caFingerprint?: string;
}

const DAY = 86_400_000;

function writeSecret(path: string, data: string): void {
  writeFileSync(path, data, { mode: 0o600 });
}

function newKey(): { key: KeyObject; pub: KeyObject; pem: string } {
  const { privateKey, publicKey } = newKeyPair('p256');
  return { key: privateKey, pub: publicKey, pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** SANs of the gate's own certificate: the public URL's host, the listen host, and loopback. */
export function serverNames(publicUrl: string, listen: string): string[] {
  const names = new Set<string>(['localhost', '127.0.0.1', '::1']);
  names.add(new URL(publicUrl).hostname.replace(/^\[|\]$/g, ''));
  const host = listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  if (host !== '0.0.0.0' && host !== '::' && host !== '') names.add(host);
  return [...names];
}

const CA_NAME = { commonName: 'talos-gate local CA', organizations: ['talos-gate'] };

/** A new ECDSA CA, ten years. */
function makeCa(now: Date): { certPem: string; keyPem: string } {
  const k = newKey();
  const certPem = issueCertificate(
    {
      subject: CA_NAME,
      publicKey: k.pub,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + 3650 * DAY),
      isCa: true,
      keyUsage: ['keyCertSign', 'cRLSign', 'digitalSignature'],
    },
    { name: CA_NAME, key: k.key, publicKey: k.pub },
  ).pem;
  return { certPem, keyPem: k.pem };
}

/** A new server certificate for the names, signed by the CA, 397 days (the CA/B Forum's limit). */
function makeLeaf(caKey: KeyObject, names: string[], now: Date): { certPem: string; keyPem: string } {
  const k = newKey();
  const issuer: Issuer = { name: CA_NAME, key: caKey, publicKey: createPublicKey(caKey) };
  const leaf = issueCertificate(
    {
      subject: { commonName: names.find((n) => n !== 'localhost') ?? 'localhost' },
      publicKey: k.pub,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + 397 * DAY),
      isCa: false,
      keyUsage: ['digitalSignature'],
      extKeyUsage: ['serverAuth'],
      subjectAltNames: names,
    },
    issuer,
  );
  return { certPem: leaf.pem, keyPem: k.pem };
}

/** A server certificate is kept while the CA issued it and it has more than 30 days left. */
function usable(certPem: string, ca: X509Certificate, now: Date): boolean {
  const cert = new X509Certificate(certPem);
  return new Date(cert.validTo).getTime() - now.getTime() > 30 * DAY && cert.checkIssued(ca);
}

/**
 * The self-signed TLS mode: an ECDSA CA made once and kept in data_dir/tls, and a server
 * certificate it signs, made again when the names change or it nears expiry.
 */
export function ensureSelfSignedTls(dataDir: string, names: string[], now = new Date()): TlsMaterial {
  const dir = join(dataDir, 'tls');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caCertPath = join(dir, 'ca.crt');
  const caKeyPath = join(dir, 'ca.key');
  const certPath = join(dir, 'server.crt');
  const keyPath = join(dir, 'server.key');

  let caPem: string;
  let caKey: KeyObject;
  if (existsSync(caCertPath) && existsSync(caKeyPath)) {
    caPem = readFileSync(caCertPath, 'utf8');
    caKey = createPrivateKey(readFileSync(caKeyPath, 'utf8'));
  } else {
    const made = makeCa(now);
    caPem = made.certPem;
    caKey = createPrivateKey(made.keyPem);
    writeSecret(caKeyPath, made.keyPem);
    writeFileSync(caCertPath, caPem, { mode: 0o644 });
  }
  const ca = new X509Certificate(caPem);

  // The names the certificate was made for, kept beside it: X509Certificate prints IPv6 SANs in
  // another form than they were given, so reading them back would not compare.
  const namesPath = join(dir, 'server.names');
  const wanted = [...names].sort().join(',');
  if (existsSync(certPath) && existsSync(keyPath) && existsSync(namesPath)) {
    const certPem = readFileSync(certPath, 'utf8');
    const have = readFileSync(namesPath, 'utf8').trim();
    if (have === wanted && usable(certPem, ca, now)) {
      return { cert: new X509Certificate(certPem).toString(), key: readFileSync(keyPath, 'utf8'), caPem, caFingerprint: ca.fingerprint256 };
    }
  }
  const leaf = makeLeaf(caKey, names, now);
  writeSecret(keyPath, leaf.keyPem);
  writeFileSync(certPath, leaf.certPem, { mode: 0o644 });
  writeFileSync(namesPath, `${wanted}\n`);
  return { cert: leaf.certPem, key: leaf.keyPem, caPem, caFingerprint: ca.fingerprint256 };
}

interface StoredPair {
  cert: string;
  key: string;
}

function parsePair(json: string, name: string): StoredPair {
  const v = JSON.parse(json) as Partial<StoredPair>;
  if (typeof v.cert !== 'string' || typeof v.key !== 'string') throw new Error(`tls: the stored ${name} is not a certificate and key`);
  return { cert: v.cert, key: v.key };
}

/**
 * The self-signed TLS mode with a shared database (several instances, docs/ha.md): the CA is the
 * secret `tls-ca`, the server certificate for a set of names the secret `tls-server:<sha256 of the
 * names>`, so instances with the same config present the same certificate. Made by whichever
 * instance comes first; renewed (30 days before expiry) by compare-and-set, so of two instances
 * renewing at once one certificate is kept and both serve it.
 */
export async function ensureSharedSelfSignedTls(secrets: SecretPlace, names: string[], now = new Date()): Promise<TlsMaterial> {
  const ca = parsePair(await secrets.get('tls-ca', () => JSON.stringify(((m) => ({ cert: m.certPem, key: m.keyPem }))(makeCa(now)))), 'tls-ca');
  const caCert = new X509Certificate(ca.cert);
  const caKey = createPrivateKey(ca.key);
  const wanted = [...names].sort().join(',');
  const name = `tls-server:${createHash('sha256').update(wanted).digest('hex').slice(0, 32)}`;
  const fresh = () => ((m) => JSON.stringify({ cert: m.certPem, key: m.keyPem }))(makeLeaf(caKey, names, now));
  let leaf = parsePair(await secrets.get(name, fresh), name);
  if (!usable(leaf.cert, caCert, now)) leaf = parsePair(await secrets.replace(name, fresh()), name);
  return { cert: leaf.cert, key: leaf.key, caPem: ca.cert, caFingerprint: caCert.fingerprint256 };
}
