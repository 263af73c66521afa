import { createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { claimAt } from './claims.js';
import { ExchangeError } from './errors.js';
import { verifyPlainJws } from './jws-fast-path.js';

/** Asymmetric algorithms only: never "none", never HMAC (a public key must not become a shared secret). */
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export interface IdTokenVerifierOptions {
  issuer: string;
  /** Accepted audiences: the gate's client_id plus extra_audiences. */
  audiences: string[];
  clockSkewMs: number;
  requiredClaims: Record<string, string | number | boolean>;
  /** An unknown kid makes the JWKS be fetched again at most this often. */
  jwksRefreshIntervalMs: number;
  fetchTimeoutMs?: number;
}

interface Discovered {
  jwks: ReturnType<typeof createRemoteJWKSet>;
}

/**
 * Verifies ID tokens of one OIDC issuer. Discovery happens once (again only after a failure); the
 * JWKS is cached and fetched again only for an unknown kid, at most every jwksRefreshInterval, so a
 * flood of tokens with made-up kids cannot make the gate hammer the IdP.
 */
export class IdTokenVerifier {
  private discovered: Promise<Discovered> | undefined;
  /**
   * The key set the fast path uses: jose's, taken once (jose hands out a copy per call). jose fetches
   * again only inside its own jwtVerify, so this is dropped whenever that ran: the next token takes
   * whatever jose holds then.
   */
  private keys: JSONWebKeySet | undefined;

  constructor(private readonly opts: IdTokenVerifierOptions) {}

  private discover(): Promise<Discovered> {
    this.discovered ??= (async () => {
      const url = `${this.opts.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
      const res = await fetch(url, { signal: AbortSignal.timeout(this.opts.fetchTimeoutMs ?? 5000) });
      if (!res.ok) throw new Error(`OIDC discovery at ${url} answered HTTP ${res.status}`);
      const meta = (await res.json()) as { issuer?: string; jwks_uri?: string };
      if (meta.issuer !== this.opts.issuer) throw new Error(`OIDC discovery: issuer is ${meta.issuer}, expected ${this.opts.issuer}`);
      if (!meta.jwks_uri) throw new Error('OIDC discovery: no jwks_uri');
      return {
        jwks: createRemoteJWKSet(new URL(meta.jwks_uri), {
          cooldownDuration: this.opts.jwksRefreshIntervalMs,
          cacheMaxAge: 10 * 60_000,
          timeoutDuration: this.opts.fetchTimeoutMs ?? 5000,
        }),
      };
    })();
    this.discovered.catch(() => {
      this.discovered = undefined;
    });
    return this.discovered;
  }

  private async verifyWithJose(token: string, d: Discovered, claimOptions: Omit<JWTVerifyOptions, 'algorithms'>): Promise<JWTPayload> {
    this.keys = undefined;
    try {
      return (await jwtVerify(token, d.jwks, { ...claimOptions, algorithms: ALLOWED_ALGORITHMS })).payload;
    } finally {
      // jose may have fetched the JWKS meanwhile
      this.keys = undefined;
    }
  }

  /** Resolves when discovery works; for readiness checks and start-up. */
  async ready(): Promise<void> {
    await this.discover();
  }

  async verify(token: string): Promise<JWTPayload> {
    let d: Discovered;
    try {
      d = await this.discover();
    } catch (e) {
      throw new ExchangeError('unavailable', 'the identity provider cannot be reached', (e as Error).message);
    }
    let payload: JWTPayload;
    const claimOptions = {
      issuer: this.opts.issuer,
      audience: this.opts.audiences,
      clockTolerance: Math.round(this.opts.clockSkewMs / 1000),
      requiredClaims: ['sub', 'exp', 'iat'],
    };
    try {
      // the cached keys only while jose would use them without fetching again (cacheMaxAge)
      const keys = d.jwks.fresh ? (this.keys ??= d.jwks.jwks()) : undefined;
      payload = (await verifyPlainJws(token, keys, ALLOWED_ALGORITHMS, claimOptions)) ?? (await this.verifyWithJose(token, d, claimOptions));
    } catch (e) {
      throw tokenError(e);
    }
    // OpenID Connect Core §2: sub is a non-empty case-sensitive string of at most 255 ASCII characters;
    // a number or an object here is the IdP's mistake, told as such, never a failure of ours
    if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 255) {
      throw new ExchangeError('invalid_token', 'the token\'s sub claim must be a non-empty string of at most 255 characters', `sub=${JSON.stringify(payload.sub)?.slice(0, 80)}`);
    }
    if (typeof payload.iat === 'number' && payload.iat * 1000 > Date.now() + this.opts.clockSkewMs) {
      throw new ExchangeError('invalid_token', 'the token was issued in the future', `iat ${payload.iat}`);
    }
    for (const [claim, want] of Object.entries(this.opts.requiredClaims)) {
      const got = claimAt(payload, claim);
      const ok = Array.isArray(got) ? got.includes(want) : got === want;
      if (!ok) throw new ExchangeError('invalid_token', `required claim ${claim} is missing or not ${JSON.stringify(want)}`, `${claim}=${JSON.stringify(got)}`);
    }
    return payload;
  }
}

/** jose's errors as reasons a client may see; the full message goes to the audit log. */
function tokenError(e: unknown): ExchangeError {
  const detail = e instanceof Error ? e.message : String(e);
  if (e instanceof errors.JWTExpired) return new ExchangeError('invalid_token', 'the token has expired', detail);
  if (e instanceof errors.JWTClaimValidationFailed) {
    const reasons: Record<string, string> = {
      iss: 'the token was issued by another issuer',
      aud: 'the token is for another audience',
      nbf: 'the token is not yet valid',
      iat: 'the token has an invalid issue time',
      sub: 'the token has no subject',
      exp: 'the token has no expiry',
    };
    return new ExchangeError('invalid_token', reasons[e.claim] ?? `the token's ${e.claim} claim is invalid`, detail);
  }
  if (e instanceof errors.JOSEAlgNotAllowed) return new ExchangeError('invalid_token', 'the token is signed with an algorithm that is not allowed', detail);
  if (e instanceof errors.JWSSignatureVerificationFailed) return new ExchangeError('invalid_token', 'the token signature is invalid', detail);
  if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) {
    return new ExchangeError('invalid_token', 'the token is signed with an unknown key', detail);
  }
  if (e instanceof errors.JWKSTimeout) return new ExchangeError('unavailable', 'the identity provider cannot be reached', detail);
  if (e instanceof errors.JOSEError) return new ExchangeError('invalid_token', 'the token is malformed', detail);
  return new ExchangeError('unavailable', 'the identity provider cannot be reached', detail);
}
