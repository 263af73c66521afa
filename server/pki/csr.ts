import { verify } from 'node:crypto';
import { bitStringBytes, DerError, expectConstructed, oidOf, present, readDer, TAG } from './der-reader.js';
import { parseClientSpki, type ParsedClientKey } from './spki.js';

// PKCS#10 certification requests (RFC 2986 §4) read strictly, for the one thing the gate takes from
// them: the public key, after the request's signature proves the client holds its private half. The
// requested subject and attributes are ignored (names and roles come from the IdP), and the key is
// re-encoded canonically like any other client key.
//
//   CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING }
//   CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject Name,
//                                           subjectPKInfo SubjectPublicKeyInfo, attributes [0] IMPLICIT SET OF Attribute }

/** The signature algorithms a client key can sign with, and the digest node:crypto needs for each. */
const SIGNATURES: Record<string, { keyTypes: ParsedClientKey['type'][]; digest: string | null }> = {
  '1.3.101.112': { keyTypes: ['ed25519'], digest: null }, // RFC 8410 §6
  '1.2.840.10045.4.3.2': { keyTypes: ['p256', 'p384'], digest: 'sha256' }, // RFC 5758 §3.2
  '1.2.840.10045.4.3.3': { keyTypes: ['p256', 'p384'], digest: 'sha384' },
  '1.2.840.10045.4.3.4': { keyTypes: ['p256', 'p384'], digest: 'sha512' },
};

/** A CSR whose signature does not verify or whose algorithm is not one the gate takes. */
export class CsrSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsrSignatureError';
  }
}

/**
 * The key of a DER CSR whose signature verifies. Throws DerError for malformed DER,
 * UnsupportedKeyError for a key the gate does not certify, CsrSignatureError for a bad signature.
 */
export function keyOfCsr(der: Buffer): ParsedClientKey {
  const [info, sigAlg, sigBits] = expectConstructed(readDer(der), TAG.SEQUENCE, [3], 'CertificationRequest');
  // RFC 2986 requires the attributes [0]; a few encoders leave the empty set out, so it may be absent
  const [version, subject, spki, attributes] = expectConstructed(info, TAG.SEQUENCE, [3, 4], 'CertificationRequestInfo');
  if (version?.tag !== TAG.INTEGER || version.contents.length !== 1 || version.contents[0] !== 0) {
    throw new DerError('CertificationRequestInfo: version must be 0 (v1)');
  }
  if (subject?.tag !== TAG.SEQUENCE) throw new DerError('CertificationRequestInfo: subject must be a Name');
  if (attributes && attributes.tag !== TAG.CONTEXT_0_CONSTRUCTED) throw new DerError('CertificationRequestInfo: unexpected element after the key');
  const key = parseClientSpki(present(spki, 'subjectPKInfo').raw);

  // ECDSA and EdDSA identifiers carry no parameters (RFC 5758 §3.2, RFC 8410 §3)
  const [algOid] = expectConstructed(sigAlg, TAG.SEQUENCE, [1], 'signatureAlgorithm');
  const algorithm = SIGNATURES[oidOf(algOid, 'signatureAlgorithm')];
  if (!algorithm) throw new CsrSignatureError('the CSR is signed with an unsupported algorithm');
  if (!algorithm.keyTypes.includes(key.type)) throw new CsrSignatureError("the CSR's signature algorithm does not fit its key");
  const signature = bitStringBytes(sigBits, 'signature');
  const publicKey = key.key();
  let ok: boolean;
  try {
    ok = verify(algorithm.digest, present(info, 'certificationRequestInfo').raw, key.type === 'ed25519' ? publicKey : { key: publicKey, dsaEncoding: 'der' }, signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new CsrSignatureError("the CSR's signature does not verify");
  return key;
}
