import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { type KeyObject } from 'node:crypto';
import { newKeyPair } from '../../server/pki/fresh-keys.js';
import { renameSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { ed25519Pkcs8 } from '../../server/pki/spki.js';
import { issueCertificate, toPem, type Issuer } from '../../server/pki/x509.js';

// A fake apid of our own: a gRPC server on 127.0.0.1 speaking machine.MachineService/
// GenerateClientConfiguration with Talos' field numbers (from talos-machine.proto, not from the
// gate's descriptor), over TLS with a server certificate from its own Ed25519 CA, requiring a client
// certificate from that CA (checkClientCertificate) and reading the caller's roles from its Subject
// O, as apid does. Callers without os:admin get PermissionDenied, as Talos' authorizer answers for
// this method. It signs what it is asked for as Talos does (O = the roles, clientAuth, the TTL asked,
// a new Ed25519 key in a PEM labelled "ED25519 PRIVATE KEY", no CN), or misbehaves on request.

const TALOS_ROLES = new Set(['os:admin', 'os:operator', 'os:reader', 'os:etcd:backup', 'os:impersonator']);

export interface Misbehaviour {
  /** Roles added to every certificate's O. */
  extraRoles?: string[];
  /** Added to notAfter beyond the TTL asked for. */
  longerByMs?: number;
  /** Sign with another CA (and name that CA in the answer). */
  wrongCa?: boolean;
  /** Return a key that is not the certificate's. */
  otherKey?: boolean;
  /** Answer with an error in the message's metadata, as apid does for a failed proxied node. */
  metadataError?: string;
}

export interface FakeApidCall {
  roles: string[];
  ttlMs: number;
  /** The caller's roles, from its client certificate. */
  peerRoles: string[];
  /** The serial of the caller's certificate, to tell rotated credentials apart. */
  peerSerial: string;
  /** The "nodes" metadata the caller sent (talosctl's proxying); the gate sends none. */
  nodes: string[];
}

export interface FakeCa {
  pem: string;
  issuer: Issuer;
}

export interface FakeApid {
  port: number;
  /** "127.0.0.1:PORT" */
  endpoint: string;
  ca: FakeCa;
  calls: FakeApidCall[];
  misbehave: Misbehaviour;
  /** A talosconfig whose context holds a client certificate from this apid's CA with these roles. */
  talosconfigText(roles: string[], opts?: { context?: string; ttlMs?: number; endpoints?: string[]; otherCa?: boolean }): string;
  /** Writes it atomically (a rename, as Kubernetes swaps a mounted secret), 0600. */
  writeTalosconfig(path: string, roles: string[], opts?: { context?: string; ttlMs?: number; endpoints?: string[] }): void;
  /** Stops listening (apid down); start() listens again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const protoFile = join(dirname(fileURLToPath(import.meta.url)), 'talos-machine.proto');

export function makeFakeCa(commonName: string): FakeCa {
  const { publicKey, privateKey } = newKeyPair('ed25519');
  const name = { organizations: ['talos'], commonName };
  const now = Date.now();
  const cert = issueCertificate(
    { subject: name, publicKey, notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 86_400_000), isCa: true, keyUsage: ['keyCertSign', 'digitalSignature'] },
    { name, key: privateKey, publicKey },
  );
  return { pem: cert.pem, issuer: { name, key: privateKey, publicKey } };
}


/**
 * Go's label for PKCS#8 Ed25519 keys, as Talos writes them into talosconfigs and answers (built from
 * the JWK seed: OpenSSL's PKCS#8 encoder would make the fake, not the gate, what a bench measures).
 */
function talosKeyPem(key: KeyObject): string {
  const der = ed25519Pkcs8(Buffer.from(key.export({ format: 'jwk' }).d as string, 'base64url'));
  return toPem('ED25519 PRIVATE KEY', der);
}

function clientCertificate(ca: FakeCa, roles: string[], notBefore: number, notAfter: number, key = newKeyPair('ed25519')) {
  const cert = issueCertificate(
    {
      subject: { organizations: roles },
      publicKey: key.publicKey,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      isCa: false,
      keyUsage: ['digitalSignature'],
      extKeyUsage: ['clientAuth'],
    },
    ca.issuer,
  );
  return { certPem: cert.pem, keyPem: talosKeyPem(key.privateKey), serialHex: cert.serialHex };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

export async function startFakeApid(): Promise<FakeApid> {
  const ca = makeFakeCa('fake apid OS CA');
  const otherCa = makeFakeCa('another cluster');
  const serverKey = newKeyPair('p256');
  const now = Date.now();
  const serverCert = issueCertificate(
    {
      subject: { commonName: 'apid' },
      publicKey: serverKey.publicKey,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      isCa: false,
      keyUsage: ['digitalSignature'],
      extKeyUsage: ['serverAuth'],
      subjectAltNames: ['127.0.0.1', 'localhost'],
    },
    ca.issuer,
  );
  const definition = protoLoader.loadSync(protoFile, { keepCase: true, longs: Number, defaults: true });
  // why the cast: loadPackageDefinition types every entry as a namespace or a service
  const machine = grpc.loadPackageDefinition(definition).machine as grpc.GrpcObject;
  const service = (machine.MachineService as grpc.ServiceClientConstructor).service;

  const calls: FakeApidCall[] = [];
  const misbehave: Misbehaviour = {};
  type Req = { roles: string[]; crt_ttl?: { seconds: number; nanos: number } };

  const handler: grpc.handleUnaryCall<Req, unknown> = (call, callback) => {
    const peer = call.getAuthContext().sslPeerCertificate;
    const o = peer?.subject?.O;
    const peerRoles = o === undefined ? [] : Array.isArray(o) ? o : [o];
    calls.push({
      roles: call.request.roles,
      ttlMs: (call.request.crt_ttl?.seconds ?? 0) * 1000 + Math.floor((call.request.crt_ttl?.nanos ?? 0) / 1e6),
      peerRoles,
      peerSerial: (peer?.serialNumber ?? '').toLowerCase(),
      nodes: call.metadata.get('nodes').map(String),
    });
    if (!peerRoles.includes('os:admin')) {
      callback({ code: grpc.status.PERMISSION_DENIED, details: 'not authorized' });
      return;
    }
    const ttlMs = (call.request.crt_ttl?.seconds ?? 0) * 1000 + Math.floor((call.request.crt_ttl?.nanos ?? 0) / 1e6);
    if (ttlMs <= 0) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: 'crt_ttl should be positive' });
      return;
    }
    // Talos' role.Parse keeps the roles it knows and the set is written sorted
    const roles = [...new Set([...call.request.roles.filter((r) => TALOS_ROLES.has(r)), ...(misbehave.extraRoles ?? [])])].sort();
    const t = Date.now();
    const signer = misbehave.wrongCa ? otherCa : ca;
    const issued = clientCertificate(signer, roles, t, t + ttlMs + (misbehave.longerByMs ?? 0));
    const key = misbehave.otherKey ? talosKeyPem(newKeyPair('ed25519').privateKey) : issued.keyPem;
    callback(null, {
      messages: [
        {
          ...(misbehave.metadataError ? { metadata: { hostname: 'cp-1', error: misbehave.metadataError } } : {}),
          ca: Buffer.from(signer.pem),
          crt: Buffer.from(issued.certPem),
          key: Buffer.from(key),
          talosconfig: Buffer.from(stringify({ context: 'fake', contexts: { fake: { endpoints: [], ca: b64(signer.pem), crt: b64(issued.certPem), key: b64(key) } } })),
        },
      ],
    });
  };

  let server: grpc.Server | undefined;
  let port = 0;
  const listen = async () => {
    server = new grpc.Server();
    server.addService(service, { GenerateClientConfiguration: handler });
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.pem), [{ private_key: Buffer.from(serverKey.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string), cert_chain: Buffer.from(serverCert.pem) }], true);
    port = await new Promise<number>((resolve, reject) =>
      (server as grpc.Server).bindAsync(`127.0.0.1:${port}`, creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
  };
  const stop = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = undefined;
      if (!s) return resolve();
      s.forceShutdown(); // connections too: "down" means down
      resolve();
    });
  await listen();

  const talosconfigText: FakeApid['talosconfigText'] = (roles, opts = {}) => {
    const t = Date.now();
    const c = clientCertificate(opts.otherCa ? otherCa : ca, roles, t - 60_000, t + (opts.ttlMs ?? 3_600_000));
    const context = opts.context ?? 'gate';
    return stringify({ context, contexts: { [context]: { endpoints: opts.endpoints ?? [`127.0.0.1:${port}`], ca: b64(ca.pem), crt: b64(c.certPem), key: b64(c.keyPem) } } });
  };

  return {
    get port() {
      return port;
    },
    get endpoint() {
      return `127.0.0.1:${port}`;
    },
    ca,
    calls,
    misbehave,
    talosconfigText,
    writeTalosconfig(path, roles, opts) {
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, talosconfigText(roles, opts), { mode: 0o600 });
      renameSync(tmp, path);
    },
    stop,
    start: listen,
    close: stop,
  };
}

