import { createHash, createPrivateKey, createPublicKey, verify, type KeyObject, X509Certificate } from 'node:crypto';
import { bitStringBytes, childrenOf, DerError, expectConstructed, oidOf, present, readDer, TAG, type DerElement } from './der-reader.js';
import { decodePem, PemError } from './pem.js';
import { ED25519_PKCS8_PREFIX, isCanonicalClientSpki, parseClientSpki, UnsupportedKeyError } from './spki.js';
import { issuerFieldsOf, toPem } from './x509.js';

// Trust but verify: a client certificate someone else signed (Talos, through GenerateClientConfiguration)
// is read here, strictly, before the gate hands it on. It must be exactly what the gate would have
// asked for: an X.509 v3 client certificate (RFC 5280) in DER (X.690 §10) that Go's crypto/x509 reads
// as we do, for exactly the requested roles (Subject O, which apid maps to roles), from the expected
// CA (signature verified with that CA's key), no longer-lived than asked, certifying the key that
// came with it. The checks mirror what test/helpers/go-x509.ts asserts of the gate's own certificates,
// loosened only where Talos legitimately writes certificates differently: Go puts all O values of a
// name into one RDN, writes PrintableString, and sets no CN and may add basicConstraints CA:FALSE.

/** Why a certificate from elsewhere is not handed on. The message names the check, never echoes bytes. */
export class IssuedCertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IssuedCertificateError';
  }
}

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  basicConstraints: '2.5.29.19',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** Signature algorithms a Talos OS CA signs with, and the CA key type and digest each implies. */
const SIGNATURES: Record<string, { keyType: string; digest: string | null; nullParams: boolean }> = {
  '1.3.101.112': { keyType: 'ed25519', digest: null, nullParams: false }, // RFC 8410 §3: no parameters
  '1.2.840.10045.4.3.2': { keyType: 'ec', digest: 'sha256', nullParams: false }, // RFC 5758 §3.2
  '1.2.840.10045.4.3.3': { keyType: 'ec', digest: 'sha384', nullParams: false },
  '1.2.840.10045.4.3.4': { keyType: 'ec', digest: 'sha512', nullParams: false },
  '1.2.840.113549.1.1.11': { keyType: 'rsa', digest: 'sha256', nullParams: true }, // RFC 4055 §5: NULL parameters
  '1.2.840.113549.1.1.12': { keyType: 'rsa', digest: 'sha384', nullParams: true },
  '1.2.840.113549.1.1.13': { keyType: 'rsa', digest: 'sha512', nullParams: true },
};

/** Extensions a Talos client certificate may carry; anything else (critical or not) is refused. */
const KNOWN_EXTENSIONS = new Set<string>([OID.keyUsage, OID.extKeyUsage, OID.basicConstraints, OID.subjectKeyIdentifier, OID.authorityKeyIdentifier]);

export interface TrustedCa {
  pem: string;
  x509: X509Certificate;
  subjectDer: Buffer;
  keyId: Buffer | undefined;
  publicKey: KeyObject;
}

const PEM_BLOCKS = /-----BEGIN [A-Z0-9 ]+-----[\s\S]*?-----END [A-Z0-9 ]+-----/g;

/**
 * The CA certificates of a PEM bundle (a talosconfig's `ca` may hold the old and the new CA while
 * Talos rotates it). Each must be a CA certificate; the bundle must hold at least one.
 */
export function readTrustedCas(pem: string, what: string): TrustedCa[] {
  const blocks = pem.match(PEM_BLOCKS) ?? [];
  if (blocks.length === 0) throw new IssuedCertificateError(`${what} holds no PEM certificate`);
  return blocks.map((block, i) => {
    let der: Buffer;
    try {
      der = decodePem(block, ['CERTIFICATE']).der;
    } catch (e) {
      throw new IssuedCertificateError(`${what}, certificate ${i + 1}: ${(e as Error).message}`);
    }
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(der);
    } catch (e) {
      throw new IssuedCertificateError(`${what}, certificate ${i + 1} is not readable: ${(e as Error).message}`);
    }
    if (!x509.ca) throw new IssuedCertificateError(`${what}, certificate ${i + 1} is not a CA certificate (basicConstraints CA:TRUE is missing)`);
    const { subjectDer, keyId } = issuerFieldsOf(x509.raw);
    return { pem: toPem('CERTIFICATE', der), x509, subjectDer, keyId, publicKey: x509.publicKey };
  });
}

