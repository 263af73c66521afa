import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from '../../cli/http.js';
import pg from 'pg';
import { startInstances, type HaCluster, type HaInstance } from '../helpers/ha.js';
import { pollNodeToken } from '../helpers/node-poll.js';
import { testServerUrl, type TestDatabase } from '../helpers/postgres.js';

// Two gate instances, each its own process, on one PostgreSQL database: a node's polls reach them
// in turn, as behind a round-robin balancer where Talos opens a new connection per request. Its
// pace, its Basic-then-body twins and their answers are judged on the state in the database, so
// it makes no difference which instance a request reaches.

testServerUrl();

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

async function deviceCode(url: string, uuid: string): Promise<{ device_code: string; user_code: string; interval: number }> {
  const res = await request(`${url}/device/code`, { method: 'POST', headers: FORM, body: `client_id=talos-node&uuid=${uuid}` });
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body) as { device_code: string; user_code: string; interval: number };
}

/** One token request of the node, its OAuth error read out. */
async function poll(url: string, code: string, withBasic: boolean): Promise<{ status: number; error: string | undefined; body: string }> {
  const res = await pollNodeToken(url, code, { basic: withBasic });
  const json = JSON.parse(res.body) as { error?: string };
  return { status: res.status, error: json.error, body: res.body };
}

/** The poll bookkeeping of a request as it is in the database. */
async function pollRow(db: TestDatabase, userCode: string): Promise<{ last_poll_at: number; last_poll_basic: boolean; interval_ms: number }> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const r = await c.query('SELECT last_poll_at::float8 AS last_poll_at, last_poll_basic, interval_ms::float8 AS interval_ms FROM device_requests WHERE user_code = $1', [
      userCode.replace('-', ''),
    ]);
    return r.rows[0];
  } finally {
    await c.end();
  }
}

describe('polls across two instances on one PostgreSQL', () => {
  let db: TestDatabase;
  let fleet: HaCluster;
  before(async () => {
    // plain HTTP, as behind a balancer passing TCP through
    fleet = await startInstances(2, { configExtra: { tls: { mode: 'off' }, audit_log: 'off' } });
    db = fleet.database;
  });
  after(async () => {
    await fleet?.close();
  });

  test('polls alternating between A and B at the interval, each twin on the other instance: no slow_down, twins are twins', async () => {
    const [a, b] = fleet.instances as [HaInstance, HaInstance];
    const da = await deviceCode(a.url, 'ha-poll-0000-4000-8000-000000000001');
    assert.equal(da.interval, 1);
    const answers: string[] = [];
    for (let i = 0; i < 8; i++) {
      const [first, second] = i % 2 === 0 ? [a, b] : [b, a];
      const p = await poll(first.url, da.device_code, true);
      const twin = await poll(second.url, da.device_code, false);
      answers.push(`${p.status} ${p.error}`, `${twin.status} ${twin.error}`);
      if (i === 0) {
        // the twin on B changed only what a twin changes: the Basic poll's time on A stays the last poll
        const row = await pollRow(db, da.user_code);
        assert.equal(row.last_poll_basic, false, 'B saw A’s Basic poll and took the body request for its twin');
        assert.equal(row.interval_ms, 1000);
      }
      await sleep(da.interval * 1000);
    }
    assert.deepEqual(new Set(answers), new Set(['400 authorization_pending']), answers.join(', '));

    // approved through B, redeemed through A, the config fetched from B
    const approved = await fleet.admin(b, 'POST', '/api/v1/device/approve', { user_code: da.user_code, profile: 'worker' });
    assert.equal(approved.status, 200, JSON.stringify(approved.json));
    const granted = await poll(a.url, da.device_code, true);
    assert.equal(granted.status, 200, granted.body);
    const token = (JSON.parse(granted.body) as { access_token: string }).access_token;
    assert.equal((await poll(b.url, da.device_code, false)).error, 'invalid_grant', 'one code, one token: B knows A redeemed it');
    const config = await request(`${b.url}/config`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(config.status, 200, config.body);
  });

  test('a client polling twice per interval, once on each instance, gets slow_down: the pace is judged on shared state', async () => {
    const [a, b] = fleet.instances as [HaInstance, HaInstance];
    const da = await deviceCode(b.url, 'ha-poll-0000-4000-8000-000000000002');
    const answers: (string | undefined)[] = [];
    for (let i = 0; i < 6; i++) {
      // body-style polls (no twins), 500 ms apart, alternating: each instance alone would see one poll a second
      answers.push((await poll((i % 2 === 0 ? a : b).url, da.device_code, false)).error);
      await sleep(500);
    }
    assert.ok(answers.includes('slow_down'), answers.join(', '));
    const row = await pollRow(db, da.user_code);
    // 5 s more for each slow_down, whichever instance answered it
    assert.equal(row.interval_ms, 1000 + 5000 * answers.filter((x) => x === 'slow_down').length);
  });
});
