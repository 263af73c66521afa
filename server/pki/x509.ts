import { createHash, randomFillSync, sign, type KeyObject, type SignKeyObjectInput } from 'node:crypto';
import { isIP } from 'node:net';
import * as D from './der.js';
import { childrenOf, expectConstructed, oidOf, present, readDer, TAG } from './der-reader.js';
import { assertWellFormedSpki } from './spki.js';

// X.509 certificates encoded with our own DER writer (der.ts) and signed by node:crypto, so Ed25519,
// ECDSA (P-256/P-384) and RSA issuers share one code path; CA certificates are read by der-reader.ts.

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ed25519: '1.3.101.112',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  rsaSha256: '1.2.840.113549.1.1.11',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

export interface Name {
  commonName?: string;
  organizations?: string[];
}

export type KeyUsage = 'digitalSignature' | 'keyEncipherment' | 'keyCertSign' | 'cRLSign';

/** The certified public key: a key object, or its SPKI DER when the caller has that already. */
export type CertifiedKey = { publicKey: KeyObject } | { spkiDer: Buffer };

export type CertificateRequest = CertifiedKey & {
  subject: Name;
  /** 16 random bytes (positive) when omitted. */
  serial?: Buffer;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  keyUsage: KeyUsage[];
  extKeyUsage?: ('serverAuth' | 'clientAuth')[];
  /** DNS names and IP addresses. */
  subjectAltNames?: string[];
};

export interface Issuer {
  /** The issuer's subject: a Name to encode, or the exact DER copied from its certificate. */
  name: Name | Buffer;
  key: KeyObject;
  publicKey: KeyObject;
  /** The issuer's subject key identifier, when its certificate has one; else derived from its key. */
  keyId?: Buffer | undefined;
}

export interface IssuedCertificate {
  der: Buffer;
  pem: string;
  serialHex: string;
  /** SHA-256 of the DER, lower-case hex. */
  fingerprint: string;
}

const KEY_USAGE_BITS: Record<KeyUsage, number> = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 };

/** A DN with one RDN per attribute: O first (one per role, as talosctl writes them), then CN. */
export function encodeName(name: Name): Buffer {
  const rdn = (type: string, value: string) => D.set([D.sequence([D.objectIdentifier(type), D.utf8String(value)])]);
  const rdns = (name.organizations ?? []).map((o) => rdn(OID.organization, o));
  if (name.commonName !== undefined) rdns.push(rdn(OID.commonName, name.commonName));
  return D.sequence(rdns);
}

/** The signature algorithm an issuer key implies, as DER AlgorithmIdentifier and node:crypto digest. */
function signatureAlgorithm(key: KeyObject): { algId: Buffer; digest: string | null } {
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return { algId: D.sequence([D.objectIdentifier(OID.ed25519)]), digest: null };
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return { algId: D.sequence([D.objectIdentifier(OID.ecdsaSha256)]), digest: 'sha256' };
      if (curve === 'secp384r1') return { algId: D.sequence([D.objectIdentifier(OID.ecdsaSha384)]), digest: 'sha384' };
      if (curve === 'secp521r1') return { algId: D.sequence([D.objectIdentifier(OID.ecdsaSha512)]), digest: 'sha512' };
      throw new Error(`unsupported EC curve ${curve}`);
    }
    case 'rsa':
      return { algId: D.sequence([D.objectIdentifier(OID.rsaSha256), D.derNull()]), digest: 'sha256' };
    default:
      throw new Error(`unsupported issuer key type ${key.asymmetricKeyType}`);
  }
}

/** Where a DER element's contents start and end, given the offset of its tag. */
function derElement(der: Buffer, at: number): { start: number; end: number } {
  let len = der[at + 1] as number;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (der[start + i] as number);
    start += n;
  }
  return { start, end: start + len };
}

/**
 * RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING contents, read straight from
 * the SPKI DER (SEQUENCE { AlgorithmIdentifier, BIT STRING }) on the hot path of every exchange.
 */
export function keyIdentifierOfSpki(spki: Buffer): Buffer {
  const outer = derElement(spki, 0);
  const algId = derElement(spki, outer.start);
  const bits = derElement(spki, algId.end);
  return createHash('sha1').update(spki.subarray(bits.start + 1, bits.end)).digest(); // +1: the unused-bits byte
}

export function keyIdentifier(publicKey: KeyObject): Buffer {
  return keyIdentifierOfSpki(publicKey.export({ type: 'spki', format: 'der' }));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return D.sequence([D.objectIdentifier(id), ...(critical ? [D.boolTrue()] : []), D.octetString(value)]);
}

