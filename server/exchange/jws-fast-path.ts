import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { UnsecuredJWT, type JSONWebKeySet, type JWK, type JWTPayload, type JWTClaimVerificationOptions } from 'jose';

// The usual ID token, verified without WebCrypto. jose verifies through crypto.subtle: an async
// hop and a CryptoKey per token, which the exchange bench showed costing about twice the signature
// check itself. For the common case (a compact JWS whose header is alg, kid and typ only, one key of
// the cached JWKS matching kid and alg as jose's own key selection would pick it) the signature is
// checked here with a one-shot node:crypto verify on a KeyObject made once per key, and the claims
// by jose itself (UnsecuredJWT.decode runs the same claim checks as jwtVerify, with the same errors).
// The verify runs on libuv's thread pool (node:crypto's callback form): it is a quarter of the
// exchange's main-thread time, and the event loop serves other requests meanwhile (bench --compare:
// 1.14–1.29 of the rate of the synchronous call on a 2-core machine, no more CPU per exchange).
// These jobs hold KeyObjects made from JWK, never by a key generation job, so fresh-keys.ts's Node 20
// deadlock cannot reach them (half a million jobs beside exports of the same keys: no stall).
// Anything else, and any signature that does not verify, goes the full jose way, so every refusal
// and its message is jose's, and this path only ever accepts what jose accepts.

interface AlgSpec {
  hash: string | null;
  kty: string;
  crv?: string;
  /** ECDSA signatures in JWS are r‖s (RFC 7518 §3.4), not DER. */
  p1363?: boolean;
}

/** RFC 7518 §3.1 (and RFC 8037 / RFC 9864 for Ed25519); PS* always take jose's path. */
const ALGS: Record<string, AlgSpec> = {
  RS256: { hash: 'sha256', kty: 'RSA' },
  RS384: { hash: 'sha384', kty: 'RSA' },
  RS512: { hash: 'sha512', kty: 'RSA' },
  ES256: { hash: 'sha256', kty: 'EC', crv: 'P-256', p1363: true },
  ES384: { hash: 'sha384', kty: 'EC', crv: 'P-384', p1363: true },
  ES512: { hash: 'sha512', kty: 'EC', crv: 'P-521', p1363: true },
  EdDSA: { hash: null, kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { hash: null, kty: 'OKP', crv: 'Ed25519' },
};

/** The only header parameters this path knows; crit, b64, jku, x5c, … go to jose. */
const PLAIN_HEADER = new Set(['alg', 'kid', 'typ']);
const NONE_HEADER = Buffer.from('{"alg":"none"}').toString('base64url');
/** Node's base64url decoder skips characters outside the alphabet; jose refuses them. */
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** KeyObjects per JWKS snapshot (jose replaces the snapshot object when it fetches again). */
const keyCache = new WeakMap<JSONWebKeySet, Map<string, KeyObject | null>>();

/** The one key jose's selection (jose/jwks/local isUsableJWK) would pick, or null when not exactly one. */
function keyFor(jwks: JSONWebKeySet, kid: string, alg: string, spec: AlgSpec): KeyObject | null {
  let cache = keyCache.get(jwks);
  if (!cache) keyCache.set(jwks, (cache = new Map()));
  const id = `${alg}\u0000${kid}`;
  const hit = cache.get(id);
  if (hit !== undefined) return hit;
  const candidates = jwks.keys.filter(
    (k: JWK) =>
      k.kid === kid &&
      k.kty === spec.kty &&
      (spec.crv === undefined || k.crv === spec.crv) &&
      (k.alg === undefined || k.alg === alg) &&
      (k.use === undefined || k.use === 'sig') &&
      (k.key_ops === undefined || (Array.isArray(k.key_ops) && k.key_ops.includes('verify'))),
  );
  let key: KeyObject | null = null;
  if (candidates.length === 1) {
    try {
      key = createPublicKey({ key: candidates[0] as JWK & { kty: string }, format: 'jwk' });
      // jose refuses RSA keys under 2048 bits; so does this path, by leaving them to jose
      if (spec.kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) key = null;
    } catch {
      key = null;
    }
  }
  cache.set(id, key);
  return key;
}

/**
 * The token's verified claims, or undefined when jose must decide (not the plain case, or the
 * signature does not verify here). Claim errors are jose's and are thrown as jwtVerify throws them.
 */
export async function verifyPlainJws(
  token: string,
  jwks: JSONWebKeySet | undefined,
  allowed: readonly string[],
  claimOptions: JWTClaimVerificationOptions,
): Promise<JWTPayload | undefined> {
  if (!jwks) return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const [h, p, s] = parts as [string, string, string];
  if (!BASE64URL.test(h) || !BASE64URL.test(p) || !BASE64URL.test(s)) return undefined;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return undefined;
  if (Object.keys(header).some((k) => !PLAIN_HEADER.has(k))) return undefined;
  const { alg, kid } = header;
  if (typeof alg !== 'string' || typeof kid !== 'string' || !allowed.includes(alg)) return undefined;
  const spec = ALGS[alg];
  if (!spec) return undefined;
  const key = keyFor(jwks, kid, alg, spec);
  if (!key) return undefined;
  let ok: boolean;
  try {
    const data = Buffer.from(`${h}.${p}`, 'latin1');
    const sig = Buffer.from(s, 'base64url');
    ok = await new Promise<boolean>((resolve, reject) => verify(spec.hash, data, spec.p1363 ? { key, dsaEncoding: 'ieee-p1363' } : key, sig, (e, r) => (e ? reject(e) : resolve(r))));
  } catch {
    return undefined;
  }
  if (!ok) return undefined;
  return UnsecuredJWT.decode(`${NONE_HEADER}.${p}.`, claimOptions).payload;
}
