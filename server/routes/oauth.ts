import type { FastifyInstance } from 'fastify';
import { parseDeviceAuthorizationRequest } from '../../device/authorization-request.js';
import { DEVICE_CODE_GRANT, parseDeviceTokenRequest } from '../../device/token-request.js';
import { clientIp } from '../client-ip.js';
import type { EnrollmentService } from '../enrollment/service.js';

// The RFC 8628 endpoints Talos talks to. Talos derives their URLs from talos.config by replacing
// only the path, so its query string (?uuid=…&mac=…) may arrive here too: only the body is read.

export function oauthRoutes(enrollment: EnrollmentService, publicUrl: string) {
  return async (app: FastifyInstance) => {
    app.post('/device/code', async (request, reply) => {
      const parsed = parseDeviceAuthorizationRequest(request.body);
      const response = enrollment.requestDeviceCode(parsed, clientIp(request));
      return reply.header('Cache-Control', 'no-store').send(response);
    });

    app.post('/token', async (request, reply) => {
      const parsed = parseDeviceTokenRequest(request.body, request.headers.authorization);
      const response = enrollment.pollToken(parsed);
      return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache').send(response);
    });

    // RFC 8414 metadata, so generic clients find the endpoints from the issuer.
    app.get('/.well-known/oauth-authorization-server', async () => ({
      issuer: publicUrl,
      device_authorization_endpoint: `${publicUrl}/device/code`,
      token_endpoint: `${publicUrl}/token`,
      grant_types_supported: [DEVICE_CODE_GRANT],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
      response_types_supported: [],
    }));
  };
}
