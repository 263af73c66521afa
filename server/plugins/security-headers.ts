import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';

// The security headers (helmet's) of every answer, worked out once at start-up. helmet runs a chain
// of a dozen middlewares per request, each setting one header on the raw response; with the options
// the gate uses (no CSP nonces, no per-request directive functions) every answer gets the same
// headers, so helmet runs once here against a recorder and each request gets the recorded headers
// in one step through fastify's reply headers (which Node then writes once with the status line).
// On the exchange's hot path that was about 2 % of its CPU.

/** What helmet does to a response with `options`: the headers it sets (lower-case names). */
export function staticSecurityHeaders(options: Readonly<HelmetOptions>): Record<string, string> {
  // a directive given as a function (a nonce, say) is worked out per request: not static
  const csp = options.contentSecurityPolicy;
  const directives = typeof csp === 'object' ? Object.values(csp.directives ?? {}) : [];
  if (directives.some((d) => typeof d === 'function' || (Array.isArray(d) && d.some((v) => typeof v === 'function')))) {
    throw new Error('security headers: a Content-Security-Policy directive that is a function differs per request');
  }
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      if (typeof value !== 'string') throw new Error(`security headers: ${name} is not one string`);
      headers[name.toLowerCase()] = value;
    },
    // X-Powered-By: fastify never sets it, so there is nothing to remove per request
    removeHeader() {},
  };
  let finished = false;
  // Why the casts: helmet uses only setHeader/removeHeader of the response, and nothing of the
  // request with static options; anything reading the request throws here, at start-up.
  const noRequest = new Proxy({}, {
    get(_target, property) {
      throw new Error(`security headers: helmet read the request (${String(property)}): not static`);
    },
  });
  helmet(options)(noRequest as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err instanceof Error ? err : new Error(String(err));
    finished = true;
  });
  if (!finished) throw new Error('security headers: helmet did not finish synchronously');
  return headers;
}

/** Every answer gets the headers helmet would set with `options`. */
export function registerSecurityHeaders(app: FastifyInstance, options: Readonly<HelmetOptions>): void {
  const headers = staticSecurityHeaders(options);
  const names = Object.keys(headers);
  app.addHook('onRequest', (_request, reply, done) => {
    for (const name of names) reply.header(name, headers[name]);
    done();
  });
}
