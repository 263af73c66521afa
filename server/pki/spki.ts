import { createPublicKey, type KeyObject } from 'node:crypto';
import * as D from './der.js';
import { bitStringBytes, DerError, expectConstructed, oidOf, readDer, TAG } from './der-reader.js';

// Client public keys (RFC 5280 §4.1.2.7 SubjectPublicKeyInfo) read strictly and written again in
// their one canonical form. A certificate never carries the bytes a client sent: it carries the
// encoding below of the key those bytes were parsed into (Ed25519 by RFC 8410 §4, ECDSA by RFC 5480
// §2 with an uncompressed point, which is also the only form Go's crypto/x509 reads).

export type ClientKeyType = 'ed25519' | 'p256' | 'p384';

/** A key sent by a client that the gate certifies; anything else is refused with this. */
export class UnsupportedKeyError extends Error {
  constructor(message = 'the key must be Ed25519 or ECDSA P-256/P-384') {
    super(message);
    this.name = 'UnsupportedKeyError';
  }
}

const OID = {
  ed25519: '1.3.101.112',
  ecPublicKey: '1.2.840.10045.2.1',
  p256: '1.2.840.10045.3.1.7',
  p384: '1.3.132.0.34',
} as const;

interface Shape {
  type: ClientKeyType;
  /** Everything before the key bytes, fixed for the type. */
  prefix: Buffer;
  /** The key bytes after the prefix. */
  keyBytes: number;
  curve?: { oid: string; jwk: 'P-256' | 'P-384'; size: number };
}