function keyUsageBits(usages: KeyUsage[]): Buffer {
  let bits = 0;
  let highest = 0;
  for (const u of usages) {
    bits |= 0x80 >> KEY_USAGE_BITS[u];
    highest = Math.max(highest, KEY_USAGE_BITS[u]);
  }
  return D.bitString(Buffer.of(bits), 7 - highest);
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.concat(groups.map((g) => Buffer.from(g.padStart(4, '0'), 'hex')));
}

function subjectAltNames(names: string[]): Buffer {
  // GeneralName: [7] iPAddress, [2] dNSName (IA5String), both IMPLICIT
  return D.sequence(names.map((n) => (isIP(n) ? D.implicitPrimitive(7, ipBytes(n)) : D.implicitPrimitive(2, Buffer.from(n, 'latin1')))));
}

// Serials come from a pool of CSPRNG output filled 4 KiB at a time: one randomBytes(16) per
// certificate cost about 2 % of an exchange's CPU (each call is a trip into OpenSSL's RAND_bytes
// through a crypto job), one fill per 256 serials costs nothing measurable. Every byte is handed out
// once and copied out of the pool, so no two certificates share randomness.
const SERIAL_BYTES = 16;
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** n octets of the pool, copied into out at offset and cleared in the pool. */
function randomOctetsInto(out: Buffer, offset: number, n: number): void {
  if (poolAt + n > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  pool.copy(out, offset, poolAt, poolAt + n);
  pool.fill(0, poolAt, poolAt + n);
  poolAt += n;
}

/**
 * A positive 128-bit serial (RFC 5280 §4.1.2.2: positive, at most 20 octets), time-ordered: 0x40,
 * then the issue time in milliseconds (6 octets, big-endian), then 9 octets (72 bits) of CSPRNG
 * output, more than the 64 bits the CA/Browser Forum's Baseline Requirements (§7.1) ask for.
 * The time first makes every new serial sort after the ones before it, so the certificate store's
 * unique index on the serial grows at its end: with fully random serials each exchange wrote an
 * index page at a random place (the same cost migration 006 removed for the fingerprint).
 */
export function randomSerial(nowMs: number = Date.now()): Buffer {
  const b = Buffer.allocUnsafe(SERIAL_BYTES);
  // 0x40: the sign bit clear (positive) and the next set, so the DER INTEGER is always the full 16 octets
  b[0] = 0x40;
  b.writeUIntBE(Math.max(0, Math.floor(nowMs)) % 2 ** 48, 1, 6);
  randomOctetsInto(b, 7, SERIAL_BYTES - 7);
  return b;
}

/** What every certificate of one issuer shares, encoded once per issuer rather than once per exchange. */
interface IssuerParts {
  algId: Buffer;
  digest: string | null;
  name: Buffer;
  authorityKeyId: Buffer;
}

const issuerParts = new WeakMap<Issuer, IssuerParts>();

function partsOf(issuer: Issuer): IssuerParts {
  let parts = issuerParts.get(issuer);
  if (!parts) {
    const keyId = issuer.keyId ?? keyIdentifier(issuer.publicKey);
    parts = {
      ...signatureAlgorithm(issuer.key),
      name: Buffer.isBuffer(issuer.name) ? issuer.name : encodeName(issuer.name),
      authorityKeyId: extension(OID.authorityKeyIdentifier, false, D.sequence([D.implicitPrimitive(0, keyId)])),
    };
    issuerParts.set(issuer, parts);
  }
  return parts;
}

const VERSION_3 = D.explicit(0, D.unsignedInteger(Buffer.of(2)));

/** The key usage and extended key usage extensions, encoded once per combination (a handful: one per certificate profile). */
const usageCache = new Map<string, Buffer>();

function usageExtensions(keyUsage: KeyUsage[], extKeyUsage: CertificateRequest['extKeyUsage']): Buffer {
  const id = `${keyUsage.join(',')}/${extKeyUsage?.join(',') ?? ''}`;
  let der = usageCache.get(id);
  if (!der) {
    const ku = extension(OID.keyUsage, true, keyUsageBits(keyUsage));
    der = extKeyUsage?.length ? Buffer.concat([ku, extension(OID.extKeyUsage, false, D.sequence(extKeyUsage.map((u) => D.objectIdentifier(OID[u]))))]) : ku;
    usageCache.set(id, der);
  }
  return der;
}

/** A TBSCertificate ready to sign, with what the signed certificate is assembled from. */
interface UnsignedCertificate {
  tbs: Buffer;
  serial: Buffer;
  algId: Buffer;
  digest: string | null;
  key: KeyObject;
}

function unsignedCertificate(req: CertificateRequest, issuer: Issuer): UnsignedCertificate {
  const serial = req.serial ?? randomSerial();
  const { algId, digest, name: issuerName, authorityKeyId } = partsOf(issuer);
  const exts: Buffer[] = [];
  if (req.isCa) exts.push(extension(OID.basicConstraints, true, D.sequence([D.boolTrue()])));
  exts.push(usageExtensions(req.keyUsage, req.extKeyUsage));
  const spki = 'spkiDer' in req ? req.spkiDer : req.publicKey.export({ type: 'spki', format: 'der' });
  // the SPKI goes into the signed bytes whole: it must be one element and nothing more (a client's
  // extra element here once became a CA's extensions to Go's parser)
  assertWellFormedSpki(spki);
  exts.push(extension(OID.subjectKeyIdentifier, false, D.octetString(keyIdentifierOfSpki(spki))));
  exts.push(authorityKeyId);
  if (req.subjectAltNames?.length) exts.push(extension(OID.subjectAltName, false, subjectAltNames(req.subjectAltNames)));

  const tbs = D.sequence([
    VERSION_3,
    D.unsignedInteger(serial),
    algId,
    issuerName,
    D.sequence([D.time(req.notBefore), D.time(req.notAfter)]),
    encodeName(req.subject),
    spki,
    D.explicit(3, D.sequence(exts)),
  ]);
  return { tbs, serial, algId, digest, key: issuer.key };
}

/** ECDSA signatures in X.509 are DER (RFC 5758 §3.2); Ed25519 and RSA take the key alone. */
function signingKey(key: KeyObject): KeyObject | SignKeyObjectInput {
  return key.asymmetricKeyType === 'ec' ? { key, dsaEncoding: 'der' } : key;
}

function signedCertificate(u: UnsignedCertificate, signature: Buffer): IssuedCertificate {
  const certDer = D.sequence([u.tbs, u.algId, D.bitString(signature)]);
  return {
    der: certDer,
    pem: toPem('CERTIFICATE', certDer),
    serialHex: u.serial.toString('hex'),
    fingerprint: createHash('sha256').update(certDer).digest('hex'),
  };
}

export function issueCertificate(req: CertificateRequest, issuer: Issuer): IssuedCertificate {
  const u = unsignedCertificate(req, issuer);
  return signedCertificate(u, sign(u.digest, u.tbs, signingKey(u.key)));
}

/**
 * issueCertificate with the signature made on libuv's thread pool, so the event loop serves other
 * requests meanwhile (the exchange: its CA signature is a tenth of its main-thread time).
 */
export async function issueCertificateOffLoop(req: CertificateRequest, issuer: Issuer): Promise<IssuedCertificate> {
  const u = unsignedCertificate(req, issuer);
  const signature = await new Promise<Buffer>((resolve, reject) => sign(u.digest, u.tbs, signingKey(u.key), (e, sig) => (e ? reject(e) : resolve(sig))));
  return signedCertificate(u, signature);
}

/**
 * The parts of a CA certificate an issuer needs: its exact subject DER (RFC 5280 §4.1.2.4: an issued
 * certificate's issuer is the CA's subject, and Go builds chains by comparing those bytes) and its
 * subject key identifier. The CA file is the operator's, not a client's; it is read strictly all the same.
 */
export function issuerFieldsOf(certDer: Buffer): { subjectDer: Buffer; keyId: Buffer | undefined } {
  const [tbsEl] = expectConstructed(readDer(certDer), TAG.SEQUENCE, [3], 'Certificate');
  const tbs = childrenOf(present(tbsEl, 'TBSCertificate'));
  // TBSCertificate: [0] version (explicit, optional), serial, signature, issuer, validity, subject, spki, …
  const offset = tbs[0]?.tag === TAG.CONTEXT_0_CONSTRUCTED ? 1 : 0;
  const subjectDer = Buffer.from(present(tbs[offset + 4], 'subject').raw);
  let keyId: Buffer | undefined;
  const extsWrapper = tbs.find((n) => n.tag === 0xa3); // [3] EXPLICIT Extensions
  const exts = extsWrapper ? childrenOf(present(childrenOf(extsWrapper)[0], 'extensions')) : [];
  for (const ext of exts) {
    const parts = childrenOf(ext);
    if (oidOf(parts[0], 'extnID') !== OID.subjectKeyIdentifier) continue;
    const value = present(parts[parts.length - 1], 'extnValue');
    const inner = readDer(value.contents); // KeyIdentifier ::= OCTET STRING
    if (inner.tag === TAG.OCTET_STRING) keyId = Buffer.from(inner.contents);
  }
  return { subjectDer, keyId };
}

export function toPem(label: string, body: Buffer): string {
  const b64 = body.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