/**
 * A private key as Talos writes it (PKCS#8 under "PRIVATE KEY" or Go's "ED25519 PRIVATE KEY"
 * label, or SEC 1 "EC PRIVATE KEY"), read from exactly one PEM block.
 */
export function readPrivateKeyPem(text: string): KeyObject {
  let block: { label: string; der: Buffer };
  try {
    block = decodePem(text, ['PRIVATE KEY', 'ED25519 PRIVATE KEY', 'EC PRIVATE KEY']);
  } catch (e) {
    throw new IssuedCertificateError(`the private key: ${(e as Error).message}`);
  }
  try {
    return createPrivateKey({ key: block.der, format: 'der', type: block.label === 'EC PRIVATE KEY' ? 'sec1' : 'pkcs8' });
  } catch {
    throw new IssuedCertificateError('the private key is not a readable key');
  }
}

// RFC 8410 §7: an Ed25519 PKCS#8 (v1) is this prefix and the 32-byte seed; RFC 8410 §4: its SPKI is
// the other prefix and the 32-byte public key.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * The private key that came with a certificate, checked to be the certified key's other half and
 * returned as canonical PKCS#8 PEM. Talos' Ed25519 keys take a fast path: OpenSSL 3's PKCS#8 decoder
 * costs ten times importing the seed as a JWK, and the public key derived from the seed is compared.
 */
function matchingPrivateKey(pem: string, spki: Buffer): string {
  let block: { label: string; der: Buffer } | undefined;
  try {
    block = decodePem(pem, ['PRIVATE KEY', 'ED25519 PRIVATE KEY', 'EC PRIVATE KEY']);
  } catch (e) {
    fail(`the private key: ${(e as Error).message}`);
  }
  const der = (block as { der: Buffer }).der;
  if (der.length === 48 && der.subarray(0, 16).equals(ED25519_PKCS8_PREFIX) && spki.length === 44 && spki.subarray(0, 12).equals(ED25519_SPKI_PREFIX)) {
    const d = der.subarray(16).toString('base64url');
    const x = spki.subarray(12).toString('base64url');
    // Node 20 builds the key from d alone (x only has to be present, so what d yields is compared
    // below); Node 24 refuses an x that does not belong to d outright: both are the same mismatch
    let key: ReturnType<typeof createPrivateKey> | undefined;
    try {
      key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d, x }, format: 'jwk' });
    } catch {
      key = undefined;
    }
    if (!key || createPublicKey(key).export({ format: 'jwk' }).x !== x) fail('the private key does not match the certificate');
    return toPem('PRIVATE KEY', der);
  }
  const key = readPrivateKeyPem(pem);
  if (!createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(spki)) fail('the private key does not match the certificate');
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

export interface Expected {
  roles: string[];
  /** When the request was made and the lifetime asked for: notAfter may be at most now + ttl + skew. */
  now: number;
  ttlMs: number;
  skewMs: number;
  /** The CAs the certificate must chain to (one of them, directly). */
  cas: TrustedCa[];
  /** The private key that came with it, PEM: the certificate must certify its public half. */
  privateKeyPem: string;
}

export interface CheckedCertificate {
  der: Buffer;
  pem: string;
  serialHex: string;
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  /** The subject's CN, when the signer wrote one (Talos writes none). */
  commonName: string | undefined;
  /** The key as canonical PKCS#8 PEM ("PRIVATE KEY"), whatever label it came under. */
  privateKeyPem: string;
  ca: TrustedCa;
}

const fail = (what: string): never => {
  throw new IssuedCertificateError(what);
};

/** INTEGER contents in their shortest form (X.690 §8.3.2). */
function integerBytes(el: DerElement | undefined, what: string): Buffer {
  if (!el || el.tag !== TAG.INTEGER || el.contents.length === 0) return fail(`${what} is not an INTEGER`);
  const c = el.contents;
  if (c.length > 1 && ((c[0] === 0x00 && ((c[1] as number) & 0x80) === 0) || (c[0] === 0xff && ((c[1] as number) & 0x80) !== 0))) {
    fail(`${what} is not in its shortest form`);
  }
  return c;
}

