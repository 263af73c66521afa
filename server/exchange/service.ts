import type { OperatorService } from '../operators/service.js';
import type { AuditLog } from '../audit.js';
import type { CertificateIssuer, IssuedClientCertificate } from '../signing/issuer.js';
import type { Storage } from '../storage/storage.js';
import { claimAt } from './claims.js';
import { generateClientKey, publicKeyFromCsr, publicKeyFromPem, type ClientKey } from './client-key.js';
import { ExchangeError } from './errors.js';
import type { IdTokenVerifier } from './id-token.js';
import { mapRoles, type RoleRule } from './roles.js';

export interface ExchangeSettings {
  /** Who signs client certificates (server/signing): a CA file the gate holds, or Talos through its API. */
  signer: CertificateIssuer;
  issuer: string;
  certTtlMs: number;
  maxCertTtlMs: number;
  subjectClaim: string;
  endpoints: string[];
  rules: RoleRule[];
  defaultRoles: string[];
}

export interface ExchangeRequest {
  /** The ID token (or, later, a gate access token). */
  credential: string | undefined;
  publicKeyPem?: string | undefined;
  csrPem?: string | undefined;
  ttlSeconds?: number | undefined;
  ip: string;
}

/** Field names ca, cert, key, endpoints, ttl_seconds as talosctl-oidc clients read them. PEM strings. */
export interface ExchangeResponse {
  ca: string;
  cert: string;
  key?: string;
  endpoints: string[];
  roles: string[];
  subject: string;
  sub: string;
  serial: string;
  fingerprint: string;
  expires_at: string;
  ttl_seconds: number;
}

const MIN_TTL_MS = 30_000;

/** Why a client key is refused when Talos signs: documented in docs/certificate-exchange.md, checked by the tests. */
export const TALOS_MAKES_THE_KEY =
  'this gate signs through the Talos API, and Talos makes the private key with the certificate: send neither public_key nor csr, and keep the key that comes back';

/** Turns an IdP identity into a short-lived Talos client certificate. Knows nothing of HTTP. */
export class ExchangeService {
  constructor(
    private readonly storage: Storage,
    private readonly audit: AuditLog,
    private readonly verifier: IdTokenVerifier,
    private readonly settings: ExchangeSettings,
    private readonly now: () => number,
    private readonly operators?: OperatorService,
  ) {}

  /**
   * Who the credential speaks for: a gate access token (device logins; claims as the gate last
   * checked them at the IdP) or an ID token from the IdP.
   */
  private async identify(credential: string): Promise<{ claims: Record<string, unknown>; sub: string; source: string }> {
    if (this.operators?.isGateToken(credential)) {
      const who = await this.operators.identify(credential);
      return { claims: { ...who.claims, sub: who.sub }, sub: who.sub, source: 'gate_token' };
    }
    const claims = await this.verifier.verify(credential);
    return { claims, sub: claims.sub as string, source: 'id_token' };
  }

  get verifierReady(): Promise<void> {
    return this.verifier.ready();
  }

  /** The claims of an ID token from the IdP, verified as for an exchange (for admin CLI calls). */
  verifyIdToken(token: string): Promise<Record<string, unknown>> {
    return this.verifier.verify(token);
  }

