import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomSerial } from '../../server/pki/x509.js';

// Certificate serials (server/pki/x509.ts randomSerial): positive, 16 octets, time-ordered so the
// store's unique serial index grows at its end, and 72 bits of CSPRNG output after the time.

test('serials are 16 octets, positive, and carry the issue time in milliseconds', () => {
  const at = Date.UTC(2026, 11, 2, 6, 0, 0, 123);
  const s = randomSerial(at);
  assert.equal(s.length, 16);
  assert.equal(s[0], 0x40, 'sign bit clear, the next set: the DER INTEGER is always 16 octets');
  assert.equal(s.readUIntBE(1, 6), at);
});

test('serials sort in issue order, and those of one millisecond still differ in their random part', () => {
  const at = Date.now();
  const sameMs = Array.from({ length: 2000 }, () => randomSerial(at).toString('hex'));
  assert.equal(new Set(sameMs).size, sameMs.length);
  assert.equal(new Set(sameMs.map((h) => h.slice(14))).size, sameMs.length, 'the 9 random octets differ');
  const later = randomSerial(at + 1).toString('hex');
  for (const h of sameMs) assert.ok(h < later, 'a later millisecond sorts after');
  // across a pool refill (4 KiB, 455 serials) the random part keeps changing and is never all zero
  for (const h of sameMs) assert.notEqual(h.slice(14), '0'.repeat(18));
});