/** UTCTime or GeneralizedTime as RFC 5280 §4.1.2.5 allows them: seconds, Z, no fractions. */
function timeOf(el: DerElement | undefined, what: string): Date {
  const text = el?.contents.toString('latin1') ?? '';
  let m: RegExpExecArray | null = null;
  let year = 0;
  if (el?.tag === 0x17) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
    if (m) year = Number(m[1]) + (Number(m[1]) < 50 ? 2000 : 1900); // §4.1.2.5.1
  } else if (el?.tag === 0x18) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
    if (m) year = Number(m[1]);
  }
  if (!m) return fail(`${what} is not a UTCTime or GeneralizedTime in UTC with seconds`);
  const [mo, d, h, mi, s] = m.slice(2).map(Number) as [number, number, number, number, number];
  const t = Date.UTC(year, mo - 1, d, h, mi, s);
  const back = new Date(t);
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) fail(`${what} is not a valid date`);
  return back;
}

/** A directory string value: UTF8String, or PrintableString with only its own characters (X.680 §41.4). */
function stringValue(el: DerElement | undefined, what: string): string {
  if (el?.tag === 0x0c) {
    const s = el.contents.toString('utf8');
    if (!Buffer.from(s, 'utf8').equals(el.contents)) fail(`${what} is not valid UTF-8`);
    return s;
  }
  if (el?.tag === 0x13) {
    const s = el.contents.toString('latin1');
    if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s)) fail(`${what} has characters a PrintableString cannot hold`);
    return s;
  }
  return fail(`${what} is neither a UTF8String nor a PrintableString`);
}

/** The subject: only O (one per role) and at most one CN; RDNs of one or more attributes (Go groups O values). */
function readSubject(el: DerElement | undefined): { organizations: string[]; commonName: string | undefined } {
  if (!el || el.tag !== TAG.SEQUENCE) return fail('the subject is not a Name');
  const organizations: string[] = [];
  let commonName: string | undefined;
  for (const rdn of childrenOf(el)) {
    if (rdn.tag !== TAG.SET) fail('the subject has an RDN that is not a SET');
    const atvs = childrenOf(rdn);
    if (atvs.length === 0) fail('the subject has an empty RDN');
    for (const atv of atvs) {
      const [type, value] = expectConstructed(atv, TAG.SEQUENCE, [2], 'AttributeTypeAndValue');
      const oid = oidOf(type, 'attribute type');
      if (oid === OID.organization) organizations.push(stringValue(value, 'an O value'));
      else if (oid === OID.commonName && commonName === undefined) commonName = stringValue(value, 'the CN');
      else fail(`the subject has an attribute other than O and one CN (${oid})`);
    }
  }
  return { organizations, commonName };
}

interface Extensions {
  keyUsage: boolean;
  extKeyUsage: boolean;
  authorityKeyId: Buffer | undefined;
}