/** A TCP port that accepts connections and never says a word: a blackholed apid. */
export async function startSilentPort(): Promise<{ endpoint: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    endpoint: `127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

export interface StallingProxy {
  /** "127.0.0.1:PORT": give this to the gate instead of the apid's own endpoint. */
  endpoint: string;
  /**
   * apid hangs with its connections up: every connection open now stops being read and forwarded
   * in both directions (the gate's requests pile up in the kernel, as in a peer that stopped
   * reading its socket), and new connections are accepted and then left alone the same way.
   */
  stall(): void;
  /** apid answers again, on new connections only: the stalled ones stay stalled, as a hung connection does. */
  pass(): void;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of an apid (TLS and HTTP/2 pass through it untouched) that can make apid hang
 * without closing anything: the TCP connection stays ESTABLISHED, the TLS session and the HTTP/2
 * connection are up, and nothing more is read or answered on it. Only a client that gives up on such
 * a connection by itself (a deadline of its own, a fresh connection) is served again.
 */
export async function startStallingProxy(target: string): Promise<StallingProxy> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const pairs = new Set<{ client: Socket; upstream?: Socket }>();
  let stalled = false;
  let connections = 0;
  const freeze = (pair: { client: Socket; upstream?: Socket }) => {
    pair.client.unpipe();
    pair.upstream?.unpipe();
    pair.client.pause();
    pair.upstream?.pause();
  };
  const server: TcpServer = createTcpServer((client) => {
    connections++;
    const pair: { client: Socket; upstream?: Socket } = { client };
    pairs.add(pair);
    const drop = () => {
      pair.client.destroy();
      pair.upstream?.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    if (stalled) {
      client.pause(); // accepted, never read
      return;
    }
    const upstream = tcpConnect(port, host);
    pair.upstream = upstream;
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const own = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    endpoint: `127.0.0.1:${own}`,
    stall() {
      stalled = true;
      for (const pair of pairs) freeze(pair);
    },
    pass() {
      stalled = false;
    },
    get connections() {
      return connections;
    },
    close: () =>
      new Promise((r) => {
        for (const pair of pairs) {
          pair.client.destroy();
          pair.upstream?.destroy();
        }
        server.close(() => r());
      }),
  };
}
