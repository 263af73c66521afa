import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type Server } from 'node:tls';

// Talos-style CAs made with openssl, as `talosctl gen secrets` would have them, and a TLS server
// that requires and verifies client certificates the way apid does (Go crypto/tls,
// RequireAndVerifyClientCert), reporting the peer's Organization (roles) and CN.

export type CaKind = 'ed25519' | 'p256' | 'rsa';

export interface TestCa {
  kind: CaKind;
  certPath: string;
  /** The key file as talos-gate reads it (Ed25519 under the "ED25519 PRIVATE KEY" label). */
  keyPath: string;
  /** The same key with a standard label, for openssl. */
  opensslKeyPath: string;
  certPem: string;
}

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function genKey(kind: CaKind, out: string): void {
  if (kind === 'ed25519') openssl(['genpkey', '-algorithm', 'ed25519', '-out', out]);
  else if (kind === 'p256') openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', out]);
  else openssl(['genrsa', '-out', out, '2048']);
}

export function makeTalosCa(dir: string, kind: CaKind, name = `talos-${kind}`): TestCa {
  const opensslKeyPath = join(dir, `${name}.openssl.key`);
  genKey(kind, opensslKeyPath);
  const certPath = join(dir, `${name}.crt`);
  openssl([
    'req', '-x509', '-new', '-key', opensslKeyPath, '-subj', '/O=talos', '-days', '3650', '-out', certPath,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,digitalSignature',
  ]);
  const keyPath = join(dir, `${name}.key`);
  let keyPem = readFileSync(opensslKeyPath, 'utf8');
  if (kind === 'ed25519') keyPem = keyPem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '-----$1 ED25519 PRIVATE KEY-----');
  writeFileSync(keyPath, keyPem, { mode: 0o600 });
  chmodSync(keyPath, 0o600);
  return { kind, certPath, keyPath, opensslKeyPath, certPem: readFileSync(certPath, 'utf8') };
}

/** openssl verify -x509_strict -purpose sslclient; returns openssl's output, throws on failure. */
export function opensslVerifyClient(ca: TestCa, certPem: string, dir: string): string {
  const f = join(dir, `verify-${Date.now()}-${Math.random().toString(36).slice(2)}.crt`);
  writeFileSync(f, certPem);
  return openssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', ca.certPath, f]);
}

export function opensslText(certPem: string, dir: string): string {
  const f = join(dir, `text-${Date.now()}-${Math.random().toString(36).slice(2)}.crt`);
  writeFileSync(f, certPem);
  return openssl(['x509', '-in', f, '-noout', '-text', '-nameopt', 'RFC2253']);
}

export interface ApidLike {
  port: number;
  close(): Promise<void>;
}

/** A TLS 1.3 server with a server certificate from `ca` that requires client certificates from `ca` (or an accepted CA, as machine.acceptedCAs). */
export async function startApidLike(ca: TestCa, dir: string, acceptedCas: string[] = []): Promise<ApidLike> {
  const key = join(dir, `apid-${ca.kind}.key`);
  const csr = join(dir, `apid-${ca.kind}.csr`);
  const crt = join(dir, `apid-${ca.kind}.crt`);
  const ext = join(dir, `apid-${ca.kind}.ext`);
  genKey('p256', key);
  openssl(['req', '-new', '-key', key, '-subj', '/CN=apid', '-out', csr]);
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n');
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certPath, '-CAkey', ca.opensslKeyPath, '-CAcreateserial', '-days', '30', '-extfile', ext, '-out', crt]);
  const server: Server = createServer(
    { key: readFileSync(key), cert: readFileSync(crt), ca: [ca.certPem, ...acceptedCas], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
    (socket) => {
      const peer = socket.getPeerX509Certificate();
      const subject = peer?.subject ?? '';
      const organizations = subject.split('\n').filter((l) => l.startsWith('O=')).map((l) => l.slice(2));
      const cn = subject.split('\n').find((l) => l.startsWith('CN='))?.slice(3);
      socket.end(JSON.stringify({ organizations, cn }));
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** Connects with a client certificate and reads what the server says (with TLS 1.3 a refusal shows on read). */
export function mtlsCall(port: number, opts: { cert: string; key: string; ca: string }): Promise<{ organizations: string[]; cn: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, cert: opts.cert, key: opts.key, ca: opts.ca });
    let data = '';
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('end', () => {
      try {
        resolve(JSON.parse(data) as { organizations: string[]; cn: string });
      } catch {
        reject(new Error(`no answer from the server (got ${JSON.stringify(data)})`));
      }
    });
    s.on('error', reject);
  });
}