function readExtensions(wrapper: DerElement | undefined): Extensions {
  if (!wrapper || wrapper.tag !== 0xa3) return fail('the certificate has no extensions');
  const [list] = expectConstructed(wrapper, 0xa3, [1], 'extensions');
  const seen = new Set<string>();
  const out: Extensions = { keyUsage: false, extKeyUsage: false, authorityKeyId: undefined };
  for (const ext of childrenOf(present(list, 'extensions'))) {
    const parts = expectConstructed(ext, TAG.SEQUENCE, [2, 3], 'Extension');
    const oid = oidOf(parts[0], 'extnID');
    if (seen.has(oid)) fail(`extension ${oid} appears twice`);
    seen.add(oid);
    if (parts.length === 3) {
      // DER (X.690 §11.5): a DEFAULT FALSE is never written, so a present critical is TRUE
      const c = parts[1];
      if (!c || c.tag !== 0x01 || c.contents.length !== 1 || c.contents[0] !== 0xff) fail(`extension ${oid}: critical is not a DER TRUE`);
    }
    const value = present(parts[parts.length - 1], 'extnValue');
    if (value.tag !== TAG.OCTET_STRING) fail(`extension ${oid}: extnValue is not an OCTET STRING`);
    if (!KNOWN_EXTENSIONS.has(oid)) fail(`the certificate carries extension ${oid}, which a Talos client certificate does not`);
    const inner = readDer(value.contents);
    switch (oid) {
      case OID.keyUsage:
        // digitalSignature only: bit 0, the other seven unused (X.690 §11.2.2: no trailing zero bits)
        if (inner.tag !== TAG.BIT_STRING || !inner.contents.equals(Buffer.of(0x07, 0x80))) fail('key usage is not exactly digitalSignature');
        out.keyUsage = true;
        break;
      case OID.extKeyUsage: {
        const purposes = expectConstructed(inner, TAG.SEQUENCE, [1], 'extended key usage');
        if (oidOf(purposes[0], 'key purpose') !== OID.clientAuth) fail('extended key usage is not exactly clientAuth');
        out.extKeyUsage = true;
        break;
      }
      case OID.basicConstraints:
        // cA DEFAULT FALSE: an empty SEQUENCE; anything in it (cA TRUE, a path length) is a CA's
        if (inner.tag !== TAG.SEQUENCE || inner.contents.length !== 0) fail('basic constraints make it a CA');
        break;
      case OID.subjectKeyIdentifier:
        if (inner.tag !== TAG.OCTET_STRING || inner.contents.length === 0) fail('the subject key identifier is not an OCTET STRING');
        break;
      case OID.authorityKeyIdentifier: {
        // only keyIdentifier [0]: naming the issuer by name and serial ([1], [2]) is not what Talos writes
        const [kid] = expectConstructed(inner, TAG.SEQUENCE, [1], 'authority key identifier');
        if (!kid || kid.tag !== 0x80 || kid.contents.length === 0) fail('the authority key identifier is not a keyIdentifier');
        out.authorityKeyId = Buffer.from((kid as DerElement).contents);
        break;
      }
    }
  }
  if (!out.keyUsage) fail('the certificate has no key usage');
  if (!out.extKeyUsage) fail('the certificate has no extended key usage');
  return out;
}

function verifySignature(ca: TrustedCa, algOid: string, tbs: Buffer, signature: Buffer): boolean {
  const alg = SIGNATURES[algOid] as (typeof SIGNATURES)[string];
  if (ca.publicKey.asymmetricKeyType !== alg.keyType) return false;
  try {
    return verify(alg.digest, tbs, alg.keyType === 'ec' ? { key: ca.publicKey, dsaEncoding: 'der' } : ca.publicKey, signature);
  } catch {
    return false;
  }
}

/**
 * Checks a client certificate from another signer against what was asked; returns what the gate
 * records and hands on, or throws IssuedCertificateError naming the first check that failed.
 */
export function checkIssuedClientCertificate(certPem: string, expected: Expected): CheckedCertificate {
  try {
    return check(certPem, expected);
  } catch (e) {
    if (e instanceof IssuedCertificateError) throw e;
    if (e instanceof DerError || e instanceof PemError) throw new IssuedCertificateError(`the certificate is not DER-strict: ${e.message}`);
    if (e instanceof UnsupportedKeyError) throw new IssuedCertificateError(`the certified key: ${e.message}`);
    throw e;
  }
}

