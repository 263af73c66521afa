import type { FastifyInstance } from 'fastify';
import { clientIp } from '../client-ip.js';
import { ExchangeError } from '../exchange/errors.js';
import type { ExchangeService } from '../exchange/service.js';
import { perMinute } from '../plugins/rate-limits.js';

interface ExchangeBody {
  id_token?: string;
  public_key?: string;
  csr?: string;
  ttl_seconds?: number;
}

const bodySchema = {
  type: 'object',
  properties: {
    id_token: { type: 'string', maxLength: 16384 },
    public_key: { type: 'string', maxLength: 8192 },
    csr: { type: 'string', maxLength: 16384 },
    ttl_seconds: { type: 'integer', minimum: 1, maximum: 2_592_000 },
  },
  additionalProperties: false,
} as const;

/** POST /exchange: an IdP identity in, a short-lived Talos client certificate out. */
export function exchangeRoutes(exchange: ExchangeService | undefined, maxPerMinute: number) {
  return async (app: FastifyInstance) => {
    const options = { schema: { body: bodySchema }, ...perMinute(maxPerMinute) };
    app.post<{ Body: ExchangeBody | undefined }>('/exchange', options, async (request, reply) => {
      if (!exchange) {
        throw new ExchangeError('not_configured', 'certificate exchange is not configured on this gate (oidc.issuer_url, and talos.ca_cert or talos.signer: talos-api)');
      }
      const auth = request.headers.authorization;
      const bearer = auth && /^Bearer /i.test(auth) ? auth.slice(7).trim() : undefined;
      const body = request.body ?? {};
      if (bearer && body.id_token && bearer !== body.id_token) {
        throw new ExchangeError('invalid_request', 'send the token once: as id_token or as Authorization: Bearer');
      }
      const result = await exchange.exchange({
        credential: body.id_token ?? bearer,
        publicKeyPem: body.public_key,
        csrPem: body.csr,
        ttlSeconds: body.ttl_seconds,
        ip: clientIp(request),
      });
      return reply.header('Cache-Control', 'no-store').send(result);
    });
  };
}
