import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { CaError } from '../pki/ca.js';
import { IssuedCertificateError, readPrivateKeyPem, readTrustedCas, type TrustedCa } from '../pki/issued-cert.js';

// The gate's own Talos API credential: a talosconfig (the format talosctl reads and cli/talosconfig.ts
// writes: `context` and `contexts.NAME.{endpoints, ca, crt, key}`, the last three base64 PEM). A
// Talos ServiceAccount with kubernetesTalosAPIAccess mounts one at /var/run/secrets/talos.dev/config
// and rotates it in place; outside Kubernetes it is a file an admin made with `talosctl config new`.

export interface TalosApiCredentials {
  file: string;
  context: string;
  /** The Talos OS CA (one or more certificates): verifies apid's server certificate and what Talos signs. */
  caPem: string;
  cas: TrustedCa[];
  /** The gate's client certificate and key (PKCS#8), as TLS wants them. */
  certPem: string;
  keyPem: string;
  /** The roles (Subject O) of the gate's own certificate, for messages when Talos refuses. */
  roles: string[];
  notAfter: Date;
  /** The context's endpoints, used when talos.api.endpoints is empty. */
  endpoints: string[];
  /** Identifies the file's version: changes when the file (or the symlink it resolves to) changes. */
  stamp: string;
}

/** What tells one version of the file from the next; Kubernetes swaps a symlink, so the target counts. */
export function fileStamp(file: string): string {
  const s = statSync(file);
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
}

const unb64 = (v: unknown, what: string, fail: (p: string) => never): string => {
  if (typeof v !== 'string' || v.length === 0) return fail(`${what} is missing`);
  const text = Buffer.from(v, 'base64').toString('utf8');
  if (!text.includes('-----BEGIN ')) return fail(`${what} is not base64 PEM`);
  return text;
};

/** Reads and checks the talosconfig; throws CaError naming the file and what is wrong. */
export function readTalosApiCredentials(file: string, contextName: string | undefined): TalosApiCredentials {
  const fail = (problem: string): never => {
    throw new CaError(file, problem);
  };
  let stamp: string;
  let text: string;
  try {
    stamp = fileStamp(file);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return fail(`cannot read the talosconfig: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    return fail(`not a talosconfig (YAML): ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return fail('not a talosconfig (expected a YAML map)');
  const d = doc as { context?: unknown; contexts?: unknown };
  const name = contextName ?? (typeof d.context === 'string' ? d.context : undefined);
  if (!name) return fail('names no current context; set talos.api.context');
  const contexts = typeof d.contexts === 'object' && d.contexts !== null ? (d.contexts as Record<string, unknown>) : {};
  const ctx = contexts[name];
  if (typeof ctx !== 'object' || ctx === null) return fail(`has no context ${JSON.stringify(name)} (contexts: ${Object.keys(contexts).join(', ') || 'none'})`);
  const c = ctx as Record<string, unknown>;
  const where = (k: string) => `context ${name}: ${k}`;
  const caText = unb64(c.ca, where('ca'), fail);
  const crtText = unb64(c.crt, where('crt'), fail);
  const keyText = unb64(c.key, where('key'), fail);
  let cas: TrustedCa[];
  try {
    cas = readTrustedCas(caText, where('ca'));
  } catch (e) {
    return fail((e as Error).message);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(crtText);
  } catch (e) {
    return fail(`${where('crt')} is not a readable certificate: ${(e as Error).message}`);
  }
  let keyPem: string;
  try {
    const key = readPrivateKeyPem(keyText);
    const spki = (k: ReturnType<typeof createPublicKey>) => k.export({ type: 'spki', format: 'der' });
    if (!spki(createPublicKey(key)).equals(spki(cert.publicKey))) fail(`${where('key')} does not match ${where('crt')}`);
    keyPem = key.export({ type: 'pkcs8', format: 'pem' }) as string;
  } catch (e) {
    if (e instanceof IssuedCertificateError) return fail(`${where('key')}: ${e.message}`);
    throw e;
  }
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() < Date.now()) fail(`${where('crt')} expired on ${notAfter.toISOString()}`);
  // Node writes a subject as "O=a\nO=b\nCN=x" (escaping only what needs it); roles have no newlines
  const roles = cert.subject.split('\n').filter((l) => l.startsWith('O=')).map((l) => l.slice(2));
  const endpoints = Array.isArray(c.endpoints) ? c.endpoints.filter((e): e is string => typeof e === 'string') : [];
  return {
    file,
    context: name,
    caPem: cas.map((ca) => ca.pem).join(''),
    cas,
    certPem: cert.toString(),
    keyPem,
    roles,
    notAfter,
    endpoints,
    stamp,
  };
}
