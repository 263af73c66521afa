import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressBucket, inCidrs, parseCidr, rateLimitKey } from '../../server/client-ip.js';

test('address buckets: IPv4 as it is, IPv6 by its /64 (RFC 4291), IPv4-mapped IPv6 as IPv4', () => {
  const cases: [string, string][] = [
    ['198.51.100.7', '198.51.100.7'],
    ['::ffff:198.51.100.7', '198.51.100.7'],
    ['::FFFF:c633:6407', '198.51.100.7'],
    ['0:0:0:0:0:ffff:198.51.100.7', '198.51.100.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002::ffff', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::1%eth0', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['64:ff9b::198.51.100.7', '64:ff9b:0:0::/64'], // NAT64 (RFC 6052): the IPv6 side's /64
    ['fe80::1', 'fe80:0:0:0::/64'],
    ['not an address', 'not an address'],
  ];
  for (const [ip, bucket] of cases) assert.equal(addressBucket(ip), bucket, ip);
  assert.equal(rateLimitKey('2001:db8:1:2::9'), rateLimitKey('2001:db8:1:2:ffff::1'));
  assert.notEqual(rateLimitKey('2001:db8:1:2::9'), rateLimitKey('2001:db8:1:3::9'));
});

test('CIDRs: parsed with their prefix, matched for both families', () => {
  assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', bits: 8, family: 4 });
  assert.deepEqual(parseCidr('2001:db8::/32'), { address: '2001:db8::', bits: 32, family: 6 });
  assert.deepEqual(parseCidr('192.0.2.1'), { address: '192.0.2.1', bits: 32, family: 4 });
  for (const bad of ['10.0.0.0/33', '2001:db8::/129', '10.0.0.0/8/1', 'example.com', '10.0.0.0/x', '']) assert.equal(parseCidr(bad), undefined, bad);
  assert.equal(inCidrs('10.1.2.3', ['192.168.0.0/16', '10.0.0.0/8']), true);
  assert.equal(inCidrs('11.1.2.3', ['10.0.0.0/8']), false);
  assert.equal(inCidrs('2001:db8:b:1::5', ['2001:db8:b::/48']), true);
  assert.equal(inCidrs('2001:db8:c::5', ['2001:db8:b::/48']), false);
  assert.equal(inCidrs('192.0.2.1', ['192.0.2.1']), true);
  assert.equal(inCidrs('not-an-ip', ['0.0.0.0/0']), false);
});