  async exchange(req: ExchangeRequest): Promise<ExchangeResponse> {
    if (!req.credential) throw new ExchangeError('invalid_request', 'an ID token is required, as "id_token" or Authorization: Bearer');
    const signer = this.settings.signer;
    if (!signer.clientKeys && (req.publicKeyPem !== undefined || req.csrPem !== undefined)) {
      throw new ExchangeError('invalid_request', TALOS_MAKES_THE_KEY);
    }
    if (req.publicKeyPem !== undefined && req.csrPem !== undefined) {
      throw new ExchangeError('invalid_request', 'send public_key or csr, not both');
    }
    // the signer that takes client keys gets one: the client's, or one made here; the other makes its own
    const key: ClientKey | undefined = !signer.clientKeys
      ? undefined
      : req.csrPem !== undefined
        ? publicKeyFromCsr(req.csrPem)
        : req.publicKeyPem !== undefined
          ? publicKeyFromPem(req.publicKeyPem)
          : generateClientKey();

    let claims: Record<string, unknown>;
    let sub: string;
    let source: string;
    try {
      ({ claims, sub, source } = await this.identify(req.credential));
    } catch (e) {
      if (e instanceof ExchangeError) {
        await this.audit.record({ type: 'auth_failure', ip: req.ip, detail: { reason: e.reason, detail: e.detail } });
      }
      throw e;
    }
    const email = typeof claims.email === 'string' ? claims.email : null;
    const refuse = async (reason: string): Promise<never> => {
      await this.audit.record({ type: 'auth_failure', subject: sub, ip: req.ip, detail: { reason } });
      throw new ExchangeError('forbidden', reason);
    };
    const roles = mapRoles(claims, this.settings.rules, this.settings.defaultRoles);
    if (roles.length === 0) await refuse('no Talos role is mapped to this identity');
    const authSuccess = () => this.audit.record({ type: 'auth_success', subject: sub, ip: req.ip, detail: { email, roles } });

    const named = claimAt(claims, this.settings.subjectClaim);
    const commonName = (typeof named === 'string' && named.trim() ? named : sub).slice(0, 256);
    const ttlMs = this.ttlFor(req.ttlSeconds);
    const now = this.now();
    // a remote signer is never asked for a blocked subject; the transaction below checks again, for
    // a block landing while Talos signs
    if (signer.remote && (await this.storage.getBlockedSubject(sub))) await refuse('this subject is blocked');
    let cert: IssuedClientCertificate;
    try {
      cert = await signer.issue({ spkiDer: key?.spkiDer, commonName, roles, ttlMs, now });
    } catch (e) {
      await authSuccess();
      const detail = e instanceof ExchangeError ? { signer: signer.mode, reason: e.reason, detail: e.detail } : { signer: signer.mode, error: (e as Error).message };
      await this.audit.record({ type: 'cert_error', subject: sub, ip: req.ip, detail });
      throw e;
    }
    try {
      // The record and its audit events in one storage operation (one statement on PostgreSQL),
      // committed with the other exchanges of this moment on SQLite. The block list is read in it,
      // so a block landing meanwhile is never missed (a blocked subject's certificate is signed and
      // thrown away: blocks are rare, exchanges are not).
      const recorded = await this.storage.recordCertificate(
        {
          serial: cert.serialHex,
          fingerprint: cert.fingerprint,
          subject: sub,
          email,
          commonName,
          issuer: this.settings.issuer,
          roles,
          issuedAt: now,
          expiresAt: cert.notAfter.getTime(),
          clientIp: req.ip,
          source,
        },
        [
          this.audit.event({ type: 'auth_success', subject: sub, ip: req.ip, detail: { email, roles } }),
          this.audit.event({
            type: 'cert_issued',
            subject: sub,
            ip: req.ip,
            detail: { serial: cert.serialHex, fingerprint: cert.fingerprint, common_name: commonName, roles, expires_at: cert.notAfter.toISOString(), signer: signer.mode },
          }),
        ],
      );
      const blocked = recorded === 'blocked';
      if (!blocked) for (const e of recorded.audit) this.audit.published(e);
      if (blocked) return refuse('this subject is blocked');
      return {
        ca: cert.caPem,
        cert: cert.pem,
        ...(cert.privateKeyPem ? { key: cert.privateKeyPem } : key?.privateKeyPem ? { key: key.privateKeyPem } : {}),
        endpoints: this.settings.endpoints,
        roles,
        subject: commonName,
        sub,
        serial: cert.serialHex,
        fingerprint: cert.fingerprint,
        expires_at: cert.notAfter.toISOString(),
        ttl_seconds: Math.floor((cert.notAfter.getTime() - now) / 1000),
      };
    } catch (e) {
      if (e instanceof ExchangeError) throw e;
      await authSuccess();
      await this.audit.record({ type: 'cert_error', subject: sub, ip: req.ip, detail: { error: (e as Error).message } });
      throw e;
    }
  }

  private ttlFor(requestedSeconds: number | undefined): number {
    if (requestedSeconds === undefined) return this.settings.certTtlMs;
    return Math.min(Math.max(requestedSeconds * 1000, MIN_TTL_MS), this.settings.maxCertTtlMs);
  }
}
