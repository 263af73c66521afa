import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError, FastifyInstance } from 'fastify';

// Fastify's clientErrorHandler: what the gate answers when Node's HTTP parser refuses a request
// before there is a request object (headers over --max-http-header-size, a malformed request line,
// a request that did not arrive within requestTimeout/headersTimeout).
//
// Fastify's default (defaultClientErrorHandler in fastify.js) writes a status line without
// `Connection: close` and then destroys the socket. A keep-alive client reads a complete response
// that does not say the connection ends, so it puts the connection back in its pool, and its next,
// innocent request goes down a connection that is already gone ("socket hang up"). And destroying a
// socket while the client is still sending (the rest of its oversized headers) makes the kernel
// answer with a reset, which can discard the response before the client reads it.
//
// Here instead: a response that says `Connection: close` (RFC 9112 §9.6: the server closes after
// it), 431 for oversized headers (RFC 6585 §5), 408 for a request that did not arrive in time,
// 413 for oversized chunk extensions (as Node's own default), else 400, with the gate's RFC 6749
// error shape; then socket.end() (a FIN after the response, TLS close_notify first) and, for a while,
// reading and discarding whatever the client still sends (RFC 9112 §9.6: close in stages, reading
// until the client closes or a timeout), so the close does not turn into a reset.
// Kept from the default: nothing at all for ECONNRESET or an already destroyed socket, no write to a
// socket that is not writable, the trace log line.

/** How long a refused connection may keep sending before it is destroyed. */
export const LINGER_MS = 5_000;

interface Answer {
  status: number;
  description: string;
  label: string;
}

const ANSWERS: Record<string, Answer> = {
  HPE_HEADER_OVERFLOW: { status: 431, description: 'the request headers are too large', label: 'header_overflow' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, description: 'the chunk extensions are too large', label: 'chunk_extensions_overflow' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, description: 'the request did not arrive in time', label: 'timeout' },
};
const MALFORMED: Answer = { status: 400, description: 'malformed HTTP request', label: 'error' };

/**
 * The parser keeps failing on whatever arrives after its first error, and Node emits clientError
 * again for each chunk: only the first one is answered.
 */
const answered = new WeakSet<Socket>();

/**
 * The response Node's server is writing on this socket, if any. Why the cast: _httpMessage is
 * internal, but it is what Node's own handler (socketOnError in lib/_http_server.js) looks at, and
 * there is no public way from a socket to its response.
 */
function responseInFlight(socket: Socket): ServerResponse | null | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
}

export function answerFor(code: string): Answer {
  return ANSWERS[code] ?? MALFORMED;
}

/** The whole response, head and body, as written to the socket. */
export function clientErrorResponse(code: string): string {
  const a = answerFor(code);
  const body = JSON.stringify({ error: 'invalid_request', error_description: a.description });
  return (
    `HTTP/1.1 ${a.status} ${STATUS_CODES[a.status]}\r\n` +
    'Connection: close\r\n' +
    'Content-Type: application/json\r\n' +
    'Cache-Control: no-store\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `\r\n${body}`
  );
}

/** Bound to the fastify instance by fastify (server.on('clientError', handler.bind(fastify))). */
export function clientErrorHandler(this: FastifyInstance, err: ConnectionError, socket: Socket): void {
  // a reset: the socket is destroyed already and there is no one to answer
  // (https://nodejs.org/api/http.html#event-clienterror)
  if (err.code === 'ECONNRESET' || socket.destroyed || answered.has(socket)) return;
  answered.add(socket);
  const answer = answerFor(err.code);
  // mostly network noise or a load balancer's probe; fastify logs it at trace too
  this.log.trace({ err }, `client ${answer.label}`);
  if (responseInFlight(socket)?.headersSent) {
    // Node's rule too: part of a response is on the wire, so anything written now would be read as
    // its rest, and the client can only learn of the problem from the connection ending abruptly
    socket.destroy(err);
    return;
  }
  if (socket.writable) socket.write(clientErrorResponse(err.code));
  socket.end();
  // keep reading (the parser discards it) until the client closes, or for LINGER_MS at most
  const linger = setTimeout(() => socket.destroy(), LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
  socket.resume();
}
