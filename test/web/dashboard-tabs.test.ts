import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from '../../cli/http.js';
import { newNode } from '../../server/storage/storage.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';
import { seedAdminWebSession } from '../helpers/web-session.js';

// The dashboard's "Denied / revoked" tab reads two node lists and merges them
// (server/web/dashboard-tabs.ts): following its next-page links must reach every closed node once,
// newest first, with ties on createdAt broken by id as the cursor does, while nodes arrive.

const EACH = 130;

describe('the denied / revoked tab pages over both states', () => {
  let g: TestGate;
  const cookie = 'dashboard-tabs-test-session';
  before(async () => {
    g = await startTestGate();
    const s = g.gate.storage;
    const base = Date.now() - 1_000_000;
    await s.transaction(async (tx) => {
      for (let i = 0; i < EACH; i++) {
        // pairs share a createdAt: the merge must order them by id, as each list does
        const d = `closed-${String(i).padStart(3, '0')}-d`;
        const r = `closed-${String(i).padStart(3, '0')}-r`;
        await tx.createNode(newNode(d, base + i, { uuid: d, status: 'denied', decidedAt: base }));
        await tx.createNode(newNode(r, base + i - (i % 3 === 0 ? 0 : 1), { uuid: r, status: 'revoked', decidedAt: base }));
        await tx.createNode(newNode(`open-${i}`, base + i, { uuid: `closed-open-${i}`, status: 'approved', decidedAt: base }));
      }
    });
    await seedAdminWebSession(s, cookie);
  });
  after(() => g.close());

  const get = async (path: string) => {
    const res = await request(`${g.url}${path}`, { headers: { cookie: `tg_session=${cookie}` }, ca: g.ca });
    assert.equal(res.status, 200, res.body.slice(0, 300));
    return res.body;
  };

  test('next links reach every denied and revoked node once, in cursor order', async () => {
    const expected = (await g.gate.storage.listNodes({ decided: true }, { limit: 1000 })).filter((n) => n.status !== 'approved').map((n) => n.id);
    assert.equal(expected.length, 2 * EACH);
    const seen: string[] = [];
    let path: string | undefined = '/?tab=denied';
    let pages = 0;
    while (path) {
      const body = await get(path);
      seen.push(...[...body.matchAll(/href="\/nodes\/([^"]+)"/g)].map((m) => decodeURIComponent(m[1] as string)));
      const next = /rel="next" href="([^"]+)"/.exec(body)?.[1];
      path = next?.replace(/&amp;/g, '&');
      // a node closed meanwhile: newer than every page, so not on a later one
      await g.gate.storage.createNode(newNode(`late-${pages}`, Date.now(), { status: pages % 2 ? 'denied' : 'revoked' }));
      pages++;
    }
    assert.equal(pages, 3, '100 a page');
    assert.deepEqual(seen, expected);
  });

  test('the tab counts both states; approved nodes stay on their own tab', async () => {
    const body = await get('/?tab=denied&q=closed-12');
    assert.match(body, /data-tab="denied" aria-current="page">Denied \/ revoked <span class="count">263</);
    const found = [...body.matchAll(/href="\/nodes\/([^"]+)"/g)].map((m) => m[1]);
    assert.equal(found.length, 20, 'closed-120 to closed-129, denied and revoked');
    assert.doesNotMatch(body, /open-/);
  });
});
