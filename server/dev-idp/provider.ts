import { createPublicKey, randomBytes, type JsonWebKey } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';

// A development OpenID Provider (panva/oidc-provider) on loopback: the IdP of the demo that
// `talos-gate serve` runs without a config file, and of the tests. Never used by a production
// config. Users sign in by picking their name; RS256 and ES256 keys are made at start.

export interface DevIdpUser {
  sub: string;
  /** Shown on the sign-in page. */
  label?: string;
  claims: Record<string, unknown>;
}

export interface DevIdpClient {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  id_token_signed_response_alg?: 'RS256' | 'ES256';
  token_endpoint_auth_method?: 'none' | 'client_secret_basic' | 'client_secret_post';
  grant_types?: string[];
  /** native: loopback redirect URIs match on any port (RFC 8252 §7.3), as CLIs need. */
  application_type?: 'web' | 'native';
}

export interface DevIdpKey {
  privateJwk: JWK;
  publicPem: string;
}

export interface DevIdp {
  issuer: string;
  keys: { rs: DevIdpKey; es: DevIdpKey };
  /** Users by sub; change their claims to simulate changes at the IdP (group removed, …). */
  users: Map<string, DevIdpUser>;
  /** Requests a path has had, without the query: to check clients do not hammer the IdP. */
  hits(path: string): number;
  close(): Promise<void>;
}

async function keyPair(alg: 'RS256' | 'ES256', kid: string): Promise<DevIdpKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  const publicPem = createPublicKey({ key: (await exportJWK(publicKey)) as JsonWebKey, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
  return { privateJwk, publicPem };
}

function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
      if (body.length > 10_000) req.destroy();
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid: string, clientId: string, users: DevIdpUser[]): string {
  const buttons = users
    .map((u) => `<button type="submit" name="login" value="${esc(u.sub)}">${esc(u.label ?? u.sub)}</button>`)
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Development IdP</title><style>
body{font-family:system-ui,sans-serif;background:#fff4e5;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;border:3px solid #d9480f;border-radius:12px;padding:2rem;max-width:26rem;width:90%}
h1{margin-top:0;color:#d9480f}button{display:block;width:100%;margin:.5rem 0;padding:.8rem;font-size:1rem;border-radius:8px;border:1px solid #999;background:#f8f9fa;cursor:pointer}
</style></head><body><main><h1>Development IdP</h1><p><strong>For demos and tests only.</strong> Sign in to <code>${esc(clientId)}</code> as:</p>
<form method="post" action="/interaction/${esc(uid)}/login">${buttons}</form></main></body></html>`;
}

export async function startDevIdp(opts: {
  users: DevIdpUser[];
  clients: DevIdpClient[];
  port?: number;
  idTokenTtlSeconds?: number;
  accessTokenTtlSeconds?: number;
}): Promise<DevIdp> {
  const rs = await keyPair('RS256', 'rs-1');
  const es = await keyPair('ES256', 'es-1');
  const users = new Map(opts.users.map((u) => [u.sub, u]));
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const addr = server.address();
  const issuer = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

  const configuration: Configuration = {
    clients: opts.clients.map((c) => ({
      token_endpoint_auth_method: c.client_secret ? 'client_secret_basic' : 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      ...c,
    })),
    jwks: { keys: [rs.privateJwk, es.privateJwk] as never }, // never: oidc-provider's JWK type is narrower than jose's
    findAccount: async (_ctx, id) => {
      const user = users.get(id);
      if (!user) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...user.claims }) };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups', 'realm_access'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    // Claims of the requested scopes go into the ID token, as most IdPs do by default.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false }, revocation: { enabled: true } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      IdToken: opts.idTokenTtlSeconds ?? 3600,
      AccessToken: opts.accessTokenTtlSeconds ?? 3600,
      Interaction: 600,
      Grant: 86_400,
      Session: 86_400,
      RefreshToken: 86_400,
    },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    pkce: { required: () => true },
    // First-party clients: grant what was asked, no consent screen.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session?.grantIdFor(ctx.oidc.client?.clientId ?? '');
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client?.clientId, accountId: ctx.oidc.session?.accountId });
      grant.addOIDCScope(String(ctx.oidc.params?.scope ?? 'openid'));
      await grant.save();
      return grant;
    },
    issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    // A refresh re-reads the account: a user removed at the IdP can no longer refresh.
    rotateRefreshToken: true,
  };
  const provider = new Provider(issuer, configuration);
  const callback = provider.callback();

  const hits = new Map<string, number>();
  server.on('request', async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0] as string;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const m = /^\/interaction\/([\w-]+)(\/login)?$/.exec(path);
    if (!m) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === 'consent') {
        // first-party clients: consent (asked for with offline_access) is given without a screen
        const grant = details.grantId
          ? ((await provider.Grant.find(details.grantId)) ?? new provider.Grant({ accountId: details.session?.accountId, clientId: String(details.params.client_id) }))
          : new provider.Grant({ accountId: details.session?.accountId, clientId: String(details.params.client_id) });
        grant.addOIDCScope(String(details.params.scope ?? 'openid'));
        const grantId = await grant.save();
        return await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      }
      if (req.method === 'GET') {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        return res.end(loginPage(details.uid, String(details.params.client_id), [...users.values()]));
      }
      const login = (await readForm(req)).get('login') ?? '';
      if (!users.has(login)) {
        res.statusCode = 400;
        return res.end('unknown user');
      }
      return await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    } catch (e) {
      res.statusCode = 400;
      return res.end(`sign-in failed: ${(e as Error).message}`);
    }
  });

  return {
    issuer,
    keys: { rs, es },
    users,
    hits: (path) => hits.get(path) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
