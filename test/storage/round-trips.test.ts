import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request } from '../../cli/http.js';
import { hashSecret } from '../../device/secrets.js';
import { PostgresStorage } from '../../server/storage/postgres/index.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';
import { testServerUrl } from '../helpers/postgres.js';

// The device flow's hot paths on PostgreSQL, at most two network round trips each (issue 17): every
// statement the storage sends is one round trip (PostgresStorage.roundTrips counts them, BEGIN and
// COMMIT included), measured here around real requests to a real gate on a real server.

testServerUrl();

const BUDGET = 2;
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

let g: TestGate;
let storage: PostgresStorage;
before(async () => {
  g = await startTestGate({}, { backend: 'postgres' });
  assert.ok(g.gate.storage instanceof PostgresStorage);
  storage = g.gate.storage;
});
after(() => g.close());

/** The round trips the storage made while fn ran (nothing else runs meanwhile in this file). */
async function trips<T>(fn: () => Promise<T>): Promise<{ n: number; value: T }> {
  const before = storage.roundTrips.count;
  const value = await fn();
  return { n: storage.roundTrips.count - before, value };
}

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  request(`${g.url}${path}`, { method: 'POST', headers: { ...FORM, ...headers }, body, ca: g.ca });
const pollBody = (code: string) => `grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=${encodeURIComponent(code)}&client_id=talos-node`;

test('POST /device/code, a poll, its twin, the grant and GET /config: each at most two round trips', async (t) => {
  const counts: Record<string, number> = {};
  const code = async (uuid: string, name: string) => {
    const r = await trips(() => post('/device/code', `client_id=talos-node&uuid=${uuid}&mac=52:54:00:12:34:56`));
    assert.equal(r.value.status, 200, r.value.body);
    counts[name] = r.n;
    return JSON.parse(r.value.body) as { device_code: string; user_code: string };
  };
  const da = await code('rt-0000-4000-8000-000000000001', 'device code, new node');
  const basic = `Basic ${Buffer.from('talos-node:').toString('base64')}`;
  const p = await trips(() => post('/token', pollBody(da.device_code), { authorization: basic }));
  assert.equal(JSON.parse(p.value.body).error, 'authorization_pending');
  counts['poll, pending'] = p.n;
  const twin = await trips(() => post('/token', pollBody(da.device_code)));
  assert.equal(JSON.parse(twin.value.body).error, 'authorization_pending');
  counts['poll, its twin'] = twin.n;

  const approval = await trips(() => g.admin('POST', '/api/v1/device/approve', { user_code: da.user_code, profile: 'worker' }));
  assert.equal(approval.value.status, 200, JSON.stringify(approval.value.json));
  // not a hot path of the device flow but a rack's admin approves hundreds at once: the request and
  // its node read together (two statements side by side), one statement writing both and the event,
  // and the answer's view of the node's other pending codes
  t.diagnostic(`admin approval: ${approval.n} statements`);
  assert.ok(approval.n <= 4, `admin approval: ${approval.n} statements (was 10 with its transaction)`);
  await new Promise((r) => setTimeout(r, 1100)); // the interval (1 s), so the grant is no early poll
  const grant = await trips(() => post('/token', pollBody(da.device_code)));
  assert.equal(grant.value.status, 200, grant.value.body);
  counts['poll, grant'] = grant.n;
  const token = (JSON.parse(grant.value.body) as { access_token: string }).access_token;
  const cfg = await trips(() => request(`${g.url}/config`, { headers: { authorization: `Bearer ${token}` }, ca: g.ca }));
  assert.equal(cfg.value.status, 200, cfg.value.body);
  counts['GET /config'] = cfg.n;
  const refused = await trips(() => request(`${g.url}/config`, { headers: { authorization: 'Bearer nope' }, ca: g.ca }));
  assert.equal(refused.value.status, 401);
  counts['GET /config, unknown token'] = refused.n;

  // a node asking again: it exists now, decided, and its earlier request is pruned
  await code('rt-0000-4000-8000-000000000001', 'device code, known node');

  t.diagnostic(`round trips: ${JSON.stringify(counts)}`);
  for (const [name, n] of Object.entries(counts)) assert.ok(n <= BUDGET, `${name}: ${n} round trips (budget ${BUDGET})`);
});

test('a burst of polls shares its statements: 100 polls asked for at once cost a handful of round trips, not 200', async (t) => {
  const codes: string[] = [];
  for (let i = 0; i < 100; i++) {
    const res = await post('/device/code', `client_id=talos-node&uuid=burst-${i}`);
    assert.equal(res.status, 200, res.body);
    codes.push((JSON.parse(res.body) as { device_code: string }).device_code);
  }
  // at the storage itself: over HTTP the requests of this one test process arrive one by one, as a
  // booting rack's do only under load
  const r = await trips(() =>
    Promise.all(codes.map((c, i) => storage.pollDeviceCode(hashSecret(c), (x) => ({ update: { lastPollAt: 1_000 + i, lastPollBasic: false }, result: x.status })))),
  );
  assert.deepEqual(new Set(r.value.map((x) => x?.result)), new Set(['pending']));
  t.diagnostic(`100 polls at once: ${r.n} round trips`);
  assert.ok(r.n <= 6, `100 polls in ${r.n} round trips`);
  for (const [i, c] of codes.entries()) assert.equal((await storage.getDeviceRequestByCodeHash(hashSecret(c)))?.lastPollAt, 1_000 + i);
});
