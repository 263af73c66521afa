import { keyOfCsr, CsrSignatureError } from '../pki/csr.js';
import { newEd25519Jwk } from '../pki/fresh-keys.js';
import { DerError } from '../pki/der-reader.js';
import { decodePem, PemError } from '../pki/pem.js';
import { canonicalSpki, ed25519Pkcs8, parseClientSpki, UnsupportedKeyError, type ParsedClientKey } from '../pki/spki.js';
import { toPem } from '../pki/x509.js';
import { ExchangeError } from './errors.js';

// The key a client certificate certifies: a public key the client sent (PEM SPKI), the key of a
// PKCS#10 CSR whose signature proves the client holds it, or a new Ed25519 key the gate makes and
// returns once. Whatever the client sent is parsed strictly and only the canonical re-encoding of
// the parsed key goes on (server/pki/spki.ts): never the client's bytes.

export interface ClientKey {
  /** The key as canonical SPKI DER: what the certificate carries. */
  spkiDer: Buffer;
  /** PKCS#8 PEM, only when the gate generated the key. */
  privateKeyPem?: string;
}

/** Reading errors as what the client is told; the kinds say what was wrong, never echo input. */
function readingError(e: unknown, what: 'public_key' | 'csr'): ExchangeError {
  if (e instanceof UnsupportedKeyError) return new ExchangeError('invalid_request', e.message);
  if (e instanceof CsrSignatureError) return new ExchangeError('invalid_request', e.message);
  if (e instanceof PemError) return new ExchangeError('invalid_request', `${what}: ${e.message}`);
  if (e instanceof DerError) {
    const kind = what === 'csr' ? 'a PKCS#10 request' : 'a SubjectPublicKeyInfo';
    return new ExchangeError('invalid_request', `${what} is not ${kind} in DER: ${e.message}`);
  }
  return new ExchangeError('invalid_request', `${what} is not readable`);
}

function keyOf(parsed: ParsedClientKey): ClientKey {
  return { spkiDer: parsed.spkiDer };
}

export function publicKeyFromPem(pem: string): ClientKey {
  try {
    return keyOf(parseClientSpki(decodePem(pem, ['PUBLIC KEY']).der));
  } catch (e) {
    throw readingError(e, 'public_key');
  }
}

/** The public key of a CSR, after checking the CSR's own signature. Its requested subject is ignored. */
export function publicKeyFromCsr(pem: string): ClientKey {
  try {
    return keyOf(keyOfCsr(decodePem(pem, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']).der));
  } catch (e) {
    throw readingError(e, 'csr');
  }
}

// RFC 8410 encodings of an Ed25519 key around its raw 32 bytes: OpenSSL 3's encoders cost four times
// the key generation, JWK export almost nothing, so the DER is put together here.

export function generateClientKey(): ClientKey {
  // fresh-keys.ts says why the key never becomes a KeyObject here
  const jwk = newEd25519Jwk();
  const pkcs8 = ed25519Pkcs8(Buffer.from(jwk.d, 'base64url'));
  return {
    spkiDer: canonicalSpki('ed25519', Buffer.from(jwk.x, 'base64url')),
    privateKeyPem: toPem('PRIVATE KEY', pkcs8),
  };
}
