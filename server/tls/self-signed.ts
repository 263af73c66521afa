import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueCertificate, type Issuer } from '../pki/x509.js';

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
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
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
    const k = newKey();
    const name = { commonName: 'talos-gate local CA', organizations: ['talos-gate'] };
    caPem = issueCertificate(
      {
        subject: name,
        publicKey: k.pub,
        notBefore: new Date(now.getTime() - 60_000),
        notAfter: new Date(now.getTime() + 3650 * DAY),
        isCa: true,
        keyUsage: ['keyCertSign', 'cRLSign', 'digitalSignature'],
      },
      { name, key: k.key, publicKey: k.pub },
    ).pem;
    caKey = k.key;
    writeSecret(caKeyPath, k.pem);
    writeFileSync(caCertPath, caPem, { mode: 0o644 });
  }
  const ca = new X509Certificate(caPem);

  // The names the certificate was made for, kept beside it: X509Certificate prints IPv6 SANs in
  // another form than they were given, so reading them back would not compare.
  const namesPath = join(dir, 'server.names');
  const wanted = [...names].sort().join(',');
  if (existsSync(certPath) && existsSync(keyPath) && existsSync(namesPath)) {
    const cert = new X509Certificate(readFileSync(certPath, 'utf8'));
    const have = readFileSync(namesPath, 'utf8').trim();
    const fresh = new Date(cert.validTo).getTime() - now.getTime() > 30 * DAY;
    if (have === wanted && fresh && cert.checkIssued(ca)) {
      return { cert: cert.toString(), key: readFileSync(keyPath, 'utf8'), caPem, caFingerprint: ca.fingerprint256 };
    }
  }
  const k = newKey();
  const issuer: Issuer = {
    name: { commonName: 'talos-gate local CA', organizations: ['talos-gate'] },
    key: caKey,
    publicKey: createPublicKey(caKey),
  };
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
  writeSecret(keyPath, k.pem);
  writeFileSync(certPath, leaf.pem, { mode: 0o644 });
  writeFileSync(namesPath, `${wanted}\n`);
  return { cert: leaf.pem, key: k.pem, caPem, caFingerprint: ca.fingerprint256 };
}
