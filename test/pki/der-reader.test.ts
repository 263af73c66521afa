import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { issueTalosClientCertificate } from '../../server/pki/client-cert.js';
import * as D from '../../server/pki/der.js';
import { DerError, oidOf, readDer } from '../../server/pki/der-reader.js';
import { issueCertificate, type Issuer } from '../../server/pki/x509.js';

// The strict reader accepts exactly DER (one tree, shortest lengths, nothing trailing), and the
// issuer refuses to sign an SPKI that is more than one well-formed element.

test('readDer refuses trailing bytes, non-minimal and indefinite lengths, high tags and overlong contents', () => {
  const ok = D.sequence([D.objectIdentifier('1.3.101.112'), D.octetString(Buffer.alloc(3))]);
  assert.equal(readDer(ok).raw.length, ok.length);
  const bad = [
    Buffer.concat([ok, Buffer.of(0)]), // trailing
    Buffer.concat([Buffer.of(0x30, 0x81, ok.length - 2), ok.subarray(2)]), // long form for a short length
    Buffer.concat([Buffer.of(0x30, 0x82, 0x00, ok.length - 2), ok.subarray(2)]), // leading zero length octet
    Buffer.concat([Buffer.of(0x30, 0x80), ok.subarray(2), Buffer.of(0, 0)]), // indefinite
    Buffer.of(0x1f, 0x81, 0x01, 0x00), // high tag number
    Buffer.of(0x30, 0x05, 0x04, 0x01), // runs past its end
    D.sequence([Buffer.of(0x04, 0x05, 0x00)]), // a child that runs past its container
    D.sequence([D.octetString(Buffer.alloc(1)), Buffer.of(0x00)]), // a stray byte inside
  ];
  for (const b of bad) assert.throws(() => readDer(b), DerError, b.toString('hex'));
  let deep = D.sequence([]);
  for (let i = 0; i < 40; i++) deep = D.sequence([deep]);
  assert.throws(() => readDer(deep), /nested too deeply/);
});

test('object identifiers read back as written; non-minimal arcs are refused', () => {
  for (const oid of ['1.3.101.112', '1.2.840.10045.3.1.7', '2.5.29.19', '2.999.1']) assert.equal(oidOf(readDer(D.objectIdentifier(oid)), 'oid'), oid);
  assert.throws(() => oidOf(readDer(Buffer.of(0x06, 0x02, 0x80, 0x01)), 'oid'), /shortest form/);
});

test('the issuer signs only a well-formed SPKI, and a client certificate only a canonical one', async () => {
  const ca = generateKeyPairSync('ed25519');
  const issuer: Issuer = { name: { organizations: ['talos'] }, key: ca.privateKey, publicKey: ca.publicKey };
  const spki = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
  const common = { subject: { commonName: 'x' }, notBefore: new Date(), notAfter: new Date(Date.now() + 60_000), isCa: false, keyUsage: ['digitalSignature' as const] };
  assert.ok(issueCertificate({ ...common, spkiDer: spki }, issuer).der.length > 0);
  const trailing = Buffer.concat([spki, D.explicit(3, D.sequence([]))]);
  assert.throws(() => issueCertificate({ ...common, spkiDer: trailing }, issuer), DerError);
  const inside = D.sequence([spki.subarray(2), D.explicit(3, D.sequence([]))]);
  assert.throws(() => issueCertificate({ ...common, spkiDer: inside }, issuer), DerError);
  const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' });
  const client = { issuer, commonName: 'x', roles: ['os:reader'], ttlMs: 60_000, now: Date.now() };
  assert.ok((await issueTalosClientCertificate({ ...client, spkiDer: p256 })).der.length > 0);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' });
  await assert.rejects(() => issueTalosClientCertificate({ ...client, spkiDer: rsa }), /canonical/);
});
