import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request, type HttpResponse } from '../../cli/http.js';
import {
  allPaths,
  bits,
  caExtensions,
  canonicalSpki,
  certificationRequestInfo,
  encodeDer,
  encodeReplacing,
  int,
  keyFromSeed,
  nul,
  octets,
  parseDer,
  pem,
  seq,
  signatureAlgorithm,
  signWith,
  spkiAlgorithm,
  tlv,
  type DerNode,
  type KeyType,
  type LengthForm,
  type TestKey,
} from '../helpers/der-writer.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';
import { assertTalosClientCertificate, goJudgeAll } from '../helpers/go-x509.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { makeTalosCa, type TestCa } from '../helpers/talos-ca.js';

// Malformed client keys thrown at POST /exchange, from a seeded PRNG so a failure can be replayed
// (FUZZ_SEED=... to try others): SPKIs of Ed25519, P-256 and P-384 keys as public_key, and CSRs
// signed with those keys (mutations inside the CertificationRequestInfo are signed again, so the
// signature check is not what refuses them). Whatever the gate answers must be 200 or 400, and a
// 200 must carry a certificate whose SPKI is the canonical encoding of the key (never the client's
// bytes), that Go's crypto/x509 reads as a Talos client certificate, with none of the injected
// bytes anywhere in it. All certificates of a run are judged by one Go process.

const SEED = Number(process.env.FUZZ_SEED ?? 0x7a105);
const dir = mkdtempSync(join(tmpdir(), 'talos-gate-key-fuzz-'));

/** mulberry32: small, fast, good enough to pick positions and bytes. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const below = (n: number) => Math.floor(next() * n);
  return {
    below,
    bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => below(256))),
    pick: <T>(xs: readonly T[]): T => xs[below(xs.length)] as T,
  };
}
type Rng = ReturnType<typeof prng>;

interface FuzzCase {
  name: string;
  body: Record<string, string>;
  /** Canonical SPKIs a certificate for this input may carry (the key sent, or the one a mutation made of it). */
  expected: Buffer[];
  /** Byte runs of the input that must never show up in a certificate. */
  markers: Buffer[];
}

/** What a mutation produced: the new bytes, what it injected, and another key it may have made. */
interface Mutant {
  name: string;
  der: Buffer;
  markers: Buffer[];
  otherKey?: Buffer | undefined;
}

/** The canonical SPKI of raw key bits read as a key of the type, if node:crypto takes them as one. */
function canonicalOfRaw(type: KeyType, raw: Buffer): Buffer | undefined {
  try {
    return canonicalSpki(createPublicKey({ key: seq(spkiAlgorithm(type), bits(raw)), format: 'der', type: 'spki' }));
  } catch {
    return undefined;
  }
}

const contentsOf = (n: DerNode): Buffer => (n.children ? Buffer.concat(n.children.map(encodeDer)) : n.contents);
const pathName = (p: number[]) => (p.length ? p.join('.') : 'root');

/** Garbage to inject: random bytes (at least 4, so finding them in a certificate is no accident), or the CA extensions of the review. */
function garbage(rng: Rng): Buffer {
  return rng.below(3) === 0 ? caExtensions() : rng.bytes(4 + rng.below(5));
}

/** An extra, well-formed element: the [3] CA extensions, an OCTET STRING of random bytes, a NULL, an INTEGER. */
function extraElement(rng: Rng): { el: Buffer; marker?: Buffer } {
  switch (rng.below(4)) {
    case 0:
      return { el: caExtensions(), marker: caExtensions() };
    case 1: {
      const el = octets(rng.bytes(6));
      return { el, marker: el };
    }
    case 2:
      return { el: nul() };
    default:
      return { el: int(rng.below(100)) };
  }
}

/**
 * Structural mutations of a DER tree: trailing garbage after every element (every nesting level,
 * and after the whole), extra elements in every constructed element, non-minimal and indefinite
 * lengths, truncations, bit flips. `keyAt` is where the raw key bits sit in the unmutated DER, so
 * a flip inside them may make another valid key.
 */
