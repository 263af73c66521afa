import type { FastifyInstance } from 'fastify';

// One access-log line per answered request, at info, in place of fastify's two ("incoming
// request" when it arrives, "request completed" when answered). The second says everything the
// first did (method, path, client address, the request id that ties it to any other line of the
// same request) plus the status and time taken, so half the lines carry the same information: at
// the default log level every exchange, poll and config download wrote two JSON lines to stdout.
// A request that never gets an answer (the client went away) still shows in the error lines of
// the request it was, and in the metrics' histogram.

const INFO_ENABLED = new Set(['info', 'debug', 'trace']);

/** Registers the access log; pair with fastify's `logController: new LogController({ disableRequestLogging: true })`. */
export function registerAccessLog(app: FastifyInstance): void {
  // the level is fixed at start-up: with info off, no hook runs at all
  if (!INFO_ENABLED.has(app.log.level)) return;
  app.addHook('onResponse', (request, reply, done) => {
    request.log.info(
      // paths only: query strings carry authorization codes (/auth/callback) and user codes
      { method: request.method, path: request.url.split('?')[0], ip: request.ip, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 },
      'request',
    );
    done();
  });
}
