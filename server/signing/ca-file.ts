import { issueTalosClientCertificate } from '../pki/client-cert.js';
import type { SigningCa } from '../pki/ca.js';
import type { CertificateIssuer, IssuedClientCertificate, IssueRequest } from './issuer.js';

/**
 * The gate signs with a CA file it holds: the Talos OS CA (talos.ca_cert/ca_key), or a dedicated
 * issuing CA (talos.issuing_ca_*) that nodes accept through machine.acceptedCAs.
 */
export class CaFileIssuer implements CertificateIssuer {
  readonly mode = 'ca' as const;
  readonly clientKeys = true;
  readonly remote = false;
  readonly readinessCheck = 'talos_ca';

  constructor(
    private readonly signing: SigningCa,
    /** The OS CA nodes present: what talosctl must trust. */
    private readonly talosCaPem: string,
    /** Whether `signing` is a dedicated issuing CA, which nodes must be told to accept. */
    private readonly dedicated: boolean,
  ) {}

  acceptedCas(): string[] {
    return this.dedicated ? [this.signing.pem] : [];
  }

  async issue(req: IssueRequest): Promise<IssuedClientCertificate> {
    if (!req.spkiDer) throw new Error('the CA-file signer certifies a key the exchange provides');
    const cert = await issueTalosClientCertificate({
      issuer: this.signing.issuer,
      spkiDer: req.spkiDer,
      commonName: req.commonName,
      roles: req.roles,
      ttlMs: req.ttlMs,
      now: req.now,
    });
    return { pem: cert.pem, serialHex: cert.serialHex, fingerprint: cert.fingerprint, notBefore: cert.notBefore, notAfter: cert.notAfter, caPem: this.talosCaPem };
  }

  readiness(): string {
    return 'ok';
  }

  close(): void {}
}
