import { OAuthError } from './errors.js';
import { singleValues } from './form.js';

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export interface ClientCredentials {
  clientId: string;
  /** The secret from the Basic password or the client_secret field, whichever is non-empty. */
  clientSecret: string | undefined;
  /** Whether HTTP Basic was used: golang.org/x/oauth2 tries Basic first, then repeats in the body. */
  basic: boolean;
}

export interface DeviceTokenRequest {
  grantType: typeof DEVICE_CODE_GRANT;
  deviceCode: string;
  client: ClientCredentials;
}

/** Decodes `Authorization: Basic`, whose parts are form-urlencoded (RFC 6749 §2.3.1). */
export function parseBasicAuth(header: string | undefined): { id: string; secret: string } | undefined {
  if (header === undefined) return undefined;
  const m = /^Basic ([A-Za-z0-9+/=._~-]+)$/i.exec(header.trim());
  if (!m) return undefined;
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new OAuthError('invalid_client', 'malformed Basic credentials');
  try {
    const unform = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
    return { id: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
  } catch {
    throw new OAuthError('invalid_client', 'malformed Basic credentials');
  }
}

export function parseClientCredentials(form: Map<string, string>, authorization: string | undefined): ClientCredentials {
  const basic = parseBasicAuth(authorization);
  if (authorization !== undefined && basic === undefined && /^basic\b/i.test(authorization)) {
    throw new OAuthError('invalid_client', 'malformed Basic credentials');
  }
  const bodyId = form.get('client_id');
  if (basic && bodyId !== undefined && bodyId !== basic.id) {
    throw new OAuthError('invalid_client', 'client_id in the body differs from the Basic credentials');
  }
  const clientId = basic?.id || bodyId;
  if (!clientId) throw new OAuthError('invalid_client', 'client_id is required', 401);
  const bodySecret = form.get('client_secret');
  return { clientId, clientSecret: basic?.secret || bodySecret || undefined, basic: basic !== undefined };
}

export interface RefreshTokenRequest {
  grantType: 'refresh_token';
  refreshToken: string;
  client: ClientCredentials;
}

/** Parses POST /token: the device grant (nodes, CLI) or refresh_token (CLI). Others are refused. */
export function parseTokenRequest(body: unknown, authorization: string | undefined): DeviceTokenRequest | RefreshTokenRequest {
  const form = singleValues(body);
  const grantType = form.get('grant_type');
  if (!grantType) throw new OAuthError('invalid_request', 'grant_type is required');
  if (grantType === 'refresh_token') {
    const refreshToken = form.get('refresh_token');
    if (!refreshToken) throw new OAuthError('invalid_request', 'refresh_token is required');
    if (refreshToken.length > 256) throw new OAuthError('invalid_grant', 'unknown refresh_token');
    return { grantType, refreshToken, client: parseClientCredentials(form, authorization) };
  }
  if (grantType !== DEVICE_CODE_GRANT) {
    throw new OAuthError('unsupported_grant_type', `grant_type ${grantType.slice(0, 80)} is not supported`);
  }
  const deviceCode = form.get('device_code');
  if (!deviceCode) throw new OAuthError('invalid_request', 'device_code is required');
  if (deviceCode.length > 256) throw new OAuthError('invalid_grant', 'unknown device_code');
  return { grantType, deviceCode, client: parseClientCredentials(form, authorization) };
}
