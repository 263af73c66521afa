import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateClientKey, publicKeyFromCsr, publicKeyFromPem } from '../../server/exchange/client-key.js';
import { ExchangeError } from '../../server/exchange/errors.js';
import * as D from '../../server/pki/der.js';
import { toPem } from '../../server/pki/x509.js';

// Client keys are read strictly and only their canonical re-encoding goes on: whatever shape of
// bytes a client sends, the SPKI that comes out is the one OpenSSL writes for the parsed key.

const dir = mkdtempSync(join(tmpdir(), 'talos-gate-client-key-'));
const spkiOf = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
const refused = (e: unknown) => e instanceof ExchangeError && e.kind === 'invalid_request';

const keyPairs = () => [
  generateKeyPairSync('ed25519'),
  generateKeyPairSync('ec', { namedCurve: 'prime256v1' }),
  generateKeyPairSync('ec', { namedCurve: 'secp384r1' }),
];

/** The extensions block an attacker wants a certificate to carry: CA:TRUE and keyCertSign. */
const caExtensions = D.explicit(
  3,
  D.sequence([
    D.sequence([D.objectIdentifier('2.5.29.19'), D.boolTrue(), D.octetString(D.sequence([D.boolTrue()]))]),
    D.sequence([D.objectIdentifier('2.5.29.15'), D.boolTrue(), D.octetString(D.bitString(Buffer.of(0x04), 2))]),
  ]),
);

/** The SPKI's own two elements, re-wrapped with something more inside or after it. */
function forgedSpkis(spki: Buffer): Buffer[] {
  // the outer SEQUENCE's contents start after its tag and length (short or 0x81 form for these keys)
  const inner = spki.subarray(spki[1] === 0x81 ? 3 : 2);
  return [
    D.sequence([inner, caExtensions]), // an extra element inside the SPKI
    Buffer.concat([spki, caExtensions]), // trailing bytes after it
    Buffer.concat([spki, Buffer.of(0)]),
  ];
}

test('Ed25519, P-256 and P-384 keys are read as the key that was sent, canonically encoded', () => {
  for (const { publicKey } of keyPairs()) {
    const read = publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string);
    assert.ok(read.spkiDer.equals(spkiOf(publicKey)), `${publicKey.asymmetricKeyType} ${publicKey.asymmetricKeyDetails?.namedCurve ?? ''}`);
  }
});

test('a P-256 key with a compressed point is the same key, re-encoded with the uncompressed point', () => {
  const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
  const x = Buffer.from(k.export({ format: 'jwk' }).x as string, 'base64url');
  const y = Buffer.from(k.export({ format: 'jwk' }).y as string, 'base64url');
  // SPKI with the point in compressed form: 0x02/0x03 by the parity of y
  const prefix = Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex');
  const spki = Buffer.concat([prefix, Buffer.of(((y[31] as number) & 1) === 1 ? 0x03 : 0x02), x]);
  const read = publicKeyFromPem(toPem('PUBLIC KEY', spki));
  assert.ok(read.spkiDer.equals(spkiOf(k)), 'the uncompressed form Go reads, not the bytes sent');
});

test('a P-256 point off the curve, a truncated key, a P-521 key, an RSA key and an Ed25519 key one byte short are refused', () => {
  const k = spkiOf(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey);
  const offCurve = Buffer.from(k);
  offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] as number) ^ 1;
  const p521 = spkiOf(generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).publicKey);
  const rsa = spkiOf(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey);
  const ed = spkiOf(generateKeyPairSync('ed25519').publicKey);
  for (const bad of [offCurve, k.subarray(0, k.length - 1), p521, rsa, ed.subarray(0, ed.length - 1)]) {
    assert.throws(() => publicKeyFromPem(toPem('PUBLIC KEY', bad)), refused);
  }
});

test('security review #1: an SPKI with an extra element inside or bytes after it is refused, for every key type', () => {
  for (const { publicKey } of keyPairs()) {
    for (const forged of forgedSpkis(spkiOf(publicKey))) {
      assert.throws(() => publicKeyFromPem(toPem('PUBLIC KEY', forged)), refused, forged.toString('hex'));
    }
  }
});

test('non-DER encodings of a valid key are refused: long-form lengths, indefinite length, unused bits, Ed25519 parameters', () => {
  const ed = spkiOf(generateKeyPairSync('ed25519').publicKey);
  const longForm = Buffer.concat([Buffer.of(0x30, 0x81, ed[1] as number), ed.subarray(2)]);
  const indefinite = Buffer.concat([Buffer.of(0x30, 0x80), ed.subarray(2), Buffer.of(0, 0)]);
  const unused = Buffer.from(ed);
  unused[11] = 1; // the BIT STRING's unused-bits octet
  const withNull = D.sequence([D.sequence([D.objectIdentifier('1.3.101.112'), D.derNull()]), D.bitString(ed.subarray(12))]);
  for (const bad of [longForm, indefinite, unused, withNull]) {
    assert.throws(() => publicKeyFromPem(toPem('PUBLIC KEY', bad)), refused, bad.toString('hex'));
  }
});

