import type { FastifyInstance } from 'fastify';
import { clientIdOf, parseDeviceAuthorizationRequest, parseOperatorAuthorizationRequest } from '../../device/authorization-request.js';
import { OAuthError } from '../../device/errors.js';
import { singleValues } from '../../device/form.js';
import { DEVICE_CODE_GRANT, parseClientCredentials, parseTokenRequest } from '../../device/token-request.js';
import { clientIp } from '../client-ip.js';
import type { GateConfig } from '../config/load.js';
import type { EnrollmentService } from '../enrollment/service.js';
import type { GateTokenSigner } from '../operators/gate-tokens.js';
import type { OperatorService } from '../operators/service.js';
import { perMinute } from '../plugins/rate-limits.js';

// The OAuth endpoints: RFC 8628 for Talos nodes and the talos-gate CLI, refresh and revocation for
// the CLI, and the metadata clients discover them with. Talos derives the device and token URLs from
// talos.config by replacing only the path, so its query string may arrive here too: only bodies are read.

export interface OAuthDeps {
  enrollment: EnrollmentService;
  operators: OperatorService;
  gateTokens: GateTokenSigner;
  config: GateConfig;
}

export function oauthRoutes({ enrollment, operators, gateTokens, config }: OAuthDeps) {
  const publicUrl = config.public_url;
  return async (app: FastifyInstance) => {
    app.post('/device/code', perMinute(config.rate_limits.device_code), async (request, reply) => {
      const ip = clientIp(request);
      const response =
        enrollment.clientKind(clientIdOf(request.body)) === 'operator'
          ? await (() => {
              const r = parseOperatorAuthorizationRequest(request.body);
              return enrollment.requestOperatorCode(r.clientId, r.scope, ip);
            })()
          : await enrollment.requestDeviceCode(parseDeviceAuthorizationRequest(request.body), ip);
      return reply.header('Cache-Control', 'no-store').send(response);
    });

    app.post('/token', perMinute(config.rate_limits.token), async (request, reply) => {
      const parsed = parseTokenRequest(request.body, request.headers.authorization);
      let response;
      if (parsed.grantType === 'refresh_token') {
        if (enrollment.clientKind(parsed.client.clientId) !== 'operator') {
          throw new OAuthError('unauthorized_client', 'this client may not use refresh tokens');
        }
        response = await operators.refresh(parsed.refreshToken, parsed.client.clientId, clientIp(request));
      } else {
        response = await enrollment.pollToken(parsed);
      }
      return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache').send(response);
    });

    // RFC 7009: the CLI's logout. Always 200, so it tells nothing about which tokens exist.
    app.post('/revoke', async (request, reply) => {
      const form = singleValues(request.body);
      const token = form.get('token');
      if (!token) throw new OAuthError('invalid_request', 'token is required');
      const client = parseClientCredentials(form, request.headers.authorization);
      if (enrollment.clientKind(client.clientId) !== 'operator') throw new OAuthError('unauthorized_client', 'only operator clients revoke tokens here');
      if (form.get('token_type_hint') !== 'access_token') await operators.revoke(token, clientIp(request));
      return reply.header('Cache-Control', 'no-store').send({});
    });

    // RFC 8414 metadata, so generic clients find the endpoints from the issuer.
    app.get('/.well-known/oauth-authorization-server', async () => ({
      issuer: publicUrl,
      device_authorization_endpoint: `${publicUrl}/device/code`,
      token_endpoint: `${publicUrl}/token`,
      revocation_endpoint: `${publicUrl}/revoke`,
      jwks_uri: `${publicUrl}/.well-known/jwks.json`,
      grant_types_supported: [DEVICE_CODE_GRANT, 'refresh_token'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
      response_types_supported: [],
    }));

    app.get('/.well-known/jwks.json', async (_request, reply) => reply.header('Cache-Control', 'public, max-age=300').send(await gateTokens.jwks()));

    // What the talos-gate CLI needs, so --server is usually its only flag.
    app.get('/.well-known/talos-gate', async () => ({
      issuer: publicUrl,
      idp_issuer: config.oidc.issuer_url ?? null,
      cli_client_id: config.oidc.cli_client_id ?? null,
      cli_scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
      operator_client_id: config.operator_clients[0]?.client_id ?? null,
      device_authorization_endpoint: `${publicUrl}/device/code`,
      token_endpoint: `${publicUrl}/token`,
      revocation_endpoint: `${publicUrl}/revoke`,
      exchange_endpoint: `${publicUrl}/exchange`,
      jwks_uri: `${publicUrl}/.well-known/jwks.json`,
      endpoints: config.talos.endpoints,
      cert_ttl_seconds: Math.floor(config.talos.cert_ttl / 1000),
      max_cert_ttl_seconds: Math.floor(config.talos.max_cert_ttl / 1000),
      // who signs, and so whether /exchange takes the client's key: with talos-api Talos makes the
      // key, and the CLI sends none and keeps the one that comes back
      signer: config.talos.signer,
      client_keys: config.talos.signer === 'ca',
    }));
  };
}
