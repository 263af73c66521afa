import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { goFormEncode, request } from '../../cli/http.js';
import type { MaintenanceCounts } from '../../server/enrollment/maintenance.js';
import { newNode, type NodeRecord } from '../../server/storage/storage.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';
import { waitingNodeRequest } from '../helpers/waiting-node.js';

// Security review #11, finding 8: node rows were never deleted (about 24,000 a day from one IPv4
// address). Nodes nobody decided on go after device.pending_retention, in batches that leave the
// event loop free; a node keeps only its newest finished requests.

const HOUR = 3_600_000;
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

function ask(g: TestGate, uuid: string, from?: string) {
  return request(`${g.url}/device/code`, {
    method: 'POST',
    headers: { ...FORM, ...(from ? { 'x-forwarded-for': from } : {}) },
    body: goFormEncode({ client_id: 'talos-node', uuid }),
    ca: g.ca,
  });
}

describe('retention of nodes nobody decided on', () => {
  let g: TestGate;
  before(async () => {
    g = await startTestGate({ device: { interval: '1s', code_ttl: '2m', pending_retention: '24h' } });
  });
  after(() => g.close());

  test('50,000 abandoned nodes are deleted in short batches; decided, registered and recent ones stay, and so do the audit events', async () => {
    const s = g.gate.storage;
    const now = Date.now();
    const old = now - 25 * HOUR;
    // one real boot, 25 hours ago: its audit event is the record that stays
    assert.equal((await ask(g, 'booted-long-ago')).status, 200);
    await s.updateNode('booted-long-ago', (n) => ({ ...n, requestedAt: old }));
    for (const r of await s.listDeviceRequests({ nodeId: 'booted-long-ago' })) await s.updateDeviceRequest(r.id, (x) => ({ ...x, createdAt: old, expiresAt: old + 120_000 }));

    const junk = 50_000;
    await s.transaction(async (tx) => {
      for (let i = 0; i < junk; i++) {
        const id = `junk-${i}`;
        await tx.createNode(newNode(id, old, { uuid: id, variables: { uuid: id }, requestedAt: old, sourceIp: '192.0.2.66' }));
        if (i % 2) {
          await tx.createDeviceRequest(waitingNodeRequest(id, { userCode: `J${i}`, sourceIp: '192.0.2.66', createdAt: old, expiresAt: old + 900_000 }));
        }
      }
      const keep = (id: string, over: Partial<NodeRecord>) => tx.createNode(newNode(id, old, { uuid: id, requestedAt: old, ...over }));
      await keep('registered', { profile: 'worker' });
      await keep('armed', { profile: 'worker', status: 'approved', autoApprove: true, decidedAt: old });
      await keep('approved', { profile: 'worker', status: 'approved', decidedAt: old, config: 'machine: {}\n' });
      await keep('approved-then-asked', { profile: 'worker', status: 'pending', decidedAt: old });
      await keep('denied', { status: 'denied', decidedAt: old });
      await keep('recent', { requestedAt: now - 23 * HOUR });
    });
    assert.equal((await ask(g, 'asking-now')).status, 200);

    // the event loop's longest pause while the pass runs
    let longest = 0;
    let last = performance.now();
    const probe = setInterval(() => {
      const t = performance.now();
      longest = Math.max(longest, t - last);
      last = t;
    }, 5);
    // and the batches themselves: each delete the storage is asked for is at most one batch
    const batches: number[] = [];
    const storage = g.gate.storage;
    const deleteAbandonedNodes = storage.deleteAbandonedNodes.bind(storage);
    storage.deleteAbandonedNodes = async (...args: Parameters<typeof deleteAbandonedNodes>) => {
      const n = await deleteAbandonedNodes(...args);
      batches.push(n);
      return n;
    };
    const started = performance.now();
    let counts: MaintenanceCounts;
    try {
      counts = await g.gate.maintenance.run();
    } finally {
      clearInterval(probe);
      storage.deleteAbandonedNodes = deleteAbandonedNodes;
    }
    const took = performance.now() - started;

    assert.equal(counts.nodes, junk + 1);
    assert.ok(batches.length >= junk / 500 && batches.every((n) => n <= 500), `deleted in batches of at most 500 (${batches.length} batches)`);
    // a generous bound (the batches above are the exact check): one delete of all 50,000 stalls for
    // seconds, a batch takes milliseconds, and a loaded CI machine adds pauses of its own
    assert.ok(longest < 1000, `the event loop paused ${Math.round(longest)} ms at most (pass took ${Math.round(took)} ms)`);
    const left = (await g.gate.storage.listNodes({}, { limit: 100 })).map((n) => n.id).sort();
    assert.deepEqual(left, ['approved', 'approved-then-asked', 'armed', 'asking-now', 'denied', 'recent', 'registered']);
    assert.equal((await s.listDeviceRequests({ status: 'pending' })).length, 1, "only the asking node's request is left");
    const audit = await g.admin('GET', '/api/v1/audit?limit=1000');
    assert.ok(
      audit.json.events.some((e: { type: string; subject: string }) => e.type === 'device_code_issued' && e.subject === 'booted-long-ago'),
      'audit events stay',
    );
    assert.equal((await g.admin('GET', '/api/v1/nodes/booted-long-ago')).status, 404);
    // a deleted node that boots again is simply a new pending node
    assert.equal((await ask(g, 'booted-long-ago')).status, 200);
    assert.equal((await g.admin('GET', '/api/v1/nodes/booted-long-ago')).json.status, 'pending');
  });

  test('a node asking again and again keeps only its newest finished requests', async () => {
    assert.equal((await ask(g, 'denied-loop')).status, 200);
    assert.equal((await g.admin('POST', '/api/v1/nodes/denied-loop/deny')).status, 200);
    // a denied node is refused at /device/code (400 access_denied), its request still recorded
    for (let i = 0; i < 30; i++) assert.equal((await ask(g, 'denied-loop')).status, 400);
    const rows = await g.gate.storage.listDeviceRequests({ nodeId: 'denied-loop' });
    assert.ok(rows.length <= 8, `${rows.length} request rows kept for one denied node`);
    assert.ok(rows.every((r) => r.status === 'denied'));

    // pending ones stay (each is a code on some console); a node shows its newest 10 and the count
    for (let i = 0; i < 12; i++) assert.equal((await ask(g, 'pending-loop')).status, 200);
    const shown = (await g.admin('GET', '/api/v1/nodes/pending-loop')).json;
    assert.equal(shown.pending_count, 12);
    assert.equal(shown.pending.length, 10);
  });
});
