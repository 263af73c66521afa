import { createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';

// New key pairs, made so that Node 20 cannot deadlock on them. generateKeyPairSync() hands back
// KeyObjects that share one lock with the key generation job that made them; the job's destructor
// takes that lock. When such a KeyObject is exported (KeyObject.export({ format: 'jwk' }) holds the
// lock while it allocates the strings) and the allocation runs a garbage collection that finalizes
// the job, the thread waits on a lock it holds, forever: Node 20.20 with OpenSSL 3.0 (gdb:
// ExportJWKEdKey → GC → ~KeyGenJob → uv_mutex_lock); a loop of generateKeyPairSync('ed25519')
// .privateKey.export({ format: 'jwk' }) stops within 10,000 keys (three runs of three), the same loop on Node 24 does
// not. Under load the gate stopped answering that way, in the middle of a benchmark.
//
// So the job encodes the keys itself (JWK, the cheapest encoding: no OpenSSL encoder) and no KeyObject
// of the job ever exists; where a KeyObject is needed it is imported from the JWK, and shares no lock
// with any job.

const JWK_ENCODINGS = { publicKeyEncoding: { format: 'jwk' }, privateKeyEncoding: { format: 'jwk' } };

// Why the cast: @types/node types generateKeyPairSync's encodings as pem and der only; Node (since
// 15.12) also takes jwk, and then returns the keys as plain JWK objects.
const generateJwkPair = generateKeyPairSync as unknown as (type: 'ed25519' | 'ec', options: object) => { privateKey: JsonWebKey; publicKey: JsonWebKey };

/** The two halves of a fresh Ed25519 key (RFC 8037: d the private seed, x the public key), base64url. */
export function newEd25519Jwk(): { d: string; x: string } {
  const { privateKey } = generateJwkPair('ed25519', JWK_ENCODINGS);
  if (typeof privateKey.d !== 'string' || typeof privateKey.x !== 'string') throw new Error('Ed25519 key generation returned no key');
  return { d: privateKey.d, x: privateKey.x };
}

/** A fresh key pair as KeyObjects that no key generation job shares a lock with. */
export function newKeyPair(kind: 'ed25519' | 'p256'): { privateKey: KeyObject; publicKey: KeyObject } {
  const jwk = kind === 'ed25519' ? generateJwkPair('ed25519', JWK_ENCODINGS).privateKey : generateJwkPair('ec', { namedCurve: 'prime256v1', ...JWK_ENCODINGS }).privateKey;
  const privateKey = createPrivateKey({ key: jwk, format: 'jwk' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}
