import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { generateClientKey, publicKeyFromPem } from '../../server/exchange/client-key.js';
import { ExchangeError } from '../../server/exchange/errors.js';
import { toPem } from '../../server/pki/x509.js';

// Client public keys take a fast import for the SPKIs clients send; it must read exactly the key the
// generic decoder would, and refuse what the generic decoder refuses.

const spkiOf = (k: ReturnType<typeof generateKeyPairSync>['publicKey']) => k.export({ type: 'spki', format: 'der' });

test('Ed25519, P-256 and P-384 keys are read as the key that was sent', () => {
  const keys = [
    generateKeyPairSync('ed25519').publicKey,
    generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey,
    generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey,
  ];
  for (const k of keys) {
    const read = publicKeyFromPem(k.export({ type: 'spki', format: 'pem' }) as string);
    assert.ok(read.spkiDer.equals(spkiOf(k)), `${k.asymmetricKeyType} ${k.asymmetricKeyDetails?.namedCurve ?? ''}`);
  }
});

test('a P-256 key with a compressed point takes the generic decoder and is the same key', () => {
  const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
  const x = Buffer.from(k.export({ format: 'jwk' }).x as string, 'base64url');
  const y = Buffer.from(k.export({ format: 'jwk' }).y as string, 'base64url');
  // SPKI with the point in compressed form: 0x02/0x03 by the parity of y
  const prefix = Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex');
  const spki = Buffer.concat([prefix, Buffer.of(((y[31] as number) & 1) === 1 ? 0x03 : 0x02), x]);
  const read = publicKeyFromPem(toPem('PUBLIC KEY', spki));
  assert.deepEqual(createPublicKey({ key: read.spkiDer, format: 'der', type: 'spki' }).export({ format: 'jwk' }), k.export({ format: 'jwk' }));
});

test('a P-256 point off the curve, a truncated key, a P-521 key and an Ed25519 key one byte short are refused', () => {
  const k = spkiOf(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey);
  const offCurve = Buffer.from(k);
  offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] as number) ^ 1;
  const p521 = spkiOf(generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).publicKey);
  const ed = spkiOf(generateKeyPairSync('ed25519').publicKey);
  for (const bad of [offCurve, k.subarray(0, k.length - 1), p521, ed.subarray(0, ed.length - 1)]) {
    assert.throws(() => publicKeyFromPem(toPem('PUBLIC KEY', bad)), (e: unknown) => e instanceof ExchangeError && e.kind === 'invalid_request');
  }
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
