// Who signs client certificates for the exchange. Two kinds: the gate itself with a CA file it holds
// (ca-file.ts), or Talos, asked through its API, so the CA key never leaves the cluster
// (talos-api.ts). The exchange, /readyz, machine-config rendering and start-up checks ask this
// interface and nothing else which CA is in play.

export type SignerMode = 'ca' | 'talos-api';

export interface IssueRequest {
  /**
   * The key to certify as canonical SPKI DER (server/pki/spki.ts). Only for issuers with
   * clientKeys; an issuer that makes its own keys never receives one.
   */
  spkiDer?: Buffer | undefined;
  commonName: string;
  roles: string[];
  ttlMs: number;
  now: number;
}

export interface IssuedClientCertificate {
  pem: string;
  serialHex: string;
  /** SHA-256 of the DER, lower-case hex. */
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  /** PKCS#8 PEM of a key the signer made (talos-api); absent when the key was the client's. */
  privateKeyPem?: string | undefined;
  /** The CA (PEM, one or more certificates) talosctl must trust for apid: goes to the client as `ca`. */
  caPem: string;
}

export interface CertificateIssuer {
  readonly mode: SignerMode;
  /** Whether a client may bring its own key (public_key, csr); false when the signer makes the key. */
  readonly clientKeys: boolean;
  /**
   * Whether issuing leaves this process (a network call): the exchange then checks blocks before
   * asking, so a blocked subject never makes the gate call Talos.
   */
  readonly remote: boolean;
  /** The /readyz check this signer answers ("talos_ca" or "talos_api"). */
  readonly readinessCheck: string;
  /** CAs nodes must accept besides their own OS CA (machine.acceptedCAs); none when Talos signs. */
  acceptedCas(): string[];
  issue(req: IssueRequest): Promise<IssuedClientCertificate>;
  /** "ok", or "failed: …" saying what an operator should fix; never waits on the network. */
  readiness(): string;
  close(): void;
}