const SHAPES: Shape[] = [
  { type: 'ed25519', prefix: Buffer.from('302a300506032b6570032100', 'hex'), keyBytes: 32 },
  // the 0x04 of an uncompressed point (SEC 1 §2.3.3) is part of the fixed prefix
  { type: 'p256', prefix: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex'), keyBytes: 64, curve: { oid: OID.p256, jwk: 'P-256', size: 32 } },
  { type: 'p384', prefix: Buffer.from('3076301006072a8648ce3d020106052b8104002203620004', 'hex'), keyBytes: 96, curve: { oid: OID.p384, jwk: 'P-384', size: 48 } },
];

const ED25519 = SHAPES[0] as Shape;

/** Whether an SPKI is exactly this shape's fixed prefix followed by its key bytes. */
function hasShape(spki: Buffer, s: Shape): boolean {
  return spki.length === s.prefix.length + s.keyBytes && spki.subarray(0, s.prefix.length).equals(s.prefix);
}

/** The canonical SPKI of a client key type around its raw key bytes (Ed25519: 32 bytes; EC: X||Y). */
export function canonicalSpki(type: ClientKeyType, keyBytes: Buffer): Buffer {
  const shape = SHAPES.find((s) => s.type === type) as Shape;
  if (keyBytes.length !== shape.keyBytes) throw new Error(`a ${type} key is ${shape.keyBytes} bytes`);
  return Buffer.concat([shape.prefix, keyBytes]);
}

/** RFC 8410 §7: PKCS #8 OneAsymmetricKey of an Ed25519 key, up to its 32-octet seed. */
export const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An Ed25519 private key's seed as PKCS #8 DER. */
export function ed25519Pkcs8(seed: Buffer): Buffer {
  if (seed.length !== 32) throw new Error('an Ed25519 seed is 32 bytes');
  return Buffer.concat([ED25519_PKCS8_PREFIX, seed]);
}

/** Whether an SPKI is the canonical encoding of a client key type the gate certifies. */
export function isCanonicalClientSpki(spki: Buffer): boolean {
  return SHAPES.some((s) => hasShape(spki, s));
}

export interface ParsedClientKey {
  type: ClientKeyType;
  /** The canonical SPKI of the key: what a certificate carries. */
  spkiDer: Buffer;
  /** The key, for verifying a CSR's signature. */
  key(): KeyObject;
}

/**
 * Reads a client's SPKI strictly (readDer: one element, nothing trailing at any level) and returns
 * the canonical encoding of the key it holds. Throws DerError for malformed DER and
 * UnsupportedKeyError for a key type or curve the gate does not certify.
 */
export function parseClientSpki(der: Buffer): ParsedClientKey {
  // the common case first: an exact canonical Ed25519 SPKI (OpenSSL takes any 32 bytes as a key, so
  // importing it would check nothing more than this comparison does)
  if (hasShape(der, ED25519)) return ed25519Key(der.subarray(ED25519.prefix.length));
  const [alg, bits] = expectConstructed(readDer(der), TAG.SEQUENCE, [2], 'SubjectPublicKeyInfo');
  const algParts = expectConstructed(alg, TAG.SEQUENCE, [1, 2], 'AlgorithmIdentifier');
  const algorithm = oidOf(algParts[0], 'algorithm');
  const keyBits = bitStringBytes(bits, 'subjectPublicKey');
  if (algorithm === OID.ed25519) {
    // RFC 8410 §3: the parameters MUST be absent
    if (algParts.length !== 1) throw new DerError('an Ed25519 key has no algorithm parameters');
    if (keyBits.length !== ED25519.keyBytes) throw new DerError('an Ed25519 key is 32 bytes');
    return ed25519Key(keyBits);
  }
  if (algorithm !== OID.ecPublicKey) throw new UnsupportedKeyError();
  if (algParts.length !== 2) throw new DerError('an EC key names its curve');
  const curveOid = oidOf(algParts[1], 'namedCurve');
  const shape = SHAPES.find((s) => s.curve?.oid === curveOid);
  if (!shape?.curve) throw new UnsupportedKeyError();
  return ecKey(shape, keyBits);
}

function ed25519Key(raw: Buffer): ParsedClientKey {
  const spkiDer = canonicalSpki('ed25519', Buffer.from(raw));
  return {
    type: 'ed25519',
    spkiDer,
    key: () => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' }),
  };
}

/**
 * An EC point in uncompressed (0x04 X Y) or compressed (0x02/0x03 X) form, SEC 1 §2.3.3. OpenSSL
 * checks the point is on the curve as it imports it; the canonical SPKI is built from the
 * coordinates it exports.
 */
function ecKey(shape: Shape, point: Buffer): ParsedClientKey {
  const curve = shape.curve as NonNullable<Shape['curve']>;
  const size = curve.size;
  let key: KeyObject;
  try {
    if (point.length === 1 + 2 * size && point[0] === 0x04) {
      const x = point.subarray(1, 1 + size).toString('base64url');
      const y = point.subarray(1 + size).toString('base64url');
      key = createPublicKey({ key: { kty: 'EC', crv: curve.jwk, x, y }, format: 'jwk' });
    } else if (point.length === 1 + size && (point[0] === 0x02 || point[0] === 0x03)) {
      // rebuilt from the parsed parts, not the input bytes
      const alg = D.sequence([D.objectIdentifier(OID.ecPublicKey), D.objectIdentifier(curve.oid)]);
      key = createPublicKey({ key: D.sequence([alg, D.bitString(point)]), format: 'der', type: 'spki' });
    } else {
      throw new DerError('not an EC point of this curve');
    }
  } catch (e) {
    if (e instanceof DerError) throw e;
    throw new DerError('the EC point is not on the curve');
  }
  const jwk = key.export({ format: 'jwk' });
  const xy = Buffer.concat([Buffer.from(jwk.x as string, 'base64url'), Buffer.from(jwk.y as string, 'base64url')]);
  return { type: shape.type, spkiDer: canonicalSpki(shape.type, xy), key: () => key };
}

/**
 * The issuer's last word before it signs: an SPKI is one well-formed element (SEQUENCE of an
 * AlgorithmIdentifier and a whole-octet BIT STRING, nothing trailing at any level). Throws otherwise.
 */
export function assertWellFormedSpki(spki: Buffer): void {
  if (isCanonicalClientSpki(spki)) return;
  const [alg, bits] = expectConstructed(readDer(spki), TAG.SEQUENCE, [2], 'SubjectPublicKeyInfo');
  expectConstructed(alg, TAG.SEQUENCE, [1, 2], 'AlgorithmIdentifier');
  bitStringBytes(bits, 'subjectPublicKey');
}
