import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildGoProgram, GoBuildError } from './go-build.js';

// Go's crypto/x509 as a judge of issued certificates. Talos' apid is Go: what matters is what Go
// reads in a certificate, and OpenSSL reads some malformed ones differently (a [3] element smuggled
// in after the SPKI is the certificate's extensions to Go, and nothing to OpenSSL). The program in
// go-x509/ is standard library only; it is built once per test process and the binary is kept
// under the temp folder, keyed by its source, so later runs start at once.
//
// No Go, no tests: CI installs golang-go, and a suite that skips the judge would pass on exactly the
// certificates this judge exists to catch.

const execFileP = promisify(execFile);
const srcDir = join(dirname(fileURLToPath(import.meta.url)), 'go-x509');

export interface GoAttribute {
  oid: string;
  value: string;
}

export interface GoName {
  organization: string[];
  commonName: string;
  /** Every attribute in DER order. */
  attributes: GoAttribute[];
  /** The name's DER, hex. */
  raw: string;
}

export interface GoExtension {
  oid: string;
  critical: boolean;
}

export interface GoVerify {
  ok: boolean;
  error: string | null;
  chainLengths: number[];
}

/** What Go's crypto/x509 says about one certificate (see go-x509/main.go). Fields after parseError are zero values when parsing failed. */
export interface GoCertReport {
  pemError: string | null;
  extraPemBlocks: number;
  parseError: string | null;
  trailingDataRejected: boolean;
  trailingBytes: number;
  /** Elements crypto/x509 skipped without a word, or DER violations, found by a strict encoding/asn1 walk. */
  strictProblems: string[];
  version: number;
  isCA: boolean;
  basicConstraintsValid: boolean;
  maxPathLen: number;
  maxPathLenZero: boolean;
  keyUsage: string[];
  extKeyUsage: string[];
  unknownExtKeyUsage: string[];
  extensions: GoExtension[];
  unhandledCriticalExtensions: string[];
  subject: GoName;
  issuer: GoName;
  notBefore: string;
  notAfter: string;
  serialNumber: string;
  /** Hex. */
  rawSubjectPublicKeyInfo: string;
  /** x509.MarshalPKIXPublicKey of the key Go parsed, hex: Go's own encoding of that key. */
  marshaledPublicKey: string | null;
  publicKeyAlgorithm: string;
  signatureAlgorithm: string;
  /** cert.Verify with Roots = the CA and KeyUsages = [clientAuth]. */
  verify: GoVerify;
}

export interface GoJudgeInput {
  cert: string;
  ca: string;
  intermediates?: string[];
  /** Verify as of this time (default: now), for short-lived certificates judged after the fact. */
  currentTime?: Date;
}

let built: Promise<string> | undefined;

/** The judge binary: built on first use in this process, reused from the temp folder when the source is unchanged. */
export function goX509Binary(): Promise<string> {
  built ??= build();
  return built;
}

async function build(): Promise<string> {
  try {
    return await buildGoProgram(srcDir, 'go-x509');
  } catch (e) {
    if (e instanceof GoBuildError && e.goMissing) {
      throw new Error(
        `Go is required by the certificate tests (Go's crypto/x509 is the judge, as in Talos' apid) and ${e.message}. ` +
          'Install it (apt-get install golang-go); these tests do not skip.',
      );
    }
    throw e;
  }
}

