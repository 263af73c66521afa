import * as grpc from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import { ExchangeError } from '../exchange/errors.js';
import { CaError } from '../pki/ca.js';
import { checkIssuedClientCertificate, IssuedCertificateError } from '../pki/issued-cert.js';
import type { CertificateIssuer, IssuedClientCertificate, IssueRequest } from './issuer.js';
import {
  GENERATE_CLIENT_CONFIGURATION,
  machinePackageDefinition,
  type GenerateClientConfigurationRequest,
  type GenerateClientConfigurationResponse,
} from './machine-proto.js';
import { fileStamp, readTalosApiCredentials, type TalosApiCredentials } from './talos-credentials.js';

// Talos signs: the gate asks a control-plane node's apid for a client certificate with
// machine.MachineService/GenerateClientConfiguration, over mTLS with its own Talos credential (a
// talosconfig with os:admin, which that RPC requires). The Talos CA key never leaves the cluster; the
// gate holds only a client certificate it can be made to lose (see docs/certificate-exchange.md,
// "Signing without holding the CA"). What Talos answers is checked strictly before it is handed on
// (server/pki/issued-cert.ts).
//
// apid and `nodes`: talosctl sends the nodes it targets as gRPC metadata ("nodes"), and apid then
// proxies the call to each of them and wraps every answer with its metadata (hostname, and error when
// that node failed, while the call as a whole succeeds). Without that metadata apid hands the call to
// its own machined. The gate sends none: the endpoint it dials signs, which is why the endpoints must
// be control-plane nodes (machined refuses the RPC on workers with FailedPrecondition).

/** How long a certificate from Talos may outlast what was asked: Talos' clock against ours. */
export const TALOS_CLOCK_SKEW_MS = 60_000;
/** The talosconfig is looked at (stat) at most this often; a change is picked up on the next exchange. */
const RELOAD_CHECK_MS = 1_000;
/** A failed readiness is probed again at most this often (in the background, from /readyz). */
export const TALOS_API_REPROBE_MS = 10_000;
/** The roles and lifetime of the start-up probe: the cheapest certificate Talos makes, thrown away. */
const PROBE_ROLES = ['os:reader'];
const PROBE_TTL_MS = 60_000;
/** Answers bigger than this are not a client configuration. */
const MAX_ANSWER_BYTES = 256 * 1024;

export const TALOS_API_PORT = 50000;

/** `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address, as a gRPC target with a port. */
export function withTalosPort(endpoint: string): string {
  const e = endpoint.trim();
  if (/^\[[^\]]+\]:\d+$/.test(e) || /^[^:[\]]+:\d+$/.test(e)) return e;
  if (/^\[[^\]]+\]$/.test(e)) return `${e}:${TALOS_API_PORT}`;
  if (e.includes(':')) return `[${e}]:${TALOS_API_PORT}`; // a bare IPv6 address
  return `${e}:${TALOS_API_PORT}`;
}

export interface TalosApiIssuerOptions {
  /** The gate's talosconfig. */
  talosconfig: string;
  context?: string | undefined;
  /** Control-plane endpoints; empty: the talosconfig context's endpoints. */
  endpoints: string[];
  /** Deadline of one attempt at one endpoint. */
  timeoutMs: number;
  /** Told of what an operator should know: a failed probe, a reloaded or unusable talosconfig. */
  log?: (level: 'info' | 'warn' | 'error', message: string, detail?: Record<string, unknown>) => void;
}

interface Attempt {
  endpoint: string;
  code: grpc.status;
  details: string;
}

/** What the gate's own timer fails an attempt with: grpc-js' code for it, so failure() reads both alike. */
function deadlineExceeded(timeoutMs: number): grpc.ServiceError {
  return Object.assign(new Error(`no answer within ${timeoutMs} ms`), {
    code: grpc.status.DEADLINE_EXCEEDED,
    details: `no answer within ${timeoutMs} ms (the gate's own timer)`,
    metadata: new grpc.Metadata(),
  });
}

const TLS_PROBLEM = /certificate|self[- ]signed|ssl|tls|handshake|verify/i;

export class TalosApiIssuer implements CertificateIssuer {
  readonly mode = 'talos-api' as const;
  readonly clientKeys = false;
  readonly remote = true;
  readonly readinessCheck = 'talos_api';

