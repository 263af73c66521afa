import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from '../../cli/http.js';
import { packageRoot } from '../../server/paths.js';
import { BACKENDS, startTestGate, type TestGate } from '../helpers/gate.js';

// Issue 13: a config is rendered once, at approval; POST /api/v1/nodes/{id}/rerender stores what the
// templates render now (the node page's Re-render), and the audit trail filters find it.

for (const backend of BACKENDS) describe(`re-render and audit filters through the admin API (${backend})`, () => {
  let g: TestGate;
  let templates: string;
  before(async () => {
    templates = join(mkdtempSync(join(tmpdir(), 'rerender-tpl-')), 'templates');
    cpSync(join(packageRoot, 'templates'), templates, { recursive: true });
    g = await startTestGate({ templates_dir: templates }, { backend });
  });
  after(() => g?.close());

  const ask = async (uuid: string, mac: string) => {
    const body = new URLSearchParams({ client_id: 'talos-node', uuid, mac }).toString();
    const res = await request(`${g.url}/device/code`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body, ca: g.ca });
    return (JSON.parse(res.body) as { user_code: string }).user_code;
  };

  test('only an approved node is re-rendered; the new config is stored and the event audited with changed', async () => {
    const id = 'rerender-api-0001';
    await ask(id, '52:54:00:bb:00:01');
    const pending = await g.admin('POST', `/api/v1/nodes/${id}/rerender`);
    assert.equal(pending.status, 409);
    assert.match(pending.json.error_description, /only an approved node/);
    assert.equal((await g.admin('POST', '/api/v1/nodes/no-such-node/rerender')).status, 404);

    assert.equal((await g.admin('POST', `/api/v1/nodes/${id}/approve`, { profile: 'worker', hostname: 'w-rerender' })).status, 200);
    const stored = (await g.admin('GET', `/api/v1/nodes/${id}/config`)).json as string;
    const same = await g.admin('POST', `/api/v1/nodes/${id}/rerender`);
    assert.equal(same.status, 200);
    assert.equal(same.json.changed, false);
    assert.equal(same.json.status, 'approved');

    const worker = join(templates, 'worker.yaml');
    const text = readFileSync(worker, 'utf8');
    writeFileSync(worker, text.replace('disk: /dev/sda', 'disk: /dev/vdb'));
    assert.equal((await g.admin('GET', `/api/v1/nodes/${id}/config`)).json, stored, 'nothing changes until re-rendered');
    const changed = await g.admin('POST', `/api/v1/nodes/${id}/rerender`);
    assert.equal(changed.json.changed, true);
    const now = (await g.admin('GET', `/api/v1/nodes/${id}/config`)).json as string;
    assert.match(now, /disk: \/dev\/vdb/);
    assert.match(now, /hostname: w-rerender/, 'the stored hostname is kept');

    // a template that no longer renders is a client-visible refusal, and the stored config stays
    writeFileSync(worker, text.replace('disk: /dev/sda', 'disk: "{{no_such_placeholder}}"'));
    const broken = await g.admin('POST', `/api/v1/nodes/${id}/rerender`);
    assert.ok(broken.status >= 400 && broken.status < 500, String(broken.status));
    assert.equal((await g.admin('GET', `/api/v1/nodes/${id}/config`)).json, now);
    writeFileSync(worker, text);

    const events = (await g.admin('GET', `/api/v1/audit?type=node_rerendered&subject=${id}`)).json.events as { actor: string; detail: { changed: boolean; hostname: string } }[];
    assert.deepEqual(events.map((e) => [e.actor, e.detail.changed, e.detail.hostname]), [['admin-token', true, 'w-rerender'], ['admin-token', false, 'w-rerender']]);
    assert.deepEqual((await g.admin('GET', `/api/v1/audit?actor=nobody&subject=${id}`)).json.events, []);
    assert.equal((await g.admin('GET', '/api/v1/audit?color=blue')).status, 400, 'unknown filters are refused');
  });
});
