import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { checkIssuedClientCertificate, IssuedCertificateError, readTrustedCas, type Expected } from '../../server/pki/issued-cert.js';
import { issueCertificate, toPem, type CertificateRequest } from '../../server/pki/x509.js';
import { makeFakeCa, type FakeCa } from '../helpers/fake-apid.js';

// The checks the gate makes of a certificate Talos signed (server/pki/issued-cert.ts), one departure
// from a good Talos client certificate at a time.

const ca = makeFakeCa('os CA');
const now = Date.now();

function issue(over: Partial<CertificateRequest> = {}, by: FakeCa = ca, key: { publicKey: KeyObject; privateKey: KeyObject } = generateKeyPairSync('ed25519')) {
  const req = {
    subject: { organizations: ['os:admin'] },
    publicKey: key.publicKey,
    notBefore: new Date(now),
    notAfter: new Date(now + 300_000),
    isCa: false,
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['clientAuth'],
    ...over,
  } as CertificateRequest;
  return { pem: issueCertificate(req, by.issuer).pem, keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

const expected = (keyPem: string, over: Partial<Expected> = {}): Expected => ({
  roles: ['os:admin'],
  now,
  ttlMs: 300_000,
  skewMs: 60_000,
  cas: readTrustedCas(ca.pem, 'test CA'),
  privateKeyPem: keyPem,
  ...over,
});

const refused = (pem: string, exp: Expected, why: RegExp) =>
  assert.throws(() => checkIssuedClientCertificate(pem, exp), (e: unknown) => e instanceof IssuedCertificateError && why.test(e.message));

test('a good Talos client certificate passes, with its key as PKCS#8', () => {
  const c = issue();
  const talosLabel = c.keyPem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '-----$1 ED25519 PRIVATE KEY-----'); // as Go writes it
  const out = checkIssuedClientCertificate(c.pem, expected(talosLabel));
  assert.equal(out.privateKeyPem, c.keyPem);
  assert.equal(out.commonName, undefined);
  const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const e = issue({}, ca, p256);
  assert.equal(checkIssuedClientCertificate(e.pem, expected(e.keyPem)).privateKeyPem, e.keyPem, 'a P-256 key takes the general path');
});

test('another CA with the same name: the signature does not verify', () => {
  const impostor = makeFakeCa('os CA');
  const c = issue({}, impostor);
  refused(c.pem, expected(c.keyPem), /signature does not verify/);
});

test('not a client certificate: a CA, other key usages, serverAuth, a SAN', () => {
  const a = issue({ isCa: true, keyUsage: ['digitalSignature', 'keyCertSign'] });
  refused(a.pem, expected(a.keyPem), /key usage|CA/);
  const b = issue({ keyUsage: ['digitalSignature', 'keyEncipherment'] });
  refused(b.pem, expected(b.keyPem), /key usage is not exactly digitalSignature/);
  const c = issue({ extKeyUsage: ['serverAuth'] });
  refused(c.pem, expected(c.keyPem), /extended key usage is not exactly clientAuth/);
  const d = issue({ subjectAltNames: ['127.0.0.1'] });
  refused(d.pem, expected(d.keyPem), /extension 2\.5\.29\.17/);
});

test('roles must be exactly the requested ones; a CN is allowed, other attributes are not', () => {
  const fewer = issue({ subject: { organizations: ['os:reader'] } });
  refused(fewer.pem, expected(fewer.keyPem, { roles: ['os:admin', 'os:reader'] }), /not the requested/);
  const twice = issue({ subject: { organizations: ['os:admin', 'os:admin'] } });
  refused(twice.pem, expected(twice.keyPem), /names a role twice/);
  const named = issue({ subject: { organizations: ['os:admin'], commonName: 'talos' } });
  assert.equal(checkIssuedClientCertificate(named.pem, expected(named.keyPem)).commonName, 'talos');
});

test('lifetime: no longer than asked plus skew, valid now', () => {
  const long = issue({ notAfter: new Date(now + 300_000 + 61_000) });
  refused(long.pem, expected(long.keyPem), /lives longer than asked/);
  const skewed = issue({ notAfter: new Date(now + 300_000 + 30_000) });
  assert.ok(checkIssuedClientCertificate(skewed.pem, expected(skewed.keyPem)), 'within the skew');
  const future = issue({ notBefore: new Date(now + 600_000), notAfter: new Date(now + 700_000) });
  refused(future.pem, expected(future.keyPem, { ttlMs: 3_600_000 }), /not valid yet/);
});

test('DER-strict: trailing bytes, two PEM blocks; the key must match', () => {
  const c = issue();
  const der = Buffer.from(c.pem.split('\n').filter((l) => !l.startsWith('-----')).join(''), 'base64');
  refused(toPem('CERTIFICATE', Buffer.concat([der, Buffer.of(0)])), expected(c.keyPem), /not DER-strict: trailing bytes/);
  refused(c.pem + c.pem, expected(c.keyPem), /not DER-strict/);
  const other = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  refused(c.pem, expected(other), /private key does not match/);
});
