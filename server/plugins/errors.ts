import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OAuthError } from '../../device/errors.js';
import { ApiError, clientErrorOf } from '../api-error.js';
import { ExchangeError } from '../exchange/errors.js';
import { SealedValueError } from '../secrets/sealed-box.js';
import { AlreadyExistsError, NotFoundError, StorageUnavailableError } from '../storage/storage.js';

/** How soon a client may try again when the database is out of reach (it usually is back within seconds: a restart, a failover). */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

/** The one place errors become responses: RFC 6749 shape, never a stack, never a 500 for a client's mistake. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof OAuthError || err instanceof ApiError) {
      if (err.status === 401) {
        const basic = err instanceof OAuthError && err.error === 'invalid_client' && /^basic /i.test(request.headers.authorization ?? '');
        reply.header('WWW-Authenticate', basic ? 'Basic realm="talos-gate"' : `Bearer realm="talos-gate", error="${err.error}"`);
      }
      if (err.status >= 500) request.log.error({ err }, 'request failed');
      return reply.code(err.status).header('Cache-Control', 'no-store').send({ error: err.error, error_description: err.description, ...(err instanceof ApiError && err.details ? { errors: err.details } : {}) });
    }
    if (err instanceof ExchangeError) {
      if (err.status === 401) reply.header('WWW-Authenticate', 'Bearer realm="talos-gate", error="invalid_token"');
      if (err.status >= 500) request.log.warn({ detail: err.detail }, err.reason);
      if (err.retryAfterSeconds !== undefined) reply.header('Retry-After', String(err.retryAfterSeconds));
      const error = {
        invalid_request: 'invalid_request',
        invalid_token: 'invalid_token',
        forbidden: 'access_denied',
        unavailable: 'temporarily_unavailable',
        not_configured: 'not_found',
        bad_gateway: 'bad_gateway',
      }[err.kind];
      return reply.code(err.status).header('Cache-Control', 'no-store').send({ error, error_description: err.reason });
    }
    // A record gone between a service's read and its write (a node forgotten while it was approved, a
    // session ended by another request): what the client asked about no longer exists.
    if (err instanceof NotFoundError || err instanceof AlreadyExistsError) {
      const client = clientErrorOf(err) as NonNullable<ReturnType<typeof clientErrorOf>>; // why the cast: both kinds always map
      return reply.code(err instanceof NotFoundError ? 404 : 409).header('Cache-Control', 'no-store').send({ error: client.error, error_description: client.description });
    }
    // The database out of reach (PostgreSQL restarting, failing over, the network cut): nothing was
    // committed, the same request may succeed shortly (RFC 9110 §15.6.4 503, §10.2.3 Retry-After).
    // The pool makes new connections as requests come, so the gate recovers by itself.
    if (err instanceof StorageUnavailableError) {
      request.log.warn({ reason: err.reason }, 'database unavailable');
      return reply
        .code(503)
        .header('Retry-After', String(DATABASE_RETRY_AFTER_SECONDS))
        .header('Cache-Control', 'no-store')
        .send({ error: 'temporarily_unavailable', error_description: 'the gate cannot reach its database; try again shortly' });
    }
    // A stored value that does not open (altered, moved from another row, sealed with a secret not
    // given): nothing of it is served, never an empty config in its place. The log names the row; the
    // client learns only that the gate cannot answer (a node retries its download, RFC 6749 §4.1.2.1
    // server_error), since waiting does not mend it and the fault is not the client's.
    if (err instanceof SealedValueError) {
      request.log.error({ table: err.at.table, column: err.at.column, row: err.at.rowId, problem: err.problem, key_id: err.keyId }, err.message);
      return reply
        .code(500)
        .header('Cache-Control', 'no-store')
        .send({ error: 'server_error', error_description: 'a value the gate stored cannot be opened with its system secrets, so it is not served; see the gate\'s log' });
    }
    const fe = err as FastifyError;
    if (fe.validation) {
      return reply.code(400).send({ error: 'invalid_request', error_description: fe.message });
    }
    const status = fe.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      // Fastify's own client errors: bad JSON, wrong content type, body too large, bad URL
      return reply.code(status).send({ error: 'invalid_request', error_description: clientMessage(fe) });
    }
    request.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'server_error', error_description: 'the gate failed to handle this request; see its log' });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'not_found', error_description: `no route for ${request.method} ${request.url.split('?')[0]}` }),
  );
}

const CLIENT_MESSAGES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported Content-Type for this endpoint',
  FST_ERR_CTP_BODY_TOO_LARGE: 'request body too large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'empty JSON body',
};

function clientMessage(e: FastifyError): string {
  return CLIENT_MESSAGES[e.code] ?? e.message.slice(0, 200);
}
