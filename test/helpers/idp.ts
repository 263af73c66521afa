import { createHash, randomBytes } from 'node:crypto';
import { importJWK, SignJWT, type JWTPayload } from 'jose';
import { request } from '../../cli/http.js';
import { startDevIdp, type DevIdp, type DevIdpClient, type DevIdpUser } from '../../server/dev-idp/provider.js';

// The real oidc-provider IdP on 127.0.0.1 (server/dev-idp), plus what tests need: a programmatic
// authorization code + PKCE sign-in that returns real tokens, and tokens signed with the IdP's own
// keys (or forged headers) for negative tests.

export interface TokenSet {
  id_token: string;
  access_token: string;
  refresh_token?: string;
  expires_in: number;
}

export type SignHow = { alg: 'RS256' | 'ES256'; kid?: string } | { alg: 'none' } | { alg: 'HS256-with-public-key' };

export interface TestIdp extends DevIdp {
  login(clientId: string, sub: string, opts?: { scope?: string; redirectUri?: string }): Promise<TokenSet>;
  sign(payload: JWTPayload, how: SignHow): Promise<string>;
}

export async function startIdp(opts: { users: DevIdpUser[]; clients: DevIdpClient[]; idTokenTtlSeconds?: number }): Promise<TestIdp> {
  const idp = await startDevIdp(opts);
  const { issuer } = idp;

  const login: TestIdp['login'] = async (clientId, sub, o = {}) => {
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
        const pair = c.split(';')[0] as string;
        const eq = pair.indexOf('=');
        jar.set(pair.slice(0, eq), pair.slice(eq + 1));
      }
    };
    const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    let url = auth.toString();
    for (let hop = 0; hop < 10 && !url.startsWith(redirectUri); hop++) {
      const interaction = /\/interaction\/([\w-]+)$/.exec(new URL(url).pathname);
      // the dev IdP answers a consent interaction by itself, whatever the method
      const res = interaction
        ? await request(`${issuer}/interaction/${interaction[1]}/login`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: cookie() },
            body: new URLSearchParams({ login: sub }).toString(),
          })
        : await request(url, { headers: { cookie: cookie() } });
      remember(res.headers['set-cookie']);
      const location = res.headers.location;
      if (typeof location !== 'string') throw new Error(`IdP sign-in stopped at ${url}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
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
      return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: 'rs-1' }).sign(new TextEncoder().encode(idp.keys.rs.publicPem));
    }
    const pair = how.alg === 'RS256' ? idp.keys.rs : idp.keys.es;
    const key = await importJWK(pair.privateJwk, how.alg);
    return new SignJWT(payload).setProtectedHeader({ alg: how.alg, kid: how.kid ?? (pair.privateJwk.kid as string) }).sign(key);
  };

  return { ...idp, login, sign };
}
