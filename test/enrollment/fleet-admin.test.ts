import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { newNode } from '../../server/storage/storage.js';
import { bootNode } from '../helpers/boot-node.js';
import { BACKENDS, startTestGate, type TestGate } from '../helpers/gate.js';

// Issue 13: search, paging and bulk decisions of the admin API, against a real gate over TLS, on
// both storage backends; the nodes are real device-flow clients (cli/talos-node.ts), so an approved
// node proves its approval by downloading its own config.

type NodeJson = { id: string; state: string; hostname: string | null; profile: string | null };

for (const backend of BACKENDS) describe(`fleet admin API: search and bulk decisions (${backend})`, () => {
  let g: TestGate;
  before(async () => {
    g = await startTestGate({}, { backend });
  });
  after(() => g.close());

  test('q finds nodes by a prefix of mac, uuid, hostname, serial or source IP, any case; registered nodes have their own state', async () => {
    const s = g.gate.storage;
    const now = Date.now();
    await s.createNode(newNode('c0ffee00-0000-4000-8000-000000000001', now, { uuid: 'c0ffee00-0000-4000-8000-000000000001', mac: '52:54:00:aa:bb:01', variables: { serial: 'SRV-991' }, requestedAt: now, sourceIp: '10.77.0.5' }));
    await s.createNode(newNode('c0ffee00-0000-4000-8000-000000000002', now + 1, { uuid: 'c0ffee00-0000-4000-8000-000000000002', mac: '52:54:00:aa:cc:02', hostname: 'db-7', status: 'approved', profile: 'worker' }));
    const reg = await g.admin('POST', '/api/v1/nodes', { mac: '52:54:00:aa:dd:03', serial: 'INV-0003', profile: 'worker' });
    assert.equal(reg.status, 201);
    assert.equal(reg.json.state, 'registered');
    const ids = async (query: string) => {
      const r = await g.admin('GET', `/api/v1/nodes?${query}`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return (r.json.nodes as NodeJson[]).map((n) => n.id);
    };
    assert.deepEqual(await ids('q=52:54:00:AA'), ['52:54:00:aa:dd:03', 'c0ffee00-0000-4000-8000-000000000002', 'c0ffee00-0000-4000-8000-000000000001']);
    assert.deepEqual(await ids('q=52%3A54%3A00%3Aaa%3Acc'), ['c0ffee00-0000-4000-8000-000000000002']);
    assert.deepEqual(await ids('q=C0FFEE00-0000-4000-8000-000000000001'), ['c0ffee00-0000-4000-8000-000000000001'], 'a whole uuid');
    assert.deepEqual(await ids('q=DB-'), ['c0ffee00-0000-4000-8000-000000000002'], 'hostname');
    assert.deepEqual(await ids('q=srv-9'), ['c0ffee00-0000-4000-8000-000000000001'], 'serial');
    assert.deepEqual(await ids('q=inv-'), ['52:54:00:aa:dd:03'], 'the serial of a registration');
    assert.deepEqual(await ids('q=10.77.'), ['c0ffee00-0000-4000-8000-000000000001'], 'source IP');
    assert.deepEqual(await ids('q=%25'), [], 'a % is no wildcard');
    assert.deepEqual(await ids('q=52:54:00:aa&status=registered'), ['52:54:00:aa:dd:03']);
    assert.equal((await ids('q=52:54:00:aa&status=pending')).includes('52:54:00:aa:dd:03'), false, 'a registered node waits for nobody');
    assert.deepEqual(await ids('q=52:54:00:aa&limit=1'), ['52:54:00:aa:dd:03']);
    const bad = await g.admin('GET', '/api/v1/nodes?q=%E2%9C%93');
    assert.equal(bad.status, 400);
    assert.match(bad.json.error_description, /q must be/);
  });

  test('search results page by next_cursor, each match once while matching nodes arrive between pages', async () => {
    const s = g.gate.storage;
    const base = Date.now() - 1_000_000;
    const mac = (i: number) => `52:54:00:99:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    for (let i = 0; i < 250; i++) await s.createNode(newNode(`page-${i}`, base + Math.floor(i / 3), { mac: mac(i), requestedAt: base, sourceIp: '192.0.2.4' }));
    const seen: string[] = [];
    let cursor: string | null = null;
    let added = 250;
    do {
      const r = await g.admin('GET', `/api/v1/nodes?q=52:54:00:99:&limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      seen.push(...(r.json.nodes as NodeJson[]).map((n) => n.id));
      cursor = r.json.next_cursor;
      // a newer and an older matching node arrive between pages
      for (const at of [Date.now(), base - 1000]) await s.createNode(newNode(`page-${added}`, at, { mac: mac(added++), requestedAt: at }));
    } while (cursor !== null);
    const old = seen.filter((id) => Number(id.slice(5)) < 250);
    assert.equal(old.length, 250, 'every node that matched at the start is seen');
    assert.equal(new Set(seen).size, seen.length, 'none twice');
  });

  test('bulk approve with good and bad codes: each good one approved and downloads its own config, the bad ones answered per item', async () => {
    const macs = ['52:54:00:10:00:a1', '52:54:00:10:00:b2', '52:54:00:10:00:c3'];
    const nodes = macs.map((mac, i) => bootNode(g, { uuid: `b01c0000-0000-4000-8000-00000000000${i}`, mac }));
    const codes = (await Promise.all(nodes.map((n) => n.da))).map((d) => d.user_code);
    const user_codes = [codes[0], 'BCDF-GHJK', codes[1], 'not a code', codes[2]];
    const r = await g.admin('POST', '/api/v1/nodes/approve', { user_codes, profile: 'worker', hostname_template: 'worker-{{mac_suffix}}' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.results.map((x: { user_code: string; status: string }) => [x.user_code, x.status]), [
      [codes[0], 'approved'],
      ['BCDF-GHJK', 'error'],
      [codes[1], 'approved'],
      ['not a code', 'error'],
      [codes[2], 'approved'],
    ]);
    assert.equal(r.json.results[1].error, 'not_found');
    assert.match(r.json.results[1].error_description, /no pending request has this code/);
    const configs = await Promise.all(nodes.map((n) => n.result));
    configs.forEach((c, i) => {
      const cfg = parse(c.config);
      assert.equal(cfg.machine.type, 'worker');
      assert.equal(cfg.machine.network.hostname, `worker-${(macs[i] as string).replace(/:/g, '').slice(-6)}`, 'its own name, from the template');
    });
    const audit = await g.admin('GET', '/api/v1/audit?limit=10');
    assert.equal(audit.json.events.filter((e: { type: string }) => e.type === 'device_approved').length >= 3, true, 'each approval audited');
  });

  test('bulk approve checks the template, the profile and the list before touching any node', async () => {
    const a = bootNode(g, { uuid: 'cafe0000-0000-4000-8000-000000000001', mac: '52:54:00:20:00:01' });
    const code = (await a.da).user_code;
    const refused = async (body: unknown, pattern: RegExp) => {
      const r = await g.admin('POST', '/api/v1/nodes/approve', body);
      assert.equal(r.status, 400, JSON.stringify(r.json));
      assert.match(r.json.error_description, pattern);
    };
    await refused({ user_codes: [code], profile: 'worker', hostname_template: 'w-{{nope}}' }, /unknown variable \{\{nope\}\}/);
    await refused({ user_codes: [code], profile: 'worker', hostname_template: 'W_{{index}}' }, /only a-z/);
    await refused({ user_codes: [code, 'BCDF-GHJK'], profile: 'worker', hostname_template: 'same' }, /needs a \{\{variable\}\}/);
    await refused({ user_codes: [code], profile: 'nope' }, /unknown profile/);
    await refused({ user_codes: [code, code.toLowerCase()], profile: 'worker' }, /twice/);
    await refused({ user_codes: [], profile: 'worker' }, /fewer than 1|must NOT have fewer/);
    await refused({ user_codes: [code], node_ids: ['x'], profile: 'worker' }, /oneOf|must match exactly one/);
    await refused({ user_codes: Array.from({ length: 1001 }, (_, i) => `c${i}`), profile: 'worker' }, /more than 1000/);
    const noProfile = await g.admin('POST', '/api/v1/nodes/approve', { user_codes: [code] });
    assert.equal(noProfile.json.results[0].status, 'error');
    assert.match(noProfile.json.results[0].error_description, /profile is required/, 'no default profile: the item names the missing field');
    const byId = await g.admin('POST', '/api/v1/nodes/approve', { node_ids: ['cafe0000-0000-4000-8000-000000000001'], profile: 'controlplane', hostname_template: 'cp-{{uuid_prefix}}-{{index}}' });
    assert.deepEqual(byId.json.results.map((x: { node_id: string; status: string; node: NodeJson }) => [x.node_id, x.status, x.node.hostname]), [
      ['cafe0000-0000-4000-8000-000000000001', 'approved', 'cp-cafe0000-1'],
    ]);
    assert.equal(parse((await a.result).config).machine.type, 'controlplane');
  });

  test('bulk deny by node id: the waiting ones denied, an unknown id answered on its own', async () => {
    const a = bootNode(g, { uuid: 'de000000-0000-4000-8000-000000000001' });
    const b = bootNode(g, { uuid: 'de000000-0000-4000-8000-000000000002' });
    await Promise.all([a.da, b.da]);
    const r = await g.admin('POST', '/api/v1/nodes/deny', { node_ids: ['de000000-0000-4000-8000-000000000001', 'no-such-node', 'de000000-0000-4000-8000-000000000002'] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.results.map((x: { status: string }) => x.status), ['denied', 'error', 'denied']);
    assert.equal(r.json.results[1].error, 'not_found');
    await assert.rejects(a.result, /access_denied/);
    await assert.rejects(b.result, /access_denied/);
    assert.equal((await g.admin('GET', '/api/v1/nodes/de000000-0000-4000-8000-000000000001')).json.state, 'denied');
  });
});
