import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from '../../cli/http.js';
import {
  bits,
  bool,
  caExtensionList,
  caExtensions,
  certificationRequestInfo,
  explicit,
  int,
  keyFromSeed,
  name,
  octets,
  oid,
  OIDS,
  pem,
  seq,
  set,
  signatureAlgorithm,
  signedCsr,
  signWith,
  spkiAlgorithm,
  utcTime,
  canonicalSpki,
  type KeyType,
  type TestKey,
} from '../helpers/der-writer.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';
import { assertTalosClientCertificate, goDial, goJudge, startGoApid, type GoCertReport } from '../helpers/go-x509.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { makeTalosCa, type TestCa } from '../helpers/talos-ca.js';

// Regression for the security review's finding: a client key whose SPKI DER carries an extra
// [3] { basicConstraints CA:TRUE, keyUsage keyCertSign } element, inside the SPKI SEQUENCE after
// the BIT STRING or right after it. A gate that copies the client's SPKI bytes into the certificate
// puts that element just after the certificate's SPKI, where Go's crypto/x509 (apid) reads it as
// the certificate's extensions: the operator gets a CA for the Talos cluster, and mints os:admin.
// OpenSSL reads the same certificate without noticing. Every such key must be refused with 400.

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-forged-'));

type Shape = 'inside' | 'trailing';
type Carrier = 'public_key' | 'csr';

/** The forged SPKI: the [3] as a third element of the SPKI SEQUENCE, or as bytes after it. */
function forgedSpki(key: TestKey, shape: Shape): Buffer {
  if (shape === 'inside') return seq(spkiAlgorithm(key.type), bits(key.raw), caExtensions());
  return Buffer.concat([key.spki, caExtensions()]);
}

/** The request body carrying the forged SPKI: as public_key PEM, or in a CSR the key signs properly. */
function bodyFor(key: TestKey, shape: Shape, carrier: Carrier): Record<string, string> {
  const spki = forgedSpki(key, shape);
  if (carrier === 'public_key') return { public_key: pem('PUBLIC KEY', spki) };
  return { csr: pem('CERTIFICATE REQUEST', signedCsr(key, certificationRequestInfo(spki))) };
}

const derOfPem = (p: string): Buffer => Buffer.from(p.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');

/**
 * What the holder of a certificate Go takes for a CA can do: sign a client certificate for
 * os:admin with the key the gate certified. Returns Go's verdict on it (chained through the issued
 * certificate to the Talos CA) and whether a Go mTLS server like apid lets it in.
 */
async function mintAdmin(issued: GoCertReport, issuedPem: string, holder: TestKey, ca: TestCa): Promise<{ verify: GoCertReport['verify']; apidSaw: string }> {
  const leaf = generateKeyPairSync('ed25519');
  const { algId } = signatureAlgorithm(holder.type);
  const tbs = seq(
    explicit(0, int(2)),
    int(7),
    algId,
    Buffer.from(issued.subject.raw, 'hex'),
    seq(utcTime(new Date(Date.now() - 60_000)), utcTime(new Date(Date.now() + 3_600_000))),
    name([
      [OIDS.organization, 'os:admin'],
      [OIDS.commonName, 'mallory-as-admin'],
    ]),
    canonicalSpki(leaf.publicKey),
    explicit(
      3,
      seq(seq(oid(OIDS.keyUsage), bool(true), octets(bits(Buffer.of(0x80), 7))), seq(oid(OIDS.extKeyUsage), octets(seq(oid(OIDS.clientAuth))))),
    ),
  );
  const minted = pem('CERTIFICATE', seq(tbs, algId, bits(signWith(holder, tbs))));
  const verdict = await goJudge(minted, ca.certPem, [issuedPem]);
  const apid = await startGoApid(ca.certPem);
  let apidSaw: string;
  try {
    // a Go client, as talosctl is: OpenSSL (Node's TLS) will not even load the issued certificate
    const seen = await goDial(apid.port, { chain: minted + issuedPem, key: leaf.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), serverCa: apid.serverCa });
    apidSaw = `ACCEPTED as ${JSON.stringify(seen)}`;
  } catch (e) {
    apidSaw = `refused (${(e as Error).message})`;
  }
  await apid.close();
  return { verify: verdict.verify, apidSaw };
}