function treeMutants(rng: Rng, der: Buffer, label: string, key: { type: KeyType; raw: Buffer; at: number } | undefined): Mutant[] {
  const root = parseDer(der);
  const out: Mutant[] = [];
  for (const { path, node } of allPaths(root)) {
    const g = garbage(rng);
    out.push({ name: `${label}: garbage after ${pathName(path)}`, der: encodeReplacing(root, path, (n) => Buffer.concat([encodeDer(n), g])), markers: [g] });
    const form = rng.pick<LengthForm>(['long1', 'long2', 'long4']);
    out.push({ name: `${label}: ${form} length at ${pathName(path)}`, der: encodeReplacing(root, path, (n) => tlv(n.tag, contentsOf(n), form)), markers: [] });
    out.push({ name: `${label}: indefinite length at ${pathName(path)}`, der: encodeReplacing(root, path, (n) => tlv(n.tag | (n.children ? 0 : 0x20), contentsOf(n), 'indefinite')), markers: [] });
    if (node.children) {
      const kids = node.children;
      const extra = extraElement(rng);
      const at = rng.below(kids.length + 1);
      out.push({
        name: `${label}: extra element at ${at} of ${pathName(path)}`,
        der: encodeReplacing(root, path, (n) => tlv(n.tag, Buffer.concat([...kids.slice(0, at).map(encodeDer), extra.el, ...kids.slice(at).map(encodeDer)]))),
        markers: extra.marker ? [extra.marker] : [],
      });
      const g2 = garbage(rng);
      out.push({ name: `${label}: garbage inside ${pathName(path)} after its elements`, der: encodeReplacing(root, path, (n) => tlv(n.tag, Buffer.concat([contentsOf(n), g2]))), markers: [g2] });
    }
  }
  for (const cut of [1, 2, der.length - 1, ...Array.from({ length: 5 }, () => 3 + rng.below(der.length - 4))]) {
    out.push({ name: `${label}: truncated to ${cut} of ${der.length} bytes`, der: der.subarray(0, cut), markers: [] });
  }
  for (let i = 0; i < 10; i++) {
    const pos = rng.below(der.length);
    const bit = rng.below(8);
    const flipped = Buffer.from(der);
    flipped[pos] = (flipped[pos] as number) ^ (1 << bit);
    let otherKey: Buffer | undefined;
    if (key && pos >= key.at && pos < key.at + key.raw.length) otherKey = canonicalOfRaw(key.type, flipped.subarray(key.at, key.at + key.raw.length));
    out.push({ name: `${label}: bit ${bit} of byte ${pos} flipped`, der: flipped, markers: [], otherKey });
  }
  return out;
}

/** Mutations of the key itself: unused-bits byte, a byte more or less, compressed and hybrid EC points. */
function keyMutants(key: TestKey): Mutant[] {
  const alg = spkiAlgorithm(key.type);
  const out: Mutant[] = [];
  for (const unused of [1, 7]) out.push({ name: `unused bits ${unused}`, der: seq(alg, bits(key.raw, unused)), markers: [] });
  out.push({ name: 'key one byte short', der: seq(alg, bits(key.raw.subarray(0, key.raw.length - 1))), markers: [] });
  out.push({ name: 'key one byte long', der: seq(alg, bits(Buffer.concat([key.raw, Buffer.of(0x42)]))), markers: [] });
  out.push({ name: 'empty key', der: seq(alg, bits(Buffer.alloc(0))), markers: [] });
  const algOid = (parseDer(alg).children ?? [])[0] as DerNode;
  if (key.type !== 'ed25519') {
    out.push({ name: 'no curve parameter', der: seq(seq(encodeDer(algOid)), bits(key.raw)), markers: [] });
    const size = (key.raw.length - 1) / 2;
    const x = key.raw.subarray(1, 1 + size);
    const odd = ((key.raw[key.raw.length - 1] as number) & 1) === 1;
    out.push({ name: 'compressed point', der: seq(alg, bits(Buffer.concat([Buffer.of(odd ? 3 : 2), x]))), markers: [] });
    // the other parity is the other point with this x: a valid key, just not the one sent
    const other = Buffer.concat([Buffer.of(odd ? 2 : 3), x]);
    out.push({ name: 'compressed point, other parity', der: seq(alg, bits(other)), markers: [], otherKey: canonicalOfRaw(key.type, other) });
    out.push({ name: 'hybrid point', der: seq(alg, bits(Buffer.concat([Buffer.of(odd ? 7 : 6), key.raw.subarray(1)]))), markers: [] });
    out.push({ name: 'point with Ed25519 algorithm', der: seq(spkiAlgorithm('ed25519'), bits(key.raw)), markers: [] });
  } else {
    out.push({ name: 'Ed25519 bits under an EC algorithm', der: seq(spkiAlgorithm('p256'), bits(key.raw)), markers: [] });
    out.push({ name: 'Ed25519 with NULL parameters', der: seq(seq(encodeDer(algOid), nul()), bits(key.raw)), markers: [] });
  }
  return out;
}

