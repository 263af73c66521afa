import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { goFormEncode, request } from '../../cli/http.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';

// Security review #11, finding 8: the per-address limits counted exact addresses, so one IPv6 host
// (a /64) had 2^64 allowances. They count an IPv4 address or an IPv6 /64 now. The gate trusts
// 127.0.0.1 as a proxy, so X-Forwarded-For stands for the node's address.

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

function ask(g: TestGate, uuid: string, from: string) {
  return request(`${g.url}/device/code`, {
    method: 'POST',
    headers: { ...FORM, 'x-forwarded-for': from },
    body: goFormEncode({ client_id: 'talos-node', uuid }),
    ca: g.ca,
  });
}

describe('per-address limits count an IPv6 /64 as one address', () => {
  let g: TestGate;
  before(async () => {
    g = await startTestGate({ trusted_proxies: ['127.0.0.1/32'], device: { interval: '1s', max_pending_per_ip: 3 }, rate_limits: { device_code: 10 } });
  });
  after(() => g.close());

  test('device.max_pending_per_ip: the addresses of one /64 share it; another /64 has its own; IPv4-mapped is IPv4', async () => {
    for (let i = 1; i <= 3; i++) assert.equal((await ask(g, `v6-${i}`, `2001:db8:1:2::${i}`)).status, 200);
    const over = await ask(g, 'v6-4', '2001:db8:1:2:ffff:ffff:ffff:ffff');
    assert.equal(over.status, 429, 'the fourth address of the same /64 is over the limit');
    assert.equal(JSON.parse(over.body).error, 'slow_down');
    assert.equal((await ask(g, 'v6-other', '2001:db8:1:3::1')).status, 200, 'the next /64 is another address');

    assert.equal((await ask(g, 'v4-1', '::ffff:198.51.100.7')).status, 200);
    assert.equal((await ask(g, 'v4-2', '198.51.100.7')).status, 200);
    assert.equal((await ask(g, 'v4-3', '::ffff:c633:6407')).status, 200);
    assert.equal((await ask(g, 'v4-4', '198.51.100.7')).status, 429, 'IPv4-mapped IPv6 counts as the IPv4 address');
    assert.equal((await g.admin('GET', '/api/v1/nodes/v4-1')).json.source_ip, '198.51.100.7');
  });

  test('rate limits: the addresses of one /64 share one allowance', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await ask(g, `rl-${i}`, `2001:db8:5:5::${i + 1}`)).status);
    // the pending limit answers 429 slow_down from the fourth on; the rate limit refuses the eleventh
    const last = await ask(g, 'rl-last', '2001:db8:5:5::abcd');
    assert.equal(last.status, 429);
    assert.equal(JSON.parse(last.body).error, 'too_many_requests', `statuses so far: ${statuses.join(' ')}`);
    assert.equal((await ask(g, 'rl-other', '2001:db8:5:6::1')).status, 200, 'another /64 has its own allowance');
  });
});
