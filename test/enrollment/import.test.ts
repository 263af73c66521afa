import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from '../../cli/http.js';
import { BACKENDS, startTestGate, type TestGate } from '../helpers/gate.js';

// Issue 13: inventory import. Every row is checked first, a bad row rejects the whole file and names
// its line, a re-import updates, a dry run changes nothing. On both storage backends, a real gate.

for (const backend of BACKENDS) describe(`inventory import (${backend})`, () => {
  let g: TestGate;
  before(async () => {
    g = await startTestGate({}, { backend });
  });
  after(() => g.close());

  const post = async (body: string, type = 'text/csv', query = '') => {
    const res = await request(`${g.url}/api/v1/nodes/import${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${g.adminToken}`, 'content-type': type },
      body,
      ca: g.ca,
    });
    return { status: res.status, json: JSON.parse(res.body) };
  };
  const node = async (id: string) => (await g.admin('GET', `/api/v1/nodes/${encodeURIComponent(id)}`)).json;

  const good = [
    'uuid,mac,serial,profile,hostname,auto_approve',
    'a0000000-0000-4000-8000-000000000001,52:54:00:30:00:01,SN-1,worker,w-1,false',
    ',52:54:00:30:00:02,"SN, 2",controlplane,cp-2,true',
    'a0000000-0000-4000-8000-000000000003,,,worker,,',
  ].join('\r\n');

  test('a dry run answers what an import would do and changes nothing', async () => {
    const r = await post(good, 'text/csv', '?dry_run=true');
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json, { dry_run: true, rows: 3, created: 3, updated: 0, unchanged: 0 });
    assert.equal((await g.admin('GET', '/api/v1/nodes/52:54:00:30:00:02')).status, 404, 'nothing was written');
  });

  test('an import registers every row; the registered nodes are found by serial and listed as registered', async () => {
    const r = await post(good);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json, { dry_run: false, rows: 3, created: 3, updated: 0, unchanged: 0 });
    const one = await node('a0000000-0000-4000-8000-000000000001');
    assert.deepEqual([one.state, one.mac, one.profile, one.hostname, one.auto_approve], ['registered', '52:54:00:30:00:01', 'worker', 'w-1', false]);
    const two = await node('52:54:00:30:00:02');
    assert.deepEqual([two.profile, two.hostname, two.auto_approve], ['controlplane', 'cp-2', true]);
    const found = await g.admin('GET', '/api/v1/nodes?q=sn,%202');
    assert.deepEqual(found.json.nodes.map((n: { id: string }) => n.id), ['52:54:00:30:00:02'], 'the quoted serial, comma and all');
    const audit = await g.admin('GET', '/api/v1/audit?limit=3');
    assert.ok(audit.json.events.every((e: { type: string; detail: { imported?: boolean } }) => e.type === 'node_registered' && e.detail.imported));
  });

  test('a re-import updates what changed and leaves the rest', async () => {
    const again = [
      'mac,uuid,profile,hostname,auto_approve',
      '52:54:00:30:00:01,a0000000-0000-4000-8000-000000000001,controlplane,cp-1,true',
      ',a0000000-0000-4000-8000-000000000003,worker,,no',
    ].join('\n');
    const r = await post(again);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json, { dry_run: false, rows: 2, created: 0, updated: 1, unchanged: 1 });
    const one = await node('a0000000-0000-4000-8000-000000000001');
    assert.deepEqual([one.profile, one.hostname, one.auto_approve], ['controlplane', 'cp-1', true]);
  });

  test('a bad row rejects the whole file, naming its line; nothing of the good rows is written', async () => {
    const bad = [
      'uuid,mac,profile,hostname',
      'b0000000-0000-4000-8000-000000000001,,worker,ok-1',
      'b0000000-0000-4000-8000-000000000002,52-54-00,worker,ok-2',
      'b0000000-0000-4000-8000-000000000003,,nope,ok-3',
      '"b0000000-0000-4000-8000-000000000004\nstill the same record",,worker,x',
      'b0000000-0000-4000-8000-000000000001,,worker,dup-1',
    ].join('\n');
    const r = await post(bad);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.error, 'invalid_request');
    assert.match(r.json.error_description, /nothing was imported/);
    assert.deepEqual(r.json.errors.map((e: { line: number }) => e.line), [3, 4, 5, 7], 'lines counted in the file, a quoted line break included');
    assert.match(r.json.errors[0].error, /mac must be in colon form/);
    assert.match(r.json.errors[1].error, /unknown profile "nope"/);
    assert.match(r.json.errors[2].error, /uuid must be/);
    assert.match(r.json.errors[3].error, /on line 2 already/);
    assert.equal((await g.admin('GET', '/api/v1/nodes/b0000000-0000-4000-8000-000000000001')).status, 404, 'the good row was not written either');
  });

  test('CSV structure is checked strictly, and refusals in the database undo the whole file', async () => {
    const bare = await post('uuid,profile\nc1,"wor"ker\n');
    assert.equal(bare.status, 400);
    assert.deepEqual(bare.json.errors, [{ line: 2, error: 'text after the closing quote of a field' }]);
    const width = await post('uuid,profile\nc1,worker,extra\n');
    assert.deepEqual(width.json.errors, [{ line: 2, error: '3 fields; the header has 2' }]);
    const header = await post('uuid,flavour\nc1,worker\n');
    assert.match(header.json.errors[0].error, /unknown column "flavour"/);
    // a row that only the stored nodes refuse: the mac belongs to another node
    const clash = await post('uuid,mac,profile\nd0000000-0000-4000-8000-000000000001,,worker\na0000000-0000-4000-8000-000000000001,52:54:00:99:99:99,worker\n');
    assert.equal(clash.status, 400, JSON.stringify(clash.json));
    assert.deepEqual(clash.json.errors.map((e: { line: number }) => e.line), [3]);
    assert.match(clash.json.errors[0].error, /has mac 52:54:00:30:00:01, not 52:54:00:99:99:99/);
    assert.equal((await g.admin('GET', '/api/v1/nodes/d0000000-0000-4000-8000-000000000001')).status, 404, 'rolled back');
  });

  test('JSON lines import the same way; wrong media types and oversized files are refused', async () => {
    const lines = '{"uuid":"e0000000-0000-4000-8000-000000000001","profile":"worker","auto_approve":true}\n\n{"mac":"52:54:00:40:00:01","profile":"worker","colour":"red"}\n';
    const r = await post(lines, 'application/x-ndjson');
    assert.equal(r.status, 400);
    assert.deepEqual(r.json.errors, [{ line: 3, error: 'unknown key "colour" (known: uuid, mac, serial, profile, hostname, auto_approve)' }]);
    const ok = await post(lines.replace(',"colour":"red"', ''), 'application/x-ndjson');
    assert.deepEqual(ok.json, { dry_run: false, rows: 2, created: 2, updated: 0, unchanged: 0 });
    assert.equal((await node('e0000000-0000-4000-8000-000000000001')).auto_approve, true);
    const json = await g.admin('POST', '/api/v1/nodes/import', { uuid: 'x' });
    assert.equal(json.status, 400);
    assert.match(json.json.error_description, /text\/csv or application\/x-ndjson/);
    const big = await post(`uuid,profile\n${'f0000000-0000-4000-8000-000000000001,worker\n'.repeat(120_000)}`);
    assert.equal(big.status, 413);
    const many = await post(`uuid,profile\n${Array.from({ length: 10_001 }, (_, i) => `n${i},worker`).join('\n')}`);
    assert.equal(many.status, 400);
    assert.match(many.json.error_description, /at most 10000 per import/);
  });
});