/** PEM-level mutations of a good DER: text around and inside, two blocks, bad base64, other labels. */
function pemMutants(rng: Rng, label: string, good: Buffer, bad: Buffer): { name: string; text: string; markers: Buffer[] }[] {
  const p = pem(label, good);
  const lines = p.trimEnd().split('\n');
  const body = lines.slice(1, -1);
  const mid = Math.max(1, Math.floor(lines.length / 2));
  const b64 = good.toString('base64');
  return [
    { name: 'text before', text: `hello\n${p}`, markers: [] },
    { name: 'text after', text: `${p}bye\n`, markers: [] },
    { name: 'text line between body lines', text: [...lines.slice(0, mid), 'Proc-Type: 4,ENCRYPTED', ...lines.slice(mid)].join('\n'), markers: [] },
    { name: 'header line', text: [lines[0], 'Comment: hi', '', ...lines.slice(1)].join('\n'), markers: [] },
    { name: 'two blocks, both good', text: p + p, markers: [] },
    { name: 'two blocks, good then mutated', text: p + pem(label, bad), markers: [] },
    { name: 'two blocks, mutated then good', text: pem(label, bad) + p, markers: [] },
    { name: 'CRLF line ends', text: p.replace(/\n/g, '\r\n'), markers: [] },
    { name: 'one long line', text: `${lines[0]}\n${b64}\n${lines.at(-1)}\n`, markers: [] },
    { name: 'no newlines at all', text: `${lines[0]}${b64}${lines.at(-1)}`, markers: [] },
    { name: 'a * in the base64', text: [lines[0], `*${body.join('\n')}`, lines.at(-1)].join('\n'), markers: [] },
    { name: 'base64url alphabet', text: [lines[0], b64.replace(/\+/g, '-').replace(/\//g, '_'), lines.at(-1)].join('\n'), markers: [] },
    { name: 'padding dropped', text: [lines[0], b64.replace(/=+$/, ''), lines.at(-1)].join('\n'), markers: [] },
    { name: 'extra padding', text: [lines[0], `${b64}====`, lines.at(-1)].join('\n'), markers: [] },
    // Node's base64 decoder stops at the first '=': what follows is dropped, not decoded
    { name: 'padding in the middle, CA extensions after it', text: [lines[0], `${b64}${b64.endsWith('=') ? '' : '='}${caExtensions().toString('base64')}`, lines.at(-1)].join('\n'), markers: [caExtensions()] },
    { name: 'base64 of the DER with the CA extensions appended', text: pem(label, Buffer.concat([good, caExtensions()])), markers: [caExtensions()] },
    { name: 'random bytes as base64', text: pem(label, rng.bytes(good.length)), markers: [] },
    { name: 'mismatched END label', text: p.replace(/-----END [^-]+-----/, '-----END CERTIFICATE-----'), markers: [] },
    { name: 'lower-case label', text: p.replace(new RegExp(label, 'g'), label.toLowerCase()), markers: [] },
    { name: 'empty body', text: `${lines[0]}\n${lines.at(-1)}\n`, markers: [] },
    { name: 'NUL byte in the body', text: [lines[0], `${body.join('\n')}\u0000`, lines.at(-1)].join('\n'), markers: [] },
  ];
}

/** The mutated DER itself is a marker too: a certificate may hold the canonical key, never the client's other bytes. */
function asMarker(der: Buffer, expected: Buffer[]): Buffer[] {
  return der.length >= 4 && !expected.some((e) => e.includes(der)) ? [der] : [];
}

/** All cases for one key sent as public_key. */
function publicKeyCases(rng: Rng, key: TestKey): FuzzCase[] {
  const at = key.spki.length - key.raw.length;
  const mutants = [{ name: 'control', der: key.spki, markers: [] }, ...keyMutants(key), ...treeMutants(rng, key.spki, 'spki', { type: key.type, raw: key.raw, at })];
  const cases: FuzzCase[] = mutants.map((m) => {
    const expected = [key.spki, ...('otherKey' in m && m.otherKey ? [m.otherKey] : [])];
    return { name: m.name, body: { public_key: pem('PUBLIC KEY', m.der) }, expected, markers: [...m.markers, ...asMarker(m.der, expected)] };
  });
  for (const m of pemMutants(rng, 'PUBLIC KEY', key.spki, Buffer.concat([key.spki, caExtensions()]))) {
    cases.push({ name: `pem: ${m.name}`, body: { public_key: m.text }, expected: [key.spki], markers: m.markers });
  }
  return cases;
}

/** All cases for one key in a CSR: mutations inside the CRI (signed again), outside it (original signature), and of the text. */
function csrCases(rng: Rng, key: TestKey): FuzzCase[] {
  const cri = certificationRequestInfo(key.spki);
  const { algId } = signatureAlgorithm(key.type);
  const signed = (criBytes: Buffer) => seq(criBytes, algId, bits(signWith(key, criBytes)));
  const good = signed(cri);
  const cases: FuzzCase[] = [{ name: 'control', body: { csr: pem('CERTIFICATE REQUEST', good) }, expected: [key.spki], markers: [] }];
  const add = (name: string, der: Buffer, markers: Buffer[]) => cases.push({ name, body: { csr: pem('CERTIFICATE REQUEST', der) }, expected: [key.spki], markers });

  // inside the CRI, signed again: the SPKI's own mutations in place of the SPKI, then the CRI's
  for (const m of keyMutants(key)) add(`cri spki: ${m.name}`, signed(certificationRequestInfo(m.der)), [...m.markers, ...asMarker(m.der, [key.spki, ...(m.otherKey ? [m.otherKey] : [])])]);
  for (const m of treeMutants(rng, cri, 'cri', undefined)) add(`${m.name} (signed)`, signed(m.der), m.markers);
  // outside the CRI: the CSR's own structure, with the signature over the unchanged CRI
  const csrRoot = parseDer(good);
  for (const m of treeMutants(rng, good, 'csr', undefined)) {
    if (/ at 0\.|of 0\.|after 0\.|inside 0\./.test(m.name)) continue; // inside the CRI: done above, signed
    add(m.name, m.der, m.markers);
  }
  const sig = csrRoot.children?.[2] as DerNode;
  for (const unused of [1, 7]) add(`signature unused bits ${unused}`, seq(cri, algId, bits(sig.contents.subarray(1), unused)), []);
  add('CA extensions after the CSR', Buffer.concat([good, caExtensions()]), [caExtensions()]);
  for (const m of pemMutants(rng, 'CERTIFICATE REQUEST', good, Buffer.concat([good, caExtensions()]))) {
    cases.push({ name: `pem: ${m.name}`, body: { csr: m.text }, expected: [key.spki], markers: m.markers });
  }
  cases.push({ name: 'pem: NEW CERTIFICATE REQUEST label', body: { csr: pem('NEW CERTIFICATE REQUEST', good) }, expected: [key.spki], markers: [] });
  return cases;
}

describe(`malformed client keys at /exchange (seed ${SEED})`, () => {
  let idp: TestIdp;
  let ca: TestCa;
  let g: TestGate;
  let token: string;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });

  before(async () => {
    idp = await startIdp({
      users: [{ sub: 'fuzz', claims: { email: 'fuzz@example.com', groups: ['ops'] } }],
      clients: [{ client_id: 'talos-gate', redirect_uris: ['http://127.0.0.1:9/callback'] }],
    });
    ca = makeTalosCa(dir, 'ed25519', 'key-fuzz');
    g = await startTestGate({
      oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' },
      rbac: { rules: [{ claim: 'groups', value: 'ops', roles: ['os:operator'] }] },
      talos: { ca_cert: ca.certPath, ca_key: ca.keyPath },
      audit_log: 'off',
      rate_limits: { exchange: 1_000_000 },
    });
    token = (await idp.login('talos-gate', 'fuzz')).id_token;
  });
  after(async () => {
    agent.destroy();
    await g?.close();
    await idp?.close();
  });

  async function run(cases: FuzzCase[]): Promise<void> {
    const problems: string[] = [];
    const issued: { c: FuzzCase; cert: string }[] = [];
    let refused = 0;
    // four at a time over kept-alive connections: fast, and still one gate process under load
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < cases.length; i = next++) {
        const c = cases[i] as FuzzCase;
        let res: HttpResponse;
        try {
          res = await request(`${g.url}/exchange`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ id_token: token, ...c.body }),
            ca: g.ca,
            agent,
            timeoutMs: 10_000,
          });
        } catch (e) {
          problems.push(`${c.name}: no answer (${(e as Error).message})`);
          continue;
        }
        // the answer's fields read here: error, cert
        const json = JSON.parse(res.body) as { error?: string; cert?: string };
        // FUZZ_VERBOSE=1: every case's answer, to see what a seed does
        if (process.env.FUZZ_VERBOSE) console.error(`${res.status} ${c.name} ${res.body.slice(0, 120)}`);
        if (res.status === 200 && json.cert) issued.push({ c, cert: json.cert });
        else if (res.status === 400 && json.error === 'invalid_request') refused++;
        else problems.push(`${c.name}: HTTP ${res.status} ${res.body.slice(0, 200)}`);
        if (c.name === 'control' && res.status !== 200) problems.push(`control: refused (${res.body.slice(0, 200)})`);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);

    const reports = await goJudgeAll(issued.map((i) => ({ cert: i.cert, ca: ca.certPem })));
    issued.forEach(({ c, cert }, i) => {
      const report = reports[i];
      if (!report) return;
      try {
        assertTalosClientCertificate(report, { roles: ['os:operator'], commonName: 'fuzz@example.com' }, c.name);
      } catch (e) {
        problems.push(`${c.name}: 200, and ${(e as Error).message.split(" (Go's report")[0]} — SPKI ${report.rawSubjectPublicKeyInfo || '?'}, parse error ${report.parseError}, strict ${JSON.stringify(report.strictProblems)}, CA ${report.isCA}`);
      }
      if (!c.expected.some((e) => e.toString('hex') === report.rawSubjectPublicKeyInfo)) {
        problems.push(`${c.name}: 200 with SPKI ${report.rawSubjectPublicKeyInfo || '(unreadable)'}, not the canonical ${c.expected.map((e) => e.toString('hex')).join(' or ')}`);
      }
      const der = Buffer.from(cert.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
      for (const m of c.markers) if (der.includes(m)) problems.push(`${c.name}: the injected bytes ${m.toString('hex')} are in the certificate`);
    });
    assert.ok(issued.length + refused + problems.length >= cases.length, 'every case answered');
    assert.equal(problems.length, 0, `${problems.length} problems in ${cases.length} cases (${issued.length} certified, ${refused} refused):\n${problems.slice(0, 25).join('\n')}${problems.length > 25 ? `\n… and ${problems.length - 25} more` : ''}`);
  }

  for (const type of ['ed25519', 'p256', 'p384'] as KeyType[]) {
    const key = keyFromSeed(type, createHash('sha512').update(`key-fuzz ${SEED} ${type}`).digest());
    // a timeout, so a gate that hangs on some input fails here instead of stalling the suite
    test(`${type} SPKIs as public_key`, { timeout: 60_000 }, () => run(publicKeyCases(prng(SEED ^ 0x5b1), key)));
    test(`CSRs signed with ${type}`, { timeout: 60_000 }, () => run(csrCases(prng(SEED ^ 0xc5a), key)));
  }
});
