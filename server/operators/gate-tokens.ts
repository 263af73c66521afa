import { decodeProtectedHeader, errors, jwtVerify, SignJWT, type JWK } from 'jose';
import type { Storage } from '../storage/storage.js';
import { ensureSigningKey, loadKey, RING_REFRESH_MS, signerOf, type LoadedKey } from './signing-keys.js';

// The gate's own access tokens for operators who logged in with the device flow: short-lived EdDSA
// JWTs signed with the keys of signing-keys.ts (in the database, shared by every instance), all of
// them published at /.well-known/jwks.json.

export const GATE_TOKEN_AUDIENCE = 'talos-gate';

/** A token with a kid this instance does not know reads the keys again, at most this often (forged kids cost no queries). */
const UNKNOWN_KID_RELOAD_MS = 1_000;

export interface GateTokenClaims {
  sub: string;
  email?: string;
  /** The operator grant (login) the token belongs to. */
  gid: string;
}

/** base64url of `{"alg":"EdDSA","kid":` (21 octets, so exactly 28 characters, none shared with what follows): how sign()'s headers begin. */
const OUR_HEADER_START = Buffer.from('{"alg":"EdDSA","kid":').toString('base64url');

export class GateTokenSigner {
  private keys: LoadedKey[] = [];
  private loadedAt = -Infinity;
  private loading: Promise<void> | undefined;

  private constructor(
    private readonly storage: Storage,
    private readonly issuer: string,
    private readonly now: () => number,
  ) {}

  /** The signer over the stored keys; makes the first key when there is none (see ensureSigningKey). */
  static async open(storage: Storage, dataDir: string, issuer: string, now: () => number = Date.now): Promise<GateTokenSigner> {
    await ensureSigningKey(storage, dataDir, now());
    const signer = new GateTokenSigner(storage, issuer, now);
    await signer.reload();
    return signer;
  }

  /** Reads the keys again (another instance may have added or retired one); joins a read already under way. */
  reload(): Promise<void> {
    this.loading ??= (async () => {
      const started = this.now();
      const keys = await Promise.all((await this.storage.listSigningKeys()).map(loadKey));
      this.keys = keys;
      this.loadedAt = started;
    })().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  /** The keys, read again when the copy is older than RING_REFRESH_MS; a failed read keeps the old copy. */
  private async current(): Promise<LoadedKey[]> {
    if (this.now() - this.loadedAt >= RING_REFRESH_MS) {
      try {
        await this.reload();
      } catch (e) {
        if (this.keys.length === 0) throw e;
      }
    }
    return this.keys;
  }

  /** Every key that verifies: the signer, the next one already published, and the previous ones until retired. */
  async jwks(): Promise<{ keys: JWK[] }> {
    return { keys: (await this.current()).map((k) => k.jwk) };
  }

  /** The kid that signs now (tests and `keys list`). */
  async signingKid(): Promise<string> {
    const signer = signerOf(await this.current(), this.now());
    if (!signer) throw new Error('gate tokens: no signing key');
    return signer.kid;
  }

  async sign(claims: GateTokenClaims, ttlMs: number, now: number): Promise<string> {
    const signer = signerOf(await this.current(), now);
    if (!signer) throw new Error('gate tokens: no signing key');
    const iat = Math.floor(now / 1000);
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'EdDSA', kid: signer.kid, typ: 'at+jwt' })
      .setIssuer(this.issuer)
      .setAudience(GATE_TOKEN_AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + Math.floor(ttlMs / 1000))
      .setJti(crypto.randomUUID())
      .sign(signer.privateKey);
  }

  /** Verifies signature (by the key its kid names), issuer, audience and expiry; throws jose's errors otherwise. */
  async verify(token: string): Promise<GateTokenClaims> {
    const { kid } = decodeProtectedHeader(token);
    let key = (await this.current()).find((k) => k.kid === kid);
    if (!key && this.now() - this.loadedAt >= UNKNOWN_KID_RELOAD_MS) {
      // made by another instance since this one last read the keys
      await this.reload();
      key = this.keys.find((k) => k.kid === kid);
    }
    if (!key) throw new errors.JWKSNoMatchingKey('no gate signing key has this kid (retired, or never ours)');
    const { payload } = await jwtVerify(token, key.publicKey, {
      issuer: this.issuer,
      audience: GATE_TOKEN_AUDIENCE,
      algorithms: ['EdDSA', 'Ed25519'],
      requiredClaims: ['sub', 'gid', 'exp'],
    });
    return { sub: payload.sub as string, gid: String(payload.gid), ...(typeof payload.email === 'string' ? { email: payload.email } : {}) };
  }

  /** Whether a token claims to be ours (by its issuer), without verifying it. */
  isOurs(token: string): boolean {
    // sign() writes the header with alg first: every token of ours starts with these characters, so
    // an IdP's ID token (RS256, ES256, …) is told apart without decoding its payload, on every exchange
    if (!token.startsWith(OUR_HEADER_START)) return false;
    const parts = token.split('.');
    if (parts.length !== 3) return false;
    try {
      const payload = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')) as { iss?: unknown };
      return payload.iss === this.issuer;
    } catch {
      return false;
    }
  }
}
