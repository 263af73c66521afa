import { ed25519Pkcs8 } from '../../server/pki/spki.js';
import { createECDH, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';

// A DER writer of the tests' own, apart from server/pki/der.ts: malformed inputs are built with it
// (non-minimal and indefinite lengths, extra elements), so it must be able to write what the
// server's writer never would, and a bug in the server's writer must not hide in both.

/** How an element's length is written: minimal (DER), long form with extra octets, or indefinite (BER). */
export type LengthForm = 'der' | 'long1' | 'long2' | 'long4' | 'indefinite';

export function encodeLength(n: number, form: LengthForm = 'der'): Buffer {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  switch (form) {
    case 'der':
      return n < 0x80 ? Buffer.of(n) : Buffer.from([0x80 | bytes.length, ...bytes]);
    case 'long1':
      // 0x81 nn even when nn < 0x80: valid BER, not DER (for n < 256)
      return n < 256 ? Buffer.of(0x81, n) : encodeLength(n, 'long2');
    case 'long2':
      return Buffer.of(0x82, (n >> 8) & 0xff, n & 0xff);
    case 'long4':
      return Buffer.of(0x84, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    case 'indefinite':
      return Buffer.of(0x80);
  }
}

export function tlv(tag: number, contents: Buffer, form: LengthForm = 'der'): Buffer {
  if (form === 'indefinite') return Buffer.concat([Buffer.of(tag, 0x80), contents, Buffer.of(0, 0)]);
  return Buffer.concat([Buffer.of(tag), encodeLength(contents.length, form), contents]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
export const octets = (b: Buffer): Buffer => tlv(0x04, b);
export const bits = (b: Buffer, unused = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.of(unused), b]));
export const int = (n: number): Buffer => tlv(0x02, n < 0x80 ? Buffer.of(n) : Buffer.of(0, n));
export const bool = (v: boolean): Buffer => Buffer.of(0x01, 0x01, v ? 0xff : 0x00);
export const nul = (): Buffer => Buffer.of(0x05, 0x00);
export const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
/** UTCTime, seconds, Zulu (dates before 2050). */
export const utcTime = (d: Date): Buffer => tlv(0x17, Buffer.from(d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z', 'latin1'));
/** [n] EXPLICIT (constructed, context-specific). */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);

export function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const out: number[] = [];
  for (const arc of [a * 40 + b, ...rest]) {
    const enc = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) enc.unshift(0x80 | (v & 0x7f));
    out.push(...enc);
  }
  return tlv(0x06, Buffer.from(out));
}

export const OIDS = {
  ed25519: '1.3.101.112',
  ecPublicKey: '1.2.840.10045.2.1',
  p256: '1.2.840.10045.3.1.7',
  p384: '1.3.132.0.34',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  extensionRequest: '1.2.840.113549.1.9.14',
} as const;

export const name = (rdns: [string, string][]): Buffer => seq(...rdns.map(([type, value]) => set(seq(oid(type), utf8(value)))));

/**
 * The extensions of a CA, as an X.509 [3] element: basicConstraints critical CA:TRUE and keyUsage
 * critical keyCertSign. This is what the review smuggled into the SPKI: Go reads a [3] right after
 * the SPKI as the certificate's extensions.
 */
export function caExtensions(): Buffer {
  return explicit(3, caExtensionList());
}

export function caExtensionList(): Buffer {
  return seq(
    seq(oid(OIDS.basicConstraints), bool(true), octets(seq(bool(true)))),
    // keyCertSign is bit 5: 0x04 with 2 unused bits
    seq(oid(OIDS.keyUsage), bool(true), octets(bits(Buffer.of(0x04), 2))),
  );
}

// ---- keys -----------------------------------------------------------------------------------

export type KeyType = 'ed25519' | 'p256' | 'p384';

export const CANONICAL_PREFIX: Record<KeyType, Buffer> = {
  ed25519: Buffer.from('302a300506032b6570032100', 'hex'),
  p256: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'),
  p384: Buffer.from('3076301006072a8648ce3d020106052b81040022036200', 'hex'),
};

/** The one SPKI encoding of a key a certificate may carry, computed from its JWK (not from OpenSSL's SPKI export). */
export function canonicalSpki(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x ?? '', 'base64url');
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return Buffer.concat([CANONICAL_PREFIX.ed25519, x]);
  const y = Buffer.from(jwk.y ?? '', 'base64url');
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return Buffer.concat([CANONICAL_PREFIX.p256, Buffer.of(4), x, y]);
  if (jwk.kty === 'EC' && jwk.crv === 'P-384') return Buffer.concat([CANONICAL_PREFIX.p384, Buffer.of(4), x, y]);
  throw new Error(`no canonical SPKI for ${jwk.kty} ${jwk.crv}`);
}

export interface TestKey {
  type: KeyType;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The canonical SPKI DER. */
  spki: Buffer;
  /** The raw key bits (Ed25519: 32 bytes; EC: 04 || X || Y). */
  raw: Buffer;
}


