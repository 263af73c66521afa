import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';
import { request } from '../../cli/http.js';

// A real OpenID Provider (panva/oidc-provider) on 127.0.0.1 for tests: RS256 and ES256 signing
// keys, users with the claims a test needs, a plain login page (for browser tests), and a
// programmatic authorization code + PKCE flow that returns real ID tokens.

export interface IdpUser {
  sub: string;
  claims: Record<string, unknown>;
}

export interface IdpClient {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  id_token_signed_response_alg?: 'RS256' | 'ES256';
  token_endpoint_auth_method?: 'none' | 'client_secret_basic' | 'client_secret_post';
  grant_types?: string[];
}

export interface TestIdp {
  issuer: string;
  /** Logs a user in through the real authorization endpoint and returns the token response. */
  login(clientId: string, sub: string, opts?: { scope?: string; redirectUri?: string }): Promise<TokenSet>;
  /** Signs arbitrary claims with one of the IdP's own keys (or a forged header), for negative tests. */
  sign(payload: JWTPayload, how: { alg: 'RS256' | 'ES256'; kid?: string } | { alg: 'none' } | { alg: 'HS256-with-public-key' }): Promise<string>;
  users: Map<string, IdpUser>;
  /** How many requests a path (without query) has had: to check the gate does not hammer the IdP. */
  hits(path: string): number;
  close(): Promise<void>;
}

export interface TokenSet {
  id_token: string;
  access_token: string;
  refresh_token?: string;
  expires_in: number;
}

interface KeyPair {
  privateJwk: JWK;
  publicPem: string;
}

async function keyPair(alg: 'RS256' | 'ES256', kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  const publicPem = createPublicKey({ key: (await exportJWK(publicKey)) as import('node:crypto').JsonWebKey, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
  return { privateJwk, publicPem };
}

function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export async function startIdp(opts: { users: IdpUser[]; clients: IdpClient[]; idTokenTtlSeconds?: number }): Promise<TestIdp> {
  const rs = await keyPair('RS256', 'rs-1');
  const es = await keyPair('ES256', 'es-1');
  const users = new Map(opts.users.map((u) => [u.sub, u]));
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
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
      groups: ['groups', 'realm_access', 'team'],
    },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: { IdToken: opts.idTokenTtlSeconds ?? 3600, AccessToken: 3600, Interaction: 600, Grant: 3600, Session: 3600, RefreshToken: 86400 },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    // First-party clients: grant what was asked without a consent screen.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session?.grantIdFor(ctx.oidc.client?.clientId ?? '');
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client?.clientId, accountId: ctx.oidc.session?.accountId });
      grant.addOIDCScope(String(ctx.oidc.params?.scope ?? 'openid'));
      await grant.save();
      return grant;
    },
    issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  };
  const provider = new Provider(issuer, configuration);
  const callback = provider.callback();

  const hits = new Map<string, number>();
  server.on('request', async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0] as string;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const m = /^\/interaction\/([\w-]+)(\/login)?$/.exec(req.url ?? '');
    if (!m) return callback(req, res);
    try {
      if (req.method === 'GET') {
        const details = await provider.interactionDetails(req, res);
        const options = [...users.keys()].map((s) => `<option>${escapeHtml(s)}</option>`).join('');
        res.setHeader('content-type', 'text/html; charset=utf-8');
        return res.end(
          `<!doctype html><title>Test IdP sign-in</title><h1>Test IdP</h1><p>Client ${escapeHtml(String(details.params.client_id))}</p>` +
            `<form method="post" action="/interaction/${details.uid}/login"><label>User <select name="login">${options}</select></label>` +
            `<label>Password <input type="password" name="password" value="test"></label><button type="submit">Sign in</button></form>`,
        );
      }
      const form = await readForm(req);
      const login = form.get('login') ?? '';
      if (!users.has(login)) {
        res.statusCode = 400;
        return res.end('unknown user');
      }
      return await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    } catch (e) {
      res.statusCode = 500;
      return res.end(String(e));
    }
  });

  const login = async (clientId: string, sub: string, o: { scope?: string; redirectUri?: string } = {}): Promise<TokenSet> => {
    const client = opts.clients.find((c) => c.client_id === clientId);
    if (!client) throw new Error(`no test client ${clientId}`);
    const redirectUri = o.redirectUri ?? (client.redirect_uris[0] as string);
    const verifier = randomBytes(32).toString('base64url');
    const auth = new URL(`${issuer}/auth`);
    auth.search = new URLSearchParams({
      client_id: clientId,
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: o.scope ?? 'openid email profile groups',
      state: randomBytes(8).toString('hex'),
      nonce: randomBytes(8).toString('hex'),
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      ...(o.scope?.includes('offline_access') ? { prompt: 'consent' } : {}),
    }).toString();
    const jar = new Map<string, string>();
    const remember = (setCookie: string | string[] | undefined) => {
      for (const c of [setCookie ?? []].flat()) {
        const [pair] = c.split(';');
        const eq = (pair as string).indexOf('=');
        jar.set((pair as string).slice(0, eq), (pair as string).slice(eq + 1));
      }
    };
    const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    let url = auth.toString();
    for (let hop = 0; hop < 10; hop++) {
      if (url.startsWith(redirectUri)) break;
      const interaction = /\/interaction\/([\w-]+)$/.exec(new URL(url).pathname);
      const res = interaction
        ? await request(`${issuer}/interaction/${interaction[1]}/login`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookie() },
            body: new URLSearchParams({ login: sub, password: 'test' }).toString(),
          })
        : await request(url, { headers: { cookie: cookie() } });
      remember(res.headers['set-cookie']);
      const location = res.headers.location;
      if (typeof location !== 'string') throw new Error(`IdP login stopped at ${url}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
      url = new URL(location, issuer).toString();
    }
    const code = new URL(url).searchParams.get('code');
    if (!code) throw new Error(`no code in ${url}`);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (client.client_secret) headers.authorization = `Basic ${Buffer.from(`${clientId}:${client.client_secret}`).toString('base64')}`;
    const tokenRes = await request(`${issuer}/token`, {
      method: 'POST',
      headers,
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, client_id: clientId }).toString(),
    });
    if (tokenRes.status !== 200) throw new Error(`IdP token endpoint: ${tokenRes.status} ${tokenRes.body}`);
    return JSON.parse(tokenRes.body) as TokenSet;
  };

  const sign: TestIdp['sign'] = async (payload, how) => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    if (how.alg === 'none') return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
    if (how.alg === 'HS256-with-public-key') {
      return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: 'rs-1' }).sign(new TextEncoder().encode(rs.publicPem));
    }
    const pair = how.alg === 'RS256' ? rs : es;
    const key = await importJWK(pair.privateJwk, how.alg);
    return new SignJWT(payload).setProtectedHeader({ alg: how.alg, kid: how.kid ?? (pair.privateJwk.kid as string) }).sign(key);
  };

  return {
    issuer,
    login,
    sign,
    users,
    hits: (path) => hits.get(path) ?? 0,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
