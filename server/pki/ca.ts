import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { issuerFieldsOf, type Issuer } from './x509.js';

/** A CA problem found at start-up; names the file. */
export class CaError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'CaError';
  }
}

export interface CaCertificate {
  pem: string;
  x509: X509Certificate;
}

export interface SigningCa extends CaCertificate {
  issuer: Issuer;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

export function loadCaCertificate(file: string): CaCertificate {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CaError(file, `cannot read: ${(e as Error).message}`);
  }
  const pem = PEM_CERT.exec(text)?.[0];
  if (!pem) throw new CaError(file, 'no PEM certificate found');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pem);
  } catch (e) {
    throw new CaError(file, `not a valid certificate: ${(e as Error).message}`);
  }
  if (!x509.ca) throw new CaError(file, 'is not a CA certificate (basicConstraints CA:TRUE is missing)');
  if (new Date(x509.validTo).getTime() < Date.now()) throw new CaError(file, `expired on ${x509.validTo}`);
  return { pem: `${pem}\n`, x509 };
}

/**
 * Reads a CA private key. `talosctl gen secrets` writes Ed25519 keys as PKCS#8 under the
 * non-standard label "ED25519 PRIVATE KEY", which node:crypto only reads relabelled.
 */
export function loadPrivateKey(file: string): KeyObject {
  const mode = statSync(file).mode;
  if (mode & 0o077) {
    throw new CaError(file, `is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  }
  const text = readFileSync(file, 'utf8').replace(/-----(BEGIN|END) ED25519 PRIVATE KEY-----/g, '-----$1 PRIVATE KEY-----');
  try {
    return createPrivateKey(text);
  } catch (e) {
    throw new CaError(file, `not a readable private key: ${(e as Error).message}`);
  }
}

/** A CA certificate and its key, checked: the key matches, the certificate is a CA and valid. */
export function loadSigningCa(certFile: string, keyFile: string): SigningCa {
  const ca = loadCaCertificate(certFile);
  const key = loadPrivateKey(keyFile);
  const publicKey = createPublicKey(key);
  const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
  if (!spki(publicKey).equals(spki(ca.x509.publicKey))) {
    throw new CaError(keyFile, `does not match the certificate in ${certFile}`);
  }
  const { subjectDer, keyId } = issuerFieldsOf(ca.x509.raw);
  return { ...ca, issuer: { name: subjectDer, key, publicKey, keyId } };
}