/** Runs the judge over many certificates in one Go process. */
export async function goJudgeAll(inputs: GoJudgeInput[]): Promise<GoCertReport[]> {
  if (inputs.length === 0) return [];
  const bin = await goX509Binary();
  const child = spawn(bin, ['judge'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => err.push(c));
  const exit = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  child.stdin.end(JSON.stringify(inputs.map((i) => ({ cert: i.cert, ca: i.ca, intermediates: i.intermediates ?? [], currentTime: i.currentTime?.toISOString() ?? '' }))));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await exit.finally(() => clearTimeout(timer));
  if (code !== 0) throw new Error(`go-x509 judge exited with ${code}: ${Buffer.concat(err).toString()}`);
  // our own program writes this JSON, in the shape of GoCertReport (main.go's report struct)
  const reports = JSON.parse(Buffer.concat(out).toString()) as GoCertReport[];
  assert.ok(Array.isArray(reports) && reports.length === inputs.length, 'go-x509 answered one report per certificate');
  return reports;
}

export async function goJudge(certPem: string, caPem: string, intermediates: string[] = []): Promise<GoCertReport> {
  const [r] = await goJudgeAll([{ cert: certPem, ca: caPem, intermediates }]);
  return r as GoCertReport;
}

// The extensions issueTalosClientCertificate writes (server/pki/x509.ts), in its order: anything
// more, less or reordered is a change a reviewer must see.
export const TALOS_CLIENT_EXTENSIONS: GoExtension[] = [
  { oid: '2.5.29.15', critical: true }, // keyUsage
  { oid: '2.5.29.37', critical: false }, // extKeyUsage
  { oid: '2.5.29.14', critical: false }, // subjectKeyIdentifier
  { oid: '2.5.29.35', critical: false }, // authorityKeyIdentifier
];

/**
 * Asserts what apid must see in a Talos client certificate the gate issued, as Go reads it. A
 * commonName of null: a certificate Talos signed (talos.signer talos-api), whose subject is the
 * roles alone.
 */
export function assertTalosClientCertificate(report: GoCertReport, expect: { roles: string[]; commonName: string | null; spkiDer?: Buffer }, label = 'certificate'): void {
  const where = (what: string) => `${label}: ${what} (Go's report: ${JSON.stringify(report)})`;
  assert.equal(report.pemError, null, where('one CERTIFICATE PEM block'));
  assert.equal(report.extraPemBlocks, 0, where('exactly one PEM block'));
  assert.equal(report.parseError, null, where('Go parses it'));
  assert.equal(report.trailingBytes, 0, where('no bytes after the certificate'));
  assert.deepEqual(report.strictProblems, [], where('nothing in it that Go skips over, all DER'));
  assert.equal(report.version, 3, where('X.509 v3'));
  assert.equal(report.isCA, false, where('not a CA'));
  assert.ok(!(report.basicConstraintsValid && report.isCA), where('no valid basicConstraints with CA:TRUE'));
  assert.deepEqual(report.keyUsage, ['digitalSignature'], where('key usage digitalSignature only (no keyCertSign, no cRLSign)'));
  assert.deepEqual(report.extKeyUsage, ['clientAuth'], where('extended key usage exactly clientAuth'));
  assert.deepEqual(report.unknownExtKeyUsage, [], where('no unknown extended key usages'));
  assert.deepEqual(report.extensions, TALOS_CLIENT_EXTENSIONS, where('exactly keyUsage (critical), extKeyUsage, subjectKeyIdentifier, authorityKeyIdentifier'));
  assert.deepEqual(report.unhandledCriticalExtensions, [], where('no critical extension Go does not know'));
  assert.deepEqual(report.subject.organization, expect.roles, where('Organization = the roles, in order'));
  assert.equal(report.subject.commonName, expect.commonName ?? '', where('CN'));
  assert.deepEqual(
    report.subject.attributes.map((a) => a.oid),
    [...expect.roles.map(() => '2.5.4.10'), ...(expect.commonName === null ? [] : ['2.5.4.3'])],
    where('the subject is O per role, then CN, and nothing else'),
  );
  assert.equal(report.marshaledPublicKey, report.rawSubjectPublicKeyInfo, where("the SPKI is Go's own encoding of the key in it"));
  if (expect.spkiDer) assert.equal(report.rawSubjectPublicKeyInfo, expect.spkiDer.toString('hex'), where('the SPKI is the canonical encoding of the key'));
  assert.ok(Date.parse(report.notBefore) < Date.parse(report.notAfter), where('notBefore before notAfter'));
  assert.equal(report.verify.error, null, where('Go verifies it for clientAuth against the CA'));
  assert.ok(report.verify.ok, where('Go verifies it for clientAuth against the CA'));
}

/** Judges and asserts in one go, for the common case of one certificate. */
export async function assertGoAcceptsTalosClientCertificate(certPem: string, caPem: string, expect: { roles: string[]; commonName: string; spkiDer?: Buffer }): Promise<GoCertReport> {
  const report = await goJudge(certPem, caPem);
  assertTalosClientCertificate(report, expect);
  return report;
}

export interface GoApid {
  port: number;
  /** The PEM of the server's self-signed certificate, for the client to trust. */
  serverCa: string;
  close(): Promise<void>;
}

/**
 * An mTLS server in Go like apid (crypto/tls, RequireAndVerifyClientCert, clientAuth): it answers
 * each verified client with {organizations, cn, isCA}; talk to it with mtlsCall(port, {cert, key,
 * ca: serverCa}) from talos-ca.ts.
 */
export async function startGoApid(caPem: string): Promise<GoApid> {
  const bin = await goX509Binary();
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-go-apid-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, caPem);
  const child = spawn(bin, ['apid', caFile], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const hello = await new Promise<{ port: number; serverCa: string }>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`go-x509 apid did not start: ${stderr}`)), 15_000);
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`go-x509 apid exited with ${code}: ${stderr}`)));
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      // our own program's greeting line
      resolve(JSON.parse(buf.slice(0, nl)) as { port: number; serverCa: string });
    });
  });
  return {
    ...hello,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.stdin.end(); // the server exits when its stdin closes
      }),
  };
}

/**
 * A TLS client in Go, as talosctl is: presents the client certificate chain exactly as given (Node's
 * TLS client goes through OpenSSL, which refuses to load some certificates Go accepts) and returns
 * what the server answered, or throws with Go's error.
 */
export async function goDial(port: number, opts: { chain: string; key: string; serverCa: string }): Promise<{ organizations: string[]; cn: string }> {
  const bin = await goX509Binary();
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-go-dial-'));
  try {
    const files = { serverCa: join(dir, 'server-ca.pem'), chain: join(dir, 'chain.pem'), key: join(dir, 'key.pem') };
    for (const [k, f] of Object.entries(files)) writeFileSync(f, opts[k as keyof typeof files]);
    const { stdout } = await execFileP(bin, ['dial', `127.0.0.1:${port}`, files.serverCa, files.chain, files.key], { timeout: 20_000 });
    // our own program's output: {"answer": "<the server's JSON>"} or {"error": "..."}
    const out = JSON.parse(stdout) as { answer?: string; error?: string };
    if (out.error !== undefined || out.answer === undefined) throw new Error(`Go TLS client: ${out.error ?? 'no answer'}`);
    return JSON.parse(out.answer) as { organizations: string[]; cn: string };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
