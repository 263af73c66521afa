import assert from 'node:assert/strict';
import { test } from 'node:test';
import forge from 'node-forge';
import * as D from '../../server/pki/der.js';

// Our DER writer against node-forge's, an independent encoder, on the cases certificates hit:
// long lengths, multi-byte OID arcs, integers with the top bit set, both time types.

const asn1 = forge.asn1;
const forgeDer = (n: forge.asn1.Asn1) => Buffer.from(asn1.toDer(n).getBytes(), 'binary');

test('lengths of 0, 127, 128, 255, 256 and 70,000 octets are encoded as forge encodes them', () => {
  for (const n of [0, 127, 128, 255, 256, 70_000]) {
    const body = Buffer.alloc(n, 0x61);
    assert.deepEqual(D.octetString(body), forgeDer(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, body.toString('binary'))), `length ${n}`);
  }
});

test('object identifiers with multi-byte arcs', () => {
  for (const oid of ['2.5.4.3', '1.2.840.113549.1.1.11', '1.3.6.1.5.5.7.3.2', '1.3.101.112', '2.999.16384', '1.2.840.10045.4.3.2']) {
    assert.deepEqual(D.objectIdentifier(oid), forgeDer(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes())), oid);
  }
});

test('unsigned integers: leading zeros dropped, a zero octet added before a set top bit', () => {
  assert.deepEqual(D.unsignedInteger(Buffer.of(2)), Buffer.of(0x02, 0x01, 0x02));
  assert.deepEqual(D.unsignedInteger(Buffer.of(0x80)), Buffer.of(0x02, 0x02, 0x00, 0x80));
  assert.deepEqual(D.unsignedInteger(Buffer.of(0, 0, 0x7f)), Buffer.of(0x02, 0x01, 0x7f));
  assert.deepEqual(D.unsignedInteger(Buffer.of(0, 0)), Buffer.of(0x02, 0x01, 0x00));
});

test('UTCTime through 2049, GeneralizedTime from 2050', () => {
  for (const iso of ['2026-11-24T14:05:09Z', '2049-12-31T23:59:59Z', '2050-01-01T00:00:00Z', '1999-02-03T04:05:06Z']) {
    const d = new Date(iso);
    const expected =
      d.getUTCFullYear() < 2050
        ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(d))
        : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d));
    assert.deepEqual(D.time(d), forgeDer(expected), iso);
  }
});

test('UTF-8 strings, sets, explicit and implicit tags', () => {
  const name = 'Ærøskøbing ✓';
  assert.deepEqual(D.utf8String(name), forgeDer(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTF8, false, forge.util.encodeUtf8(name))));
  assert.deepEqual(D.set([D.boolTrue()]), Buffer.of(0x31, 0x03, 0x01, 0x01, 0xff));
  assert.deepEqual(D.explicit(3, D.derNull()), Buffer.of(0xa3, 0x02, 0x05, 0x00));
  assert.deepEqual(D.implicitPrimitive(7, Buffer.of(10, 0, 0, 1)), Buffer.of(0x87, 0x04, 10, 0, 0, 1));
});
