import type { FastifyInstance } from 'fastify';
import { clientIp } from '../client-ip.js';
import type { EnrollmentService } from '../enrollment/service.js';

const querySchema = {
  type: 'object',
  properties: {
    uuid: { type: 'string', maxLength: 256 },
    mac: { type: 'string', maxLength: 256 },
    serial: { type: 'string', maxLength: 256 },
    hostname: { type: 'string', maxLength: 256 },
  },
} as const;

/** GET /config: the talos.config URL. The node's bearer token decides whose config it gets. */
export function machineConfigRoutes(enrollment: EnrollmentService) {
  return async (app: FastifyInstance) => {
    app.get<{ Querystring: Record<string, string | undefined> }>('/config', { schema: { querystring: querySchema } }, async (request, reply) => {
      const auth = request.headers.authorization;
      const bearer = auth && /^Bearer /i.test(auth) ? auth.slice(7).trim() : undefined;
      const config = await enrollment.fetchConfig(bearer, request.query, clientIp(request));
      return reply.header('Cache-Control', 'no-store').type('application/yaml; charset=utf-8').send(config);
    });
  };
}