describe('client keys with smuggled CA extensions (security review finding)', () => {
  let idp: TestIdp;
  let ca: TestCa;
  let g: TestGate;
  let token: string;

  before(async () => {
    idp = await startIdp({
      users: [{ sub: 'mallory', claims: { email: 'mallory@example.com', groups: ['ops'] } }],
      clients: [{ client_id: 'talos-gate', redirect_uris: ['http://127.0.0.1:9/callback'] }],
    });
    ca = makeTalosCa(dir, 'ed25519', 'forged');
    g = await startTestGate({
      oidc: { issuer_url: idp.issuer, client_id: 'talos-gate' },
      rbac: { rules: [{ claim: 'groups', value: 'ops', roles: ['os:operator'] }] },
      talos: { ca_cert: ca.certPath, ca_key: ca.keyPath },
      audit_log: 'off',
    });
    token = (await idp.login('talos-gate', 'mallory')).id_token;
  });
  after(async () => {
    await g?.close();
    await idp?.close();
  });

  async function exchange(body: Record<string, string>) {
    const res = await request(`${g.url}/exchange`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id_token: token, ...body }),
      ca: g.ca,
    });
    // the fields read here: error, error_description, cert, roles
    return { status: res.status, json: JSON.parse(res.body) as { error?: string; error_description?: string; cert?: string; roles?: string[] } };
  }

  const issued = async () => (await g.admin('GET', '/api/v1/stats')).json.total_certs_issued as number;

  for (const type of ['ed25519', 'p256', 'p384'] as KeyType[]) {
    const key = keyFromSeed(type, createHash('sha512').update(`forged-key ${type}`).digest());
    for (const shape of ['inside', 'trailing'] as Shape[]) {
      for (const carrier of ['public_key', 'csr'] as Carrier[]) {
        const where = shape === 'inside' ? 'a [3] element inside the SPKI SEQUENCE' : 'a [3] element after the SPKI SEQUENCE';
        test(`${type} SPKI with ${where}, as ${carrier === 'csr' ? 'the key of a validly signed CSR' : 'public_key PEM'}: 400 invalid_request, never a CA`, async () => {
          const before = await issued();
          const r = await exchange(bodyFor(key, shape, carrier));
          if (r.status === 200) {
            // Issued: say first what Go makes of it, the part that matters for the cluster
            const certPem = r.json.cert as string;
            const report = await goJudge(certPem, ca.certPem);
            if (report.isCA) {
              const minted = await mintAdmin(report, certPem, key, ca);
              assert.fail(
                `the gate answered 200 and Go's crypto/x509 reads the issued certificate as a CA ` +
                  `(IsCA ${report.isCA}, BasicConstraintsValid ${report.basicConstraintsValid}, KeyUsage ${report.keyUsage.join(',')}, ` +
                  `extensions ${report.extensions.map((e) => e.oid).join(',')}, Verify(clientAuth) ${report.verify.ok ? 'ok' : report.verify.error}); ` +
                  `an os:admin certificate signed with the client's key ${minted.verify.ok ? 'VERIFIES against the Talos CA' : `does not verify (${minted.verify.error})`}; ` +
                  `a Go mTLS server like apid ${minted.apidSaw}`,
              );
            }
            assert.equal(derOfPem(certPem).indexOf(caExtensions()), -1, 'the forged [3] bytes must not be in the certificate');
            assertTalosClientCertificate(report, { roles: ['os:operator'], commonName: 'mallory@example.com', spkiDer: key.spki }, 'the issued certificate');
          }
          assert.equal(r.status, 400, `a key with smuggled CA extensions must be refused, got ${r.status} ${JSON.stringify({ ...r.json, cert: r.json.cert ? '(a certificate)' : undefined })}`);
          assert.equal(r.json.error, 'invalid_request');
          assert.equal(r.json.cert, undefined);
          assert.equal(await issued(), before, 'no certificate issued');
        });
      }
    }

    test(`${type}: CA extensions requested in a CSR's extensionRequest attribute are not granted`, async () => {
      // PKCS#9 extensionRequest is where a CSR asks for extensions (openssl req -addext writes one):
      // a well-formed request, so it is certified, with the gate's extensions only, as its subject is ignored
      const attributes = seq(oid(OIDS.extensionRequest), set(caExtensionList()));
      const csr = pem('CERTIFICATE REQUEST', signedCsr(key, certificationRequestInfo(key.spki, { attributes })));
      const r = await exchange({ csr });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assertTalosClientCertificate(await goJudge(r.json.cert as string, ca.certPem), { roles: ['os:operator'], commonName: 'mallory@example.com', spkiDer: key.spki });
    });
  }

  // the controls: the same keys without the extra element are certified, with their canonical SPKI
  for (const type of ['ed25519', 'p256', 'p384'] as KeyType[]) {
    for (const carrier of ['public_key', 'csr'] as Carrier[]) {
      test(`control: a plain ${type} key as ${carrier} is certified, Go reads a Talos client certificate`, async () => {
        const key = keyFromSeed(type, createHash('sha512').update(`forged-key ${type}`).digest());
        const body: Record<string, string> = carrier === 'public_key' ? { public_key: pem('PUBLIC KEY', key.spki) } : { csr: pem('CERTIFICATE REQUEST', signedCsr(key, certificationRequestInfo(key.spki))) };
        const r = await exchange(body);
        assert.equal(r.status, 200, JSON.stringify(r.json));
        assertTalosClientCertificate(await goJudge(r.json.cert as string, ca.certPem), { roles: ['os:operator'], commonName: 'mallory@example.com', spkiDer: key.spki });
      });
    }
  }
});