  private creds: TalosApiCredentials;
  private clients = new Map<string, grpc.Client>();
  private checkedAt = 0;
  private state: { ok: boolean; message: string; at: number } = { ok: false, message: 'waiting: the start-up probe of the Talos API has not answered yet', at: 0 };
  private probing: Promise<void> | undefined;
  private closed = false;
  private readonly method: MethodDefinition<GenerateClientConfigurationRequest, GenerateClientConfigurationResponse>;

  /** Reads the talosconfig at once: a missing or broken one stops the gate at start (CaError). */
  constructor(private readonly opts: TalosApiIssuerOptions) {
    this.creds = readTalosApiCredentials(opts.talosconfig, opts.context);
    this.checkedAt = Date.now();
    if (this.endpoints().length === 0) {
      throw new CaError(opts.talosconfig, `context ${this.creds.context} names no endpoints, and talos.api.endpoints is empty: list the control-plane nodes in one of them`);
    }
    const svc = machinePackageDefinition['machine.MachineService'] as Record<string, unknown>;
    // why the cast: proto-loader types a package's entries as any of its definition kinds
    this.method = svc.GenerateClientConfiguration as MethodDefinition<GenerateClientConfigurationRequest, GenerateClientConfigurationResponse>;
  }

  /** Probes Talos once in the background, so /readyz says at start whether signing will work. */
  start(): void {
    this.probe();
  }

  acceptedCas(): string[] {
    return []; // Talos signs with the OS CA every node trusts already
  }

