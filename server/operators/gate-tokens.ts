import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, jwtVerify, SignJWT, type JWK } from 'jose';

// The gate's own access tokens for operators who logged in with the device flow: short-lived EdDSA
// JWTs signed with a key made once in data_dir, published at /.well-known/jwks.json.

export const GATE_TOKEN_AUDIENCE = 'talos-gate';

export interface GateTokenClaims {
  sub: string;
  email?: string;
  /** The operator grant (login) the token belongs to. */
  gid: string;
}

export class GateTokenSigner {
  private constructor(
    private readonly key: KeyObject,
    private readonly publicKey: KeyObject,
    readonly kid: string,
    private readonly publicJwk: JWK,
    private readonly issuer: string,
  ) {}

  static async load(dataDir: string, issuer: string): Promise<GateTokenSigner> {
    const file = join(dataDir, 'gate-signing-key.pem');
    if (!existsSync(file)) {
      const { privateKey } = generateKeyPairSync('ed25519');
      writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    }
    const key = createPrivateKey(readFileSync(file, 'utf8'));
    const publicKey = createPublicKey(key);
    const jwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(jwk);
    return new GateTokenSigner(key, publicKey, kid, { ...jwk, kid, alg: 'EdDSA', use: 'sig' }, issuer);
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk] };
  }

  sign(claims: GateTokenClaims, ttlMs: number, now: number): Promise<string> {
    const iat = Math.floor(now / 1000);
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'EdDSA', kid: this.kid, typ: 'at+jwt' })
      .setIssuer(this.issuer)
      .setAudience(GATE_TOKEN_AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + Math.floor(ttlMs / 1000))
      .setJti(crypto.randomUUID())
      .sign(this.key);
  }

  /** Verifies signature, issuer, audience and expiry; throws jose's errors otherwise. */
  async verify(token: string): Promise<GateTokenClaims> {
    const { payload } = await jwtVerify(token, this.publicKey, {
      issuer: this.issuer,
      audience: GATE_TOKEN_AUDIENCE,
      algorithms: ['EdDSA', 'Ed25519'],
      requiredClaims: ['sub', 'gid', 'exp'],
    });
    return { sub: payload.sub as string, gid: String(payload.gid), ...(typeof payload.email === 'string' ? { email: payload.email } : {}) };
  }

  /** Whether a token claims to be ours (by its issuer), without verifying it. */
  isOurs(token: string): boolean {
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
