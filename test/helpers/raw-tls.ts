import { connect, type TLSSocket } from 'node:tls';

// Raw HTTP/1.1 over TLS, byte for byte: fetch and URL rewrite request targets (dot segments,
// percent-encodings, never an absolute-form target), and tests of the gate's routing and connection
// handling need exactly the bytes an attacker would send.

export interface RawResponse {
  status: number;
  /** Header names lower-cased; a repeated header keeps its last value. */
  headers: Record<string, string>;
  body: string;
}

export interface RawExchange {
  /** Everything the server sent, as text. */
  text: string;
  /** How the connection ended: 'end' is a clean close (FIN/close_notify), 'error' a reset or the like. */
  closed: 'end' | 'error' | 'timeout';
  error?: Error;
}

/** Opens a TLS connection to the gate at `url`, trusting `ca`. */
export function openTls(url: string, ca: string): Promise<TLSSocket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port), ca, servername: 'localhost' }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Writes `request` as is and reads until the server closes the connection (send
 * `Connection: close` to get there after one response).
 */
export async function rawTls(url: string, ca: string, request: string | Buffer, timeoutMs = 10_000): Promise<RawExchange> {
  const socket = await openTls(url, ca);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (closed: RawExchange['closed'], error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('utf8'), closed, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => finish('end'));
    socket.on('error', (e) => finish('error', e));
    socket.on('close', () => finish('end'));
    socket.write(request);
  });
}

/** The first HTTP/1.1 response in `text` (Content-Length bodies; otherwise the rest of the text). */
export function parseResponse(text: string): RawResponse {
  const split = text.indexOf('\r\n\r\n');
  if (split < 0) throw new Error(`no complete response head in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!m) throw new Error(`not an HTTP status line: ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const rest = text.slice(split + 4);
  const length = headers['content-length'];
  return { status: Number(m[1]), headers, body: length === undefined ? rest : Buffer.from(rest).subarray(0, Number(length)).toString('utf8') };
}

/** One request with `Connection: close`; `target` is sent verbatim as the request-target. */
export async function rawRequest(
  url: string,
  ca: string,
  method: string,
  target: string,
  opts: { headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  const host = new URL(url).host;
  const headers: Record<string, string> = { host, connection: 'close', ...opts.headers };
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
  const head = [`${method} ${target} HTTP/1.1`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  const res = await rawTls(url, ca, `${head}\r\n\r\n${opts.body ?? ''}`);
  return parseResponse(res.text);
}
