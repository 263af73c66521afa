import { request as httpRequest, type Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import { connect as tlsConnect } from 'node:tls';

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** PEM of the CA that signed the server's certificate (the gate's self-signed CA). */
  ca?: string | undefined;
  timeoutMs?: number;
  /** false: any certificate (only for a health check of the gate's own local port). */
  rejectUnauthorized?: boolean;
  /** A keep-alive agent to reuse connections (one per simulated node in benchmarks). */
  agent?: HttpAgent | HttpsAgent | undefined;
  /** Aborts the request whatever the socket does (timeoutMs is the socket's idle time, not the request's). */
  signal?: AbortSignal | undefined;
}

/**
 * The server does not speak what the URL says: http:// to a TLS port (Node's TLS server just closes
 * the connection, which would read "socket hang up"), or https:// to a plain HTTP port.
 */
export class WrongSchemeError extends Error {
  readonly code = 'WRONG_SCHEME';
  constructor(readonly origin: string, readonly speaks: 'https' | 'http') {
    const other = origin.replace(/^https?:/, `${speaks}:`);
    super(`${origin} speaks ${speaks === 'https' ? 'TLS, not plain HTTP' : 'plain HTTP, not TLS'}: use ${other}`);
    this.name = 'WrongSchemeError';
  }
}

/** Whether host:port completes a TLS handshake (any certificate): asked only after a plain request failed. */
function speaksTls(u: URL, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const socket = tlsConnect({ host, port: Number(u.port || 80), rejectUnauthorized: false, timeout: timeoutMs, ...(/^[\d.:]+$/.test(host) ? {} : { servername: host }) });
    const done = (yes: boolean) => {
      socket.destroy();
      resolve(yes);
    };
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/** One HTTP(S) request over node:http, with an optional pinned CA; the body is read whole. */
export function request(url: string, opts: HttpOptions = {}): Promise<HttpResponse> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      u,
      {
        method: opts.method ?? 'GET',
        headers: { ...(opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}), ...opts.headers },
        ...(opts.ca ? { ca: opts.ca } : {}),
        ...(opts.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
        ...(opts.agent ? { agent: opts.agent } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        timeout: opts.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${u.origin} timed out`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (u.protocol === 'http:' && e.code === 'ECONNRESET') {
        speaksTls(u).then((tls) => reject(tls ? new WrongSchemeError(u.origin, 'https') : e), () => reject(e));
      } else if (u.protocol === 'https:' && /wrong version number|packet length too long|http request/i.test(e.message)) {
        reject(new WrongSchemeError(u.origin, 'http'));
      } else {
        reject(e);
      }
    });
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** Go's url.QueryEscape: everything but letters, digits and -_.~ escaped, space as "+". */
export function goQueryEscape(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/** Go's url.Values.Encode: keys sorted, each value escaped as above. */
export function goFormEncode(values: Record<string, string>): string {
  return Object.keys(values)
    .sort()
    .map((k) => `${goQueryEscape(k)}=${goQueryEscape(values[k] as string)}`)
    .join('&');
}