/** A key made from seed bytes, so a seeded run makes the same keys every time. */
export function keyFromSeed(type: KeyType, seed: Buffer): TestKey {
  let privateKey: KeyObject;
  if (type === 'ed25519') {
    privateKey = createPrivateKey({ key: ed25519Pkcs8(seed.subarray(0, 32)), format: 'der', type: 'pkcs8' });
  } else {
    const [curve, crv, size] = type === 'p256' ? (['prime256v1', 'P-256', 32] as const) : (['secp384r1', 'P-384', 48] as const);
    const ecdh = createECDH(curve);
    // a seed that is 0 or above the order is as unlikely as a hash collision; setPrivateKey would throw
    ecdh.setPrivateKey(seed.subarray(0, size));
    const point = ecdh.getPublicKey();
    privateKey = createPrivateKey({
      key: {
        kty: 'EC',
        crv,
        d: ecdh.getPrivateKey().toString('base64url'),
        x: point.subarray(1, 1 + size).toString('base64url'),
        y: point.subarray(1 + size).toString('base64url'),
      },
      format: 'jwk',
    });
  }
  const publicKey = createPublicKey(privateKey);
  const spki = canonicalSpki(publicKey);
  return { type, privateKey, publicKey, spki, raw: spki.subarray(CANONICAL_PREFIX[type].length) };
}

/** The AlgorithmIdentifier of the SPKI of a key type. */
export function spkiAlgorithm(type: KeyType): Buffer {
  if (type === 'ed25519') return seq(oid(OIDS.ed25519));
  return seq(oid(OIDS.ecPublicKey), oid(type === 'p256' ? OIDS.p256 : OIDS.p384));
}

/** The signature AlgorithmIdentifier for signing with a key type, and node:crypto's digest for it. */
export function signatureAlgorithm(type: KeyType): { algId: Buffer; digest: string | null } {
  if (type === 'ed25519') return { algId: seq(oid(OIDS.ed25519)), digest: null };
  return type === 'p256' ? { algId: seq(oid(OIDS.ecdsaSha256)), digest: 'sha256' } : { algId: seq(oid(OIDS.ecdsaSha384)), digest: 'sha384' };
}

export function signWith(key: TestKey, data: Buffer): Buffer {
  const { digest } = signatureAlgorithm(key.type);
  return sign(digest, data, key.type === 'ed25519' ? key.privateKey : { key: key.privateKey, dsaEncoding: 'der' });
}

/** A PKCS#10 CertificationRequestInfo: version 0, subject, the SPKI bytes as given, then `after`, then attributes. */
export function certificationRequestInfo(spkiBytes: Buffer, opts: { subject?: Buffer; after?: Buffer; attributes?: Buffer } = {}): Buffer {
  return seq(int(0), opts.subject ?? name([[OIDS.commonName, 'forged']]), spkiBytes, opts.after ?? Buffer.alloc(0), explicit(0, opts.attributes ?? Buffer.alloc(0)));
}

/** A CSR over the exact CRI bytes given, signed with the key (the signature is valid over those bytes). */
export function signedCsr(key: TestKey, cri: Buffer): Buffer {
  return seq(cri, signatureAlgorithm(key.type).algId, bits(signWith(key, cri)));
}

export function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

// ---- reading, for mutating well-formed DER ---------------------------------------------------

/** One element of well-formed DER: primitive with contents, or constructed with children. */
export interface DerNode {
  tag: number;
  contents: Buffer;
  children?: DerNode[];
}

/** Reads DER the tests wrote themselves (single-octet tags, definite lengths); throws on anything else. */
export function parseDer(buf: Buffer): DerNode {
  const [node, end] = readNode(buf, 0);
  if (end !== buf.length) throw new Error(`${buf.length - end} bytes after the element`);
  return node;
}

function readNode(buf: Buffer, at: number): [DerNode, number] {
  const tag = buf[at];
  let len = buf[at + 1];
  if (tag === undefined || len === undefined || (tag & 0x1f) === 0x1f) throw new Error(`bad element at ${at}`);
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error(`unsupported length at ${at}`);
    len = buf.readUIntBE(start, n);
    start += n;
  }
  const end = start + len;
  if (end > buf.length) throw new Error(`element at ${at} runs past the end`);
  const contents = buf.subarray(start, end);
  if (!(tag & 0x20)) return [{ tag, contents }, end];
  const children: DerNode[] = [];
  for (let p = start; p < end; ) {
    const [child, next] = readNode(buf, p);
    children.push(child);
    p = next;
  }
  return [{ tag, contents, children }, end];
}

export function encodeDer(node: DerNode): Buffer {
  return tlv(node.tag, node.children ? Buffer.concat(node.children.map(encodeDer)) : node.contents);
}

/** Every element of a tree with its path (child indexes from the root). */
export function allPaths(node: DerNode, path: number[] = []): { path: number[]; node: DerNode }[] {
  return [{ path, node }, ...(node.children ?? []).flatMap((c, i) => allPaths(c, [...path, i]))];
}

/** Encodes the tree with the element at `path` written by `replace` instead (its parents' lengths follow). */
export function encodeReplacing(node: DerNode, path: number[], replace: (n: DerNode) => Buffer): Buffer {
  if (path.length === 0) return replace(node);
  if (!node.children) throw new Error('no such path');
  const [i, ...rest] = path;
  return tlv(node.tag, Buffer.concat(node.children.map((c, j) => (j === i ? encodeReplacing(c, rest, replace) : encodeDer(c)))));
}
