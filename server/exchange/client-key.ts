import { createPublicKey, generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { toPem } from '../pki/x509.js';
import { ExchangeError } from './errors.js';

// The key a client certificate certifies: a public key the client sent (PEM SPKI), the key of a
// PKCS#10 CSR whose signature proves the client holds it, or a new Ed25519 key the gate makes and
// returns once.

export interface ClientKey {
  /** The key as SPKI DER: what the certificate carries. */
  spkiDer: Buffer;
  /** PKCS#8 PEM, only when the gate generated the key. */
  privateKeyPem?: string;
}

const SIGNATURE_DIGEST: Record<string, string | null> = {
  '1.3.101.112': null, // Ed25519
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

function checkKeyType(key: KeyObject): void {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type === 'ed25519') return;
  if (type === 'ec' && (curve === 'prime256v1' || curve === 'secp384r1')) return;
  throw new ExchangeError('invalid_request', 'the key must be Ed25519 or ECDSA P-256/P-384');
}

export function publicKeyFromPem(pem: string): ClientKey {
  const m = /^\s*-----BEGIN PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----\s*$/.exec(pem);
  if (!m) throw new ExchangeError('invalid_request', 'public_key must be a PEM "PUBLIC KEY" (SPKI)');
  // DER with its type named: OpenSSL 3's PEM decoder guesses formats and costs more than the signature
  const spkiDer = Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64');
  // Ed25519 in its one exact shape: OpenSSL takes any 32 bytes as a key, so importing it would check
  // nothing more than this comparison does
  if (hasShape(spkiDer, ED25519_SPKI_PREFIX, 32)) return { spkiDer };
  let key: KeyObject;
  try {
    key = importSpki(spkiDer);
  } catch {
    throw new ExchangeError('invalid_request', 'public_key is not a readable public key');
  }
  checkKeyType(key);
  return { spkiDer };
}

// The fixed DER before the key bits of the SPKIs clients send: Ed25519, and ECDSA P-256/P-384 with
// uncompressed points. EC points are imported as JWK (OpenSSL checks they are on the curve), which
// skips OpenSSL 3's generic decoder, costlier than signing the certificate; other shapes take it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const SPKI_PREFIXES = [
  { prefix: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex'), keyBytes: 64, jwk: ecJwk('P-256', 32) },
  { prefix: Buffer.from('3076301006072a8648ce3d020106052b81040022036200' + '04', 'hex'), keyBytes: 96, jwk: ecJwk('P-384', 48) },
];

function ecJwk(crv: string, size: number) {
  return (k: Buffer) => ({ kty: 'EC', crv, x: k.subarray(0, size).toString('base64url'), y: k.subarray(size).toString('base64url') });
}

/** Whether an SPKI is exactly this fixed prefix followed by keyBytes of key. */
function hasShape(spkiDer: Buffer, prefix: Buffer, keyBytes: number): boolean {
  return spkiDer.length === prefix.length + keyBytes && spkiDer.subarray(0, prefix.length).equals(prefix);
}

function importSpki(spkiDer: Buffer): KeyObject {
  for (const { prefix, keyBytes, jwk } of SPKI_PREFIXES) {
    if (hasShape(spkiDer, prefix, keyBytes)) {
      return createPublicKey({ key: jwk(spkiDer.subarray(prefix.length)), format: 'jwk' });
    }
  }
  return createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
}

/** The public key of a CSR, after checking the CSR's own signature. Its requested subject is ignored. */
export function publicKeyFromCsr(pem: string): ClientKey {
  const m = /-----BEGIN (NEW )?CERTIFICATE REQUEST-----([\s\S]+?)-----END (NEW )?CERTIFICATE REQUEST-----/.exec(pem);
  if (!m) throw new ExchangeError('invalid_request', 'csr must be a PEM "CERTIFICATE REQUEST"');
  try {
    const der = Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64');
    const csr = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
    const [info, algId, sig] = csr.value as forge.asn1.Asn1[];
    const infoDer = Buffer.from(forge.asn1.toDer(info as forge.asn1.Asn1).getBytes(), 'binary');
    const spki = ((info as forge.asn1.Asn1).value as forge.asn1.Asn1[])[2] as forge.asn1.Asn1;
    const spkiDer = Buffer.from(forge.asn1.toDer(spki).getBytes(), 'binary');
    const key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
    const oid = forge.asn1.derToOid(forge.util.createBuffer(((algId as forge.asn1.Asn1).value as forge.asn1.Asn1[])[0]?.value as string));
    if (!(oid in SIGNATURE_DIGEST)) throw new ExchangeError('invalid_request', 'the CSR is signed with an unsupported algorithm');
    const signature = Buffer.from(((sig as forge.asn1.Asn1).value as string).slice(1), 'binary');
    const digest = SIGNATURE_DIGEST[oid] ?? null;
    const ok = verify(digest, infoDer, key.asymmetricKeyType === 'ec' ? { key, dsaEncoding: 'der' } : key, signature);
    if (!ok) throw new ExchangeError('invalid_request', "the CSR's signature does not verify");
    checkKeyType(key);
    return { spkiDer };
  } catch (e) {
    if (e instanceof ExchangeError) throw e;
    throw new ExchangeError('invalid_request', 'csr is not a readable PKCS#10 request');
  }
}

// RFC 8410 encodings of an Ed25519 key around its raw 32 bytes: OpenSSL 3's encoders cost four times
// the key generation, JWK export almost nothing, so the DER is put together here.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export function generateClientKey(): ClientKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const pkcs8 = Buffer.concat([ED25519_PKCS8_PREFIX, Buffer.from(jwk.d as string, 'base64url')]);
  return {
    spkiDer: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(jwk.x as string, 'base64url')]),
    privateKeyPem: toPem('PRIVATE KEY', pkcs8),
  };
}