function check(certPem: string, expected: Expected): CheckedCertificate {
  const { der } = decodePem(certPem, ['CERTIFICATE']);
  const [tbsEl, sigAlgEl, sigEl] = expectConstructed(readDer(der), TAG.SEQUENCE, [3], 'Certificate');
  const tbsParts = childrenOf(present(tbsEl, 'TBSCertificate'));
  const [versionEl, serialEl, innerAlgEl, issuerEl, validityEl, subjectEl, spkiEl, ...rest] = tbsParts;

  // version [0] EXPLICIT INTEGER v3 (2): extensions exist only in v3 (RFC 5280 §4.1.2.1)
  if (!versionEl || versionEl.tag !== TAG.CONTEXT_0_CONSTRUCTED) fail('the certificate is not X.509 v3');
  const [versionInt] = expectConstructed(versionEl, TAG.CONTEXT_0_CONSTRUCTED, [1], 'version');
  const version = integerBytes(versionInt, 'the version');
  if (!version.equals(Buffer.of(2))) fail('the certificate is not X.509 v3');

  // serial: positive, at most 20 octets (§4.1.2.2)
  const serial = integerBytes(serialEl, 'the serial number');
  if (((serial[0] as number) & 0x80) !== 0 || serial.every((b) => b === 0)) fail('the serial number is not positive');
  if (serial.length > 20 + (serial[0] === 0 ? 1 : 0)) fail('the serial number is longer than 20 octets');

  // the signature algorithm, the same inside and outside the signed part (§4.1.1.2)
  const sigAlg = present(sigAlgEl, 'signatureAlgorithm');
  if (!innerAlgEl || !innerAlgEl.raw.equals(sigAlg.raw)) fail('the signature algorithm differs inside and outside the signed part');
  const algParts = expectConstructed(sigAlg, TAG.SEQUENCE, [1, 2], 'AlgorithmIdentifier');
  const algOid = oidOf(algParts[0], 'signature algorithm');
  const alg = SIGNATURES[algOid];
  if (!alg) return fail(`the signature algorithm ${algOid} is not one a Talos CA signs with`);
  const params = algParts[1];
  if (alg.nullParams ? !(params && params.tag === TAG.NULL && params.contents.length === 0) : params !== undefined) {
    fail('the signature algorithm parameters are not as RFC 4055/5758/8410 require');
  }

  // rest: [1] and [2] unique identifiers are refused; exactly [3] extensions
  if (rest.length !== 1) fail('the certificate has unique identifiers or no extensions');
  const exts = readExtensions(rest[0]);

  // from the expected CA: the issuer is one of the CAs' subject, byte for byte (Go compares the bytes
  // when it builds a chain), and that CA's key verifies the signature
  const issuerRaw = present(issuerEl, 'issuer').raw;
  const signature = bitStringBytes(sigEl, 'signature');
  const tbs = present(tbsEl, 'TBSCertificate').raw;
  const candidates = expected.cas.filter((ca) => ca.subjectDer.equals(issuerRaw));
  if (candidates.length === 0) fail('the certificate is not issued by the expected Talos CA (issuer name differs)');
  const ca = candidates.find((c) => verifySignature(c, algOid, tbs, signature));
  if (!ca) return fail('the certificate\'s signature does not verify with the expected Talos CA');
  if (exts.authorityKeyId && ca.keyId && !exts.authorityKeyId.equals(ca.keyId)) fail('the authority key identifier is not the expected CA\'s');

  // lifetime: notAfter no later than asked (plus clock skew), and valid now
  const [nbEl, naEl] = expectConstructed(validityEl, TAG.SEQUENCE, [2], 'validity');
  const notBefore = timeOf(nbEl, 'notBefore');
  const notAfter = timeOf(naEl, 'notAfter');
  if (notAfter.getTime() <= notBefore.getTime()) fail('notAfter is not after notBefore');
  const latest = expected.now + expected.ttlMs + expected.skewMs;
  if (notAfter.getTime() > latest) {
    fail(`the certificate lives longer than asked: until ${notAfter.toISOString()}, asked for at most ${new Date(expected.now + expected.ttlMs).toISOString()}`);
  }
  if (notBefore.getTime() > Date.now() + expected.skewMs) fail('the certificate is not valid yet');
  if (notAfter.getTime() <= Date.now()) fail('the certificate has expired');
  if (new Date(ca.x509.validTo).getTime() < notAfter.getTime()) fail('the certificate outlives its CA');

  // exactly the requested roles: apid reads roles from the subject's O values (Talos' role package)
  const { organizations, commonName } = readSubject(subjectEl);
  const got = [...organizations].sort();
  const want = [...expected.roles].sort();
  if (new Set(got).size !== got.length) fail('the subject names a role twice');
  if (got.length !== want.length || got.some((r, i) => r !== want[i])) {
    fail(`the certificate is for roles [${got.join(', ')}], not the requested [${want.join(', ')}]`);
  }

  // the key: a client key type Go encodes exactly so, matching the private key that came with it
  const spki = present(spkiEl, 'subjectPublicKeyInfo').raw;
  const parsed = parseClientSpki(spki);
  if (!isCanonicalClientSpki(spki) || !parsed.spkiDer.equals(spki)) fail('the certified key is not in its canonical encoding');
  const privateKeyPem = matchingPrivateKey(expected.privateKeyPem, spki);

  return {
    der,
    pem: toPem('CERTIFICATE', der),
    serialHex: serial.toString('hex').replace(/^00(?=[89a-f])/, ''),
    fingerprint: createHash('sha256').update(der).digest('hex'),
    notBefore,
    notAfter,
    commonName,
    privateKeyPem,
    ca,
  };
}
