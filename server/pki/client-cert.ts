import { isCanonicalClientSpki } from './spki.js';
import { issueCertificateOffLoop, type IssuedCertificate, type Issuer } from './x509.js';

export interface TalosClientCertificate extends IssuedCertificate {
  notBefore: Date;
  notAfter: Date;
}

/**
 * A Talos client certificate as talosctl makes them: one O= per role (apid reads roles from
 * Subject.Organization), CN = the user, digitalSignature (critical), clientAuth, backdated a minute
 * for clock skew between the gate and the nodes.
 */
export async function issueTalosClientCertificate(opts: {
  issuer: Issuer;
  /** The certified key as SPKI DER. */
  spkiDer: Buffer;
  commonName: string;
  roles: string[];
  ttlMs: number;
  now: number;
}): Promise<TalosClientCertificate> {
  // only the canonical encoding of a parsed client key (spki.ts) is ever certified
  if (!isCanonicalClientSpki(opts.spkiDer)) throw new Error('refusing to certify a key that is not in canonical SPKI form');
  const notBefore = new Date(opts.now - 60_000);
  const notAfter = new Date(opts.now + opts.ttlMs);
  const cert = await issueCertificateOffLoop(
    {
      subject: { commonName: opts.commonName, organizations: opts.roles },
      spkiDer: opts.spkiDer,
      notBefore,
      notAfter,
      isCa: false,
      keyUsage: ['digitalSignature'],
      extKeyUsage: ['clientAuth'],
    },
    opts.issuer,
  );
  return { ...cert, notBefore, notAfter };
}