  readiness(): string {
    if (!this.state.ok && Date.now() - this.state.at > TALOS_API_REPROBE_MS) this.probe();
    return this.state.ok ? 'ok' : this.state.message;
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  async issue(req: IssueRequest): Promise<IssuedClientCertificate> {
    if (req.spkiDer) throw new Error('Talos makes the key: the talos-api signer certifies no client key');
    try {
      const cert = await this.generate(req.roles, req.ttlMs, req.now);
      this.setState(true, 'ok');
      return cert;
    } catch (e) {
      if (e instanceof ExchangeError) this.setState(false, `failed: ${e.reason}`);
      throw e;
    }
  }

  private probe(): void {
    if (this.probing || this.closed) return;
    this.probing = this.generate(PROBE_ROLES, PROBE_TTL_MS, Date.now())
      .then(() => this.setState(true, 'ok'))
      .catch((e: unknown) => {
        const reason = e instanceof ExchangeError ? e.reason : (e as Error).message;
        this.setState(false, `failed: ${reason}`);
        this.opts.log?.('warn', `Talos API probe failed: ${reason}`, { detail: e instanceof ExchangeError ? e.detail : undefined });
      })
      .finally(() => {
        this.probing = undefined;
      });
  }

  private setState(ok: boolean, message: string): void {
    this.state = { ok, message, at: Date.now() };
  }

  private endpoints(): string[] {
    const list = this.opts.endpoints.length > 0 ? this.opts.endpoints : this.creds.endpoints;
    return list.map(withTalosPort);
  }

  /**
   * The current credential: the talosconfig is stat-ed at most once a second and read again when it
   * changed (a ServiceAccount's rotation, an admin's new file). A new file that does not read keeps
   * the old credential, loudly, until it expires.
   */
  private current(): TalosApiCredentials {
    const now = Date.now();
    if (now - this.checkedAt < RELOAD_CHECK_MS) return this.creds;
    this.checkedAt = now;
    let stamp: string | undefined;
    try {
      stamp = fileStamp(this.opts.talosconfig);
    } catch {
      stamp = undefined; // being replaced right now: keep the credential we have
    }
    if (stamp === undefined || stamp === this.creds.stamp) return this.creds;
    try {
      const next = readTalosApiCredentials(this.opts.talosconfig, this.opts.context);
      this.creds = next;
      for (const c of this.clients.values()) c.close();
      this.clients.clear();
      this.opts.log?.('info', 'Talos API credential reloaded', { talosconfig: next.file, context: next.context, roles: next.roles, not_after: next.notAfter.toISOString() });
    } catch (e) {
      this.opts.log?.('error', 'the changed talosconfig is not usable; keeping the previous credential', { error: (e as Error).message });
      // not again for every exchange until the file changes once more
      this.creds = { ...this.creds, stamp };
    }
    return this.creds;
  }

  private client(creds: TalosApiCredentials, endpoint: string): grpc.Client {
    let c = this.clients.get(endpoint);
    if (!c) {
      const tls = grpc.credentials.createSsl(Buffer.from(creds.caPem), Buffer.from(creds.keyPem), Buffer.from(creds.certPem));
      c = new grpc.Client(endpoint, tls, {
        // a node back from a reboot is used within seconds, not after gRPC's default backoff of up to 2 minutes
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 2_000,
        'grpc.max_receive_message_length': MAX_ANSWER_BYTES,
        'grpc.enable_retries': 0, // the endpoints are tried in turn here, each once
      });
      this.clients.set(endpoint, c);
    }
    return c;
  }

  /**
   * One attempt, answered or failed within talos.api.timeout whatever the connection does. grpc-js'
   * deadline is a timer of its own and fires on a stuck connection too, but the bound an exchange
   * relies on is kept here as well: at the timeout the call is cancelled (RST_STREAM) and fails as
   * DEADLINE_EXCEEDED, which failure() answers with 503.
   *
   * A connection that is up but answers nothing (apid hung, a peer that stopped reading, a
   * middlebox that black-holes an established flow) would otherwise be reused for every exchange
   * after it: nothing closes it, as no keepalive runs and HTTP/2 flow control just waits. So a
   * deadline drops the endpoint's channel, and the next attempt dials apid afresh.
   */
  private callOnce(creds: TalosApiCredentials, endpoint: string, roles: string[], ttlMs: number): Promise<GenerateClientConfigurationResponse> {
    const request: GenerateClientConfigurationRequest = { roles, crt_ttl: { seconds: Math.floor(ttlMs / 1000), nanos: (ttlMs % 1000) * 1_000_000 } };
    const client = this.client(creds, endpoint);
    return new Promise((resolve, reject) => {
      let settled = false;
      let guard: NodeJS.Timeout | undefined;
      const fail = (err: grpc.ServiceError) => {
        if (err.code === grpc.status.DEADLINE_EXCEEDED) this.drop(endpoint, client);
        reject(err);
      };
      const call = client.makeUnaryRequest(
        GENERATE_CLIENT_CONFIGURATION,
        this.method.requestSerialize,
        this.method.responseDeserialize,
        request,
        new grpc.Metadata(), // no "nodes": the endpoint itself answers (see the top of this file)
        { deadline: Date.now() + this.opts.timeoutMs },
        (err, value) => {
          clearTimeout(guard);
          if (settled) return;
          settled = true;
          if (err) fail(err);
          else resolve(value as GenerateClientConfigurationResponse);
        },
      );
      guard = setTimeout(() => {
        if (settled) return;
        settled = true;
        call.cancel();
        fail(deadlineExceeded(this.opts.timeoutMs));
      }, this.opts.timeoutMs);
    });
  }

  /**
   * Forgets a channel that let a call run into its deadline (if it is still the endpoint's), and
   * closes it with its connection. The next channel gets a connection of its own: client() makes new
   * credentials, and grpc-js shares a connection only between channels with the same credentials object.
   */
  private drop(endpoint: string, client: grpc.Client): void {
    if (this.clients.get(endpoint) !== client) return; // dropped already, by another call of the same moment
    this.clients.delete(endpoint);
    client.close();
    this.opts.log?.('warn', `Talos API at ${endpoint} did not answer within talos.api.timeout; dialing it again for the next exchange`, { timeout_ms: this.opts.timeoutMs });
  }

  private async generate(roles: string[], ttlMs: number, now: number): Promise<IssuedClientCertificate> {
    const creds = this.current();
    if (creds.notAfter.getTime() <= Date.now()) {
      throw new ExchangeError(
        'bad_gateway',
        `the gate's Talos client certificate (${creds.file}, context ${creds.context}) expired at ${creds.notAfter.toISOString()}; give the gate a new talosconfig`,
      );
    }
    const attempts: Attempt[] = [];
    for (const endpoint of this.endpoints()) {
      let answer: GenerateClientConfigurationResponse;
      try {
        answer = await this.callOnce(creds, endpoint, roles, ttlMs);
      } catch (e) {
        const err = e as grpc.ServiceError;
        attempts.push({ endpoint, code: typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN, details: String(err.details ?? err.message).slice(0, 300) });
        continue;
      }
      return this.accept(creds, endpoint, answer, roles, ttlMs, now);
    }
    throw this.failure(creds, attempts);
  }

  /** Talos' answer checked: one message, no error in it, and a certificate that is exactly what was asked. */
  private accept(creds: TalosApiCredentials, endpoint: string, answer: GenerateClientConfigurationResponse, roles: string[], ttlMs: number, now: number): IssuedClientCertificate {
    const refuse = (why: string): never => {
      throw new ExchangeError('bad_gateway', `Talos at ${endpoint} answered with a certificate the gate does not hand on: ${why}`, `endpoint ${endpoint}: ${why}`);
    };
    const msg = answer.messages?.[0];
    if (!msg) return refuse('the answer holds no client configuration');
    if (msg.metadata?.error) return refuse(`Talos reported an error: ${msg.metadata.error.slice(0, 300)}`);
    if (!msg.crt?.length || !msg.key?.length) return refuse('the answer has no certificate or no key');
    try {
      const checked = checkIssuedClientCertificate(msg.crt.toString('utf8'), {
        roles,
        now,
        ttlMs,
        skewMs: TALOS_CLOCK_SKEW_MS,
        // the expected CA is the one the gate's talosconfig trusts apid with: the Talos OS CA, which
        // is also what Talos signs client certificates with. The CA in the answer is not trusted.
        cas: creds.cas,
        privateKeyPem: msg.key.toString('utf8'),
      });
      return {
        pem: checked.pem,
        serialHex: checked.serialHex,
        fingerprint: checked.fingerprint,
        notBefore: checked.notBefore,
        notAfter: checked.notAfter,
        privateKeyPem: checked.privateKeyPem,
        caPem: creds.caPem,
      };
    } catch (e) {
      if (e instanceof IssuedCertificateError) return refuse(e.message);
      throw e;
    }
  }

  /** Every endpoint failed: say what an operator can act on, 503 only when Talos simply could not be reached. */
  private failure(creds: TalosApiCredentials, attempts: Attempt[]): ExchangeError {
    const detail = attempts.map((a) => `${a.endpoint}: ${grpc.status[a.code] ?? a.code} ${a.details}`).join('; ');
    const first = (codes: grpc.status[]) => attempts.find((a) => codes.includes(a.code));
    const who = `the gate's Talos credential (${creds.file}, context ${creds.context}, roles [${creds.roles.join(', ')}])`;
    const denied = first([grpc.status.PERMISSION_DENIED]);
    if (denied) {
      return new ExchangeError(
        'bad_gateway',
        `Talos at ${denied.endpoint} refused GenerateClientConfiguration (PermissionDenied): it needs os:admin, and ${who} must hold it; the endpoint must be a control-plane node`,
        detail,
      );
    }
    const worker = first([grpc.status.FAILED_PRECONDITION]);
    if (worker) {
      return new ExchangeError('bad_gateway', `Talos at ${worker.endpoint} cannot sign (${worker.details}): talos.api.endpoints must list control-plane nodes`, detail);
    }
    const unauth = first([grpc.status.UNAUTHENTICATED]);
    if (unauth) return new ExchangeError('bad_gateway', `Talos at ${unauth.endpoint} did not accept ${who} (Unauthenticated): is it from this cluster's OS CA and unexpired?`, detail);
    const tls = attempts.find((a) => a.code === grpc.status.UNAVAILABLE && TLS_PROBLEM.test(a.details));
    if (tls) {
      return new ExchangeError('bad_gateway', `TLS with Talos at ${tls.endpoint} failed: check that ${who} belongs to this cluster (its ca verifies apid, apid accepts its crt)`, detail);
    }
    const other = attempts.find((a) => a.code !== grpc.status.UNAVAILABLE && a.code !== grpc.status.DEADLINE_EXCEEDED);
    if (other) return new ExchangeError('bad_gateway', `Talos at ${other.endpoint} failed the request (${grpc.status[other.code] ?? other.code}: ${other.details})`, detail);
    return new ExchangeError(
      'unavailable',
      `the Talos API cannot be reached (${attempts.map((a) => a.endpoint).join(', ')}); try again shortly`,
      detail,
      Math.max(5, Math.ceil((this.opts.timeoutMs * attempts.length) / 1000)),
    );
  }
}
