import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { GateReports, SUBJECT_WINDOW } from '../../server/reports.js';
import { openSqliteStorage } from '../../server/storage/sqlite/index.js';
import { sharedTestBox } from '../helpers/sealing.js';

// A subject filter reads no index (sqlite migration 014): it looks through a window of the trail
// below the page's start, and says where to go on when the window held too few.

const dir = mkdtempSync(join(tmpdir(), 'tg-audit-window-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test("a subject's events older than the window are reached by the next page, and the walk ends when nothing is older", async () => {
  const s = openSqliteStorage(join(dir, 'gate.db'), { cipher: sharedTestBox });
  const total = SUBJECT_WINDOW + 10_000;
  await s.transaction(async (tx) => {
    for (let i = 1; i <= total; i++) {
      // node-a asked long ago (ids 1–5) and once lately; everything else is other nodes
      const subject = i <= 5 || i === total - 3 ? 'node-a' : `node-${i % 900}`;
      await tx.addAuditEvent({ at: i, type: 'device_code_issued', actor: null, subject, ip: null, detail: { i } });
    }
  });
  const reports = new GateReports(s, () => total);
  const first = await reports.auditPage({ limit: 50 }, { subject: 'node-a' });
  assert.deepEqual(first.events.map((e) => e.detail.i), [total - 3]);
  // the window (the newest SUBJECT_WINDOW events) is read through; older ones may match
  assert.equal(first.nextBefore, total + 1 - SUBJECT_WINDOW);
  assert.equal(first.searchedTo, total + 1 - SUBJECT_WINDOW);
  const second = await reports.auditPage({ limit: 50, before: first.nextBefore as number }, { subject: 'node-a' });
  assert.deepEqual(second.events.map((e) => e.detail.i), [5, 4, 3, 2, 1]);
  assert.equal(second.nextBefore, null);
  // a full page says where the next starts, as without a subject
  const paged = await reports.auditPage({ limit: 2, before: 6 }, { subject: 'node-a' });
  assert.deepEqual(paged.events.map((e) => e.detail.i), [5, 4]);
  assert.equal(paged.nextBefore, 4);
  // other filters read their index: the whole trail, no window
  assert.equal((await reports.auditPage({ limit: 10 }, { type: 'device_code_issued' })).events.length, 10);
  await s.close();
});