test('PEM is read strictly: one block, its own label, clean base64', () => {
  const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string;
  assert.ok(publicKeyFromPem(`\n${pem}\n`).spkiDer.length === 44, 'white space around is fine');
  const body = pem.split('\n')[1] as string;
  for (const bad of [
    `junk\n${pem}`,
    `${pem}junk`,
    pem + pem,
    pem.replace('PUBLIC KEY-----\n', 'PUBLIC KEY-----\n!'),
    pem.replace(body, `${body.slice(0, -4)}====`),
    pem.replace(body, `${body}AA`),
    pem.replace(/PUBLIC KEY/g, 'CERTIFICATE'),
    pem.replace('END PUBLIC KEY', 'END CERTIFICATE'),
  ]) {
    assert.throws(() => publicKeyFromPem(bad), refused, bad);
  }
});

/** A PKCS#10 request for `spki`, signed with `key` over exactly the info it carries. */
function csrFor(spki: Buffer, key: KeyObject, opts: { sigOid?: string; digest?: string | null; trailing?: Buffer } = {}): string {
  const ec = key.asymmetricKeyType === 'ec';
  const info = D.sequence([D.unsignedInteger(Buffer.of(0)), D.sequence([]), spki, D.explicit(0, Buffer.alloc(0))]);
  const sigOid = opts.sigOid ?? (ec ? '1.2.840.10045.4.3.2' : '1.3.101.112');
  const digest = opts.digest === undefined ? (ec ? 'sha256' : null) : opts.digest;
  const signature = sign(digest, info, ec ? { key, dsaEncoding: 'der' } : key);
  const csr = D.sequence([info, D.sequence([D.objectIdentifier(sigOid)]), D.bitString(signature)]);
  return toPem('CERTIFICATE REQUEST', opts.trailing ? Buffer.concat([csr, opts.trailing]) : csr);
}

test('security review #10: CSRs of Ed25519, P-256 and P-384 keys (openssl-made) are taken, their key canonically encoded', () => {
  for (const { publicKey, privateKey } of keyPairs()) {
    const keyFile = join(dir, `csr-${publicKey.asymmetricKeyType}-${publicKey.asymmetricKeyDetails?.namedCurve ?? ''}.key`);
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const csr = execFileSync('openssl', ['req', '-new', '-key', keyFile, '-subj', '/CN=ignored/O=system:masters']).toString();
    assert.ok(publicKeyFromCsr(csr).spkiDer.equals(spkiOf(publicKey)), `${publicKey.asymmetricKeyType} ${publicKey.asymmetricKeyDetails?.namedCurve ?? ''}`);
  }
});

test('security review #1: a correctly signed CSR carrying a forged SPKI, or with bytes after it, is refused', () => {
  for (const { publicKey, privateKey } of keyPairs()) {
    const spki = spkiOf(publicKey);
    assert.ok(publicKeyFromCsr(csrFor(spki, privateKey)).spkiDer.equals(spki), 'the honest request is taken');
    for (const forged of forgedSpkis(spki)) assert.throws(() => publicKeyFromCsr(csrFor(forged, privateKey)), refused);
    assert.throws(() => publicKeyFromCsr(csrFor(spki, privateKey, { trailing: caExtensions })), refused);
  }
});

test('a CSR signed by another key, or with an algorithm that does not fit its key, is refused', () => {
  const [ed, p256] = keyPairs() as [ReturnType<typeof generateKeyPairSync>, ReturnType<typeof generateKeyPairSync>];
  assert.throws(() => publicKeyFromCsr(csrFor(spkiOf(ed.publicKey), generateKeyPairSync('ed25519').privateKey)), /does not verify/);
  assert.throws(() => publicKeyFromCsr(csrFor(spkiOf(p256.publicKey), p256.privateKey, { sigOid: '1.3.101.112' })), /does not fit/);
  assert.throws(() => publicKeyFromCsr(csrFor(spkiOf(p256.publicKey), p256.privateKey, { sigOid: '1.2.840.113549.1.1.11' })), /unsupported algorithm/);
});

test('a key the gate generates: PKCS#8 PEM that OpenSSL reads, and the SPKI of its public half', () => {
  const k = generateClientKey();
  const priv = createPrivateKey(k.privateKeyPem as string);
  assert.equal(priv.asymmetricKeyType, 'ed25519');
  assert.ok(createPublicKey(priv).export({ type: 'spki', format: 'der' }).equals(k.spkiDer));
  assert.equal(k.privateKeyPem, priv.export({ type: 'pkcs8', format: 'pem' }), 'byte for byte what OpenSSL writes');
  const text = execFileSync('openssl', ['pkey', '-noout', '-text'], { input: k.privateKeyPem }).toString();
  assert.match(text, /ED25519 Private-Key/);
});
