import * as client from 'openid-client';

// Sign-in with the company IdP: authorization code + PKCE, state and nonce, with openid-client.
// Discovery happens once and is cached (again only after a failure).

export interface OidcLoginSettings {
  issuer: string;
  clientId: string;
  clientSecret: string | undefined;
  scopes: string[];
  redirectUri: string;
}

export interface LoginStart {
  url: string;
  state: string;
  nonce: string;
  codeVerifier: string;
}

function isLoopbackHttp(u: string): boolean {
  const url = new URL(u);
  return url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

export class OidcLogin {
  private config: Promise<client.Configuration> | undefined;

  constructor(private readonly settings: OidcLoginSettings) {}

  private configuration(): Promise<client.Configuration> {
    this.config ??= client.discovery(
      new URL(this.settings.issuer),
      this.settings.clientId,
      this.settings.clientSecret,
      this.settings.clientSecret ? client.ClientSecretBasic(this.settings.clientSecret) : client.None(),
      // plain http is allowed only for an IdP on loopback (the development IdP); config refuses others
      isLoopbackHttp(this.settings.issuer) ? { execute: [client.allowInsecureRequests], timeout: 10 } : { timeout: 10 },
    );
    this.config.catch(() => {
      this.config = undefined;
    });
    return this.config;
  }

  /** Resolves when the IdP's discovery document can be had; for /readyz. */
  async ready(): Promise<void> {
    await this.configuration();
  }

  async start(): Promise<LoginStart> {
    const config = await this.configuration();
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: this.settings.redirectUri,
      scope: this.settings.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      // OpenID Connect Core §11: offline_access (an IdP refresh token) is granted with prompt=consent
      ...(this.settings.scopes.includes('offline_access') ? { prompt: 'consent' } : {}),
    });
    return { url: url.href, state, nonce, codeVerifier };
  }

  /** Exchanges the callback's code; checks state, nonce and the ID token. Returns its claims (and a refresh token with offline_access). */
  async finish(
    callbackUrl: URL,
    pending: { state: string; nonce: string; codeVerifier: string },
  ): Promise<{ claims: Record<string, unknown>; refreshToken: string | null }> {
    const config = await this.configuration();
    const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier: pending.codeVerifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    if (!claims) throw new Error('the IdP returned no ID token');
    return { claims: { ...claims }, refreshToken: tokens.refresh_token ?? null };
  }

  /**
   * Asks the IdP again with a refresh token: fails when the user was disabled or the token revoked.
   * Returns who the user is now, in full: the claims of the new ID token, or, when the IdP sends none
   * on refresh (OpenID Connect Core §12.2 makes it optional), its userinfo for the new access token
   * (§5.3, checked to be about `expectedSub`). With neither, the answer says nothing about the user and
   * the refresh is refused (IdpAnswerError): keeping the claims of last time would keep roles the IdP
   * may have taken away.
   */
  async refresh(refreshToken: string, expectedSub: string): Promise<{ claims: Record<string, unknown>; refreshToken: string }> {
    const config = await this.configuration();
    const tokens = await client.refreshTokenGrant(config, refreshToken);
    const next = tokens.refresh_token ?? refreshToken;
    const idTokenClaims = tokens.claims();
    if (idTokenClaims) return { claims: { ...idTokenClaims }, refreshToken: next };
    if (!config.serverMetadata().userinfo_endpoint) {
      throw new IdpAnswerError('the identity provider sent no ID token on refresh and has no userinfo endpoint');
    }
    const info = await client.fetchUserInfo(config, tokens.access_token, expectedSub);
    return { claims: { ...info }, refreshToken: next };
  }
}

/** The IdP answered, but not with anything that says who the user is now: the login cannot go on. */
export class IdpAnswerError extends Error {
  readonly error = 'invalid_identity';
  constructor(message: string) {
    super(message);
    this.name = 'IdpAnswerError';
  }
}
