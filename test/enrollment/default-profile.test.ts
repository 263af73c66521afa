import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { ConfigError, loadConfig } from '../../server/config/load.js';
import { bulkForm } from '../../server/web/views/bulk.js';
import { confirmNode } from '../../server/web/views/device.js';
import { newNode } from '../../server/storage/storage.js';
import { bootNode } from '../helpers/boot-node.js';
import { startTestGate, type TestGate } from '../helpers/gate.js';

// Issue 13: "The profile select defaults to controlplane, so pressing Approve as README says makes a
// control plane." No profile is the default unless the config marks one `default: true`.

const profiles = (workerDefault: boolean) => ({
  controlplane: { template: 'controlplane.yaml', patches: ['patches/common.yaml'] },
  worker: { template: 'worker.yaml', patches: ['patches/common.yaml'], default: workerDefault },
});

describe('default profile', () => {
  test('two profiles marked default: a config error naming the key and the file', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'talos-gate-default-')), 'gate.yaml');
    writeFileSync(file, 'profiles:\n  controlplane: {template: controlplane.yaml, default: true}\n  worker: {template: worker.yaml, default: true}\n');
    let err: unknown;
    try {
      loadConfig(file, {});
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.message, new RegExp(`${file.replace(/[.]/g, '\\.')}`));
    assert.match(err.message, /profiles\.worker\.default/);
    assert.match(err.message, /only one profile may be the default/);
  });

  test('without a default, the confirm page preselects no profile; with one, that one', () => {
    const view = (defaultProfile: string | undefined) =>
      confirmNode({
        request: { id: 1, userCode: 'BCDFGHJK', variables: {}, sourceIp: '192.0.2.1', createdAt: 0, expiresAt: 1 } as never, // never: only these fields are read
        node: newNode('n1', 0),
        profiles: ['controlplane', 'worker'],
        defaultProfile,
        defaultHostname: 'talos-n1',
        csrfToken: 't',
        ticket: 't',
        now: 0,
      }).toString();
    const none = view(undefined);
    assert.match(none, /<option value="" selected disabled>Choose a profile<\/option>/);
    assert.doesNotMatch(none, /value="controlplane" selected/);
    const withDefault = view('worker');
    assert.match(withDefault, /value="worker" selected/);
    assert.doesNotMatch(withDefault, /Choose a profile/);
  });

  test('the bulk approval of the dashboard: the same, one profile for every ticked machine', () => {
    const view = (defaultProfile: string | undefined) => bulkForm({ approve: true, profiles: ['controlplane', 'worker'], defaultProfile, csrfToken: 't' }).toString();
    const none = view(undefined);
    assert.match(none, /<select id="bulk-profile" name="profile" required><option value="" selected disabled>Choose a profile<\/option>/);
    assert.doesNotMatch(none, /value="(controlplane|worker)" selected/);
    const withDefault = view('worker');
    assert.match(withDefault, /value="worker" selected/);
    assert.doesNotMatch(withDefault, /Choose a profile/);
  });

  describe('the admin API', () => {
    let plain: TestGate;
    let withDefault: TestGate;
    before(async () => {
      plain = await startTestGate({ profiles: profiles(false) });
      withDefault = await startTestGate({ profiles: profiles(true) });
    });
    after(async () => {
      await plain.close();
      await withDefault.close();
    });

    test('no default: an approval without a profile is a 400 naming the field', async () => {
      const n = bootNode(plain, { uuid: 'df000000-0000-4000-8000-000000000001' });
      const { user_code } = await n.da;
      const r = await plain.admin('POST', '/api/v1/device/approve', { user_code });
      assert.equal(r.status, 400);
      assert.equal(r.json.error, 'invalid_request');
      assert.match(r.json.error_description, /profile is required/);
      assert.equal((await plain.admin('POST', '/api/v1/device/deny', { user_code })).status, 200);
    });

    test('a default: an approval without a profile gets it', async () => {
      const n = bootNode(withDefault, { uuid: 'df000000-0000-4000-8000-000000000002' });
      const { user_code } = await n.da;
      const r = await withDefault.admin('POST', '/api/v1/device/approve', { user_code });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.profile, 'worker');
      assert.equal(parse((await n.result).config).machine.type, 'worker');
    });
  });
});
