import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import * as client from 'openid-client';

// `talos-gate login` in a browser: authorization code + PKCE + state + nonce against the company IdP
// with the CLI's own public client, answered on a loopback redirect (RFC 8252).

export interface IdpTokens {
  idToken: string;
  refreshToken: string | null;
}

function isLoopbackHttp(u: string): boolean {
  const url = new URL(u);
  return url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

export async function idpConfiguration(issuer: string, clientId: string): Promise<client.Configuration> {
  return client.discovery(new URL(issuer), clientId, undefined, client.None(), isLoopbackHttp(issuer) ? { execute: [client.allowInsecureRequests] } : undefined);
}

/** Tries to open a browser; never fails the login when none opens. */
function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'cmd' : 'xdg-open';
  const args = process.platform === 'win32' ? ['/c', 'start', '', url] : [url];
  try {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // no browser here: the URL is printed anyway
  }
}

const DONE_PAGE = (ok: boolean, msg: string) =>
  `<!doctype html><meta charset="utf-8"><title>talos-gate</title><body style="font-family:system-ui;padding:2rem"><h1>${ok ? 'Logged in' : 'Login failed'}</h1><p>${msg}</p></body>`;

export async function browserLogin(opts: {
  issuer: string;
  clientId: string;
  scopes: string[];
  callbackPort?: number | undefined;
  openBrowser: boolean;
  say: (line: string) => void;
  signal?: AbortSignal;
}): Promise<IdpTokens> {
  const config = await idpConfiguration(opts.issuer, opts.clientId);
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.callbackPort ?? 0, '127.0.0.1', resolve);
  });
  const addr = server.address();
  const redirectUri = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/callback`;
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: opts.scopes.join(' '),
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...(opts.scopes.includes('offline_access') ? { prompt: 'consent' } : {}),
  });
  opts.say(`Open this URL in a browser to log in:\n\n  ${url.href}\n`);
  if (opts.openBrowser) openBrowser(url.href);
  try {
    return await new Promise<IdpTokens>((resolve, reject) => {
      opts.signal?.addEventListener('abort', () => reject(new Error('login cancelled')));
      server.on('request', (req, res) => {
        const here = new URL(req.url ?? '/', redirectUri);
        if (here.pathname !== '/callback') {
          res.statusCode = 404;
          res.end();
          return;
        }
        client
          .authorizationCodeGrant(config, here, { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true })
          .then((tokens) => {
            res.setHeader('content-type', 'text/html; charset=utf-8');
            res.end(DONE_PAGE(true, 'You can close this window and go back to the terminal.'));
            resolve({ idToken: tokens.id_token as string, refreshToken: tokens.refresh_token ?? null });
          })
          .catch((e: Error) => {
            res.statusCode = 400;
            res.setHeader('content-type', 'text/html; charset=utf-8');
            res.end(DONE_PAGE(false, 'The answer from the identity provider could not be verified. Start the login again.'));
            reject(new Error(`login failed: ${e.message}`));
          });
      });
    });
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** A new ID token with the IdP refresh token (rotated when the IdP rotates it). */
export async function refreshIdp(issuer: string, clientId: string, refreshToken: string): Promise<IdpTokens> {
  const config = await idpConfiguration(issuer, clientId);
  const tokens = await client.refreshTokenGrant(config, refreshToken);
  if (!tokens.id_token) throw new Error('the IdP returned no ID token on refresh');
  return { idToken: tokens.id_token, refreshToken: tokens.refresh_token ?? refreshToken };
}
