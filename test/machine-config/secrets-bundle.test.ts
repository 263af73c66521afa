import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { MachineConfigRenderer, RenderError } from '../../server/machine-config/render.js';

// The layout `talosctl gen secrets` writes (siderolabs/talos generate/secrets/bundle.go), values shortened.
const BUNDLE = {
  cluster: { id: 'cluster-id', secret: 'cluster-secret' },
  secrets: { bootstraptoken: 'abcdef.0123456789abcdef', secretboxencryptionsecret: 'secretbox-secret' },
  trustdinfo: { token: 'trustd.token' },
  certs: {
    etcd: { crt: 'ETCD-CRT', key: 'ETCD-KEY' },
    k8s: { crt: 'K8S-CRT', key: 'K8S-KEY' },
    k8saggregator: { crt: 'AGG-CRT', key: 'AGG-KEY' },
    k8sserviceaccount: { key: 'SA-KEY' },
    os: { crt: 'OS-CRT', key: 'OS-KEY' },
  },
};

function folder(bundle: unknown, mode = 0o600): string {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-bundle-'));
  const tpl = (type: string) => stringify({ version: 'v1alpha1', machine: { type, network: { hostname: '{{hostname}}' } }, cluster: { controlPlane: { endpoint: 'https://cp:6443' } } });
  writeFileSync(join(dir, 'cp.yaml'), tpl('controlplane'));
  writeFileSync(join(dir, 'worker.yaml'), tpl('worker'));
  writeFileSync(join(dir, 'override.yaml'), stringify({ cluster: { id: 'overridden-id' } }));
  writeFileSync(join(dir, 'secrets.yaml'), stringify(bundle));
  chmodSync(join(dir, 'secrets.yaml'), mode);
  return dir;
}

const values = { uuid: null, mac: null, serial: null, hostname: 'n1' };

test('a profile with secrets_bundle gets the bundle merged where Talos puts it; workers only what a worker holds; patches still override', () => {
  const dir = folder(BUNDLE);
  const r = new MachineConfigRenderer(dir, {
    cp: { template: 'cp.yaml', patches: [], secrets_bundle: 'secrets.yaml' },
    worker: { template: 'worker.yaml', patches: ['override.yaml'], secrets_bundle: 'secrets.yaml' },
  });
  r.check();
  const cp = parse(r.render('cp', values, []));
  assert.deepEqual(cp.machine.ca, { crt: 'OS-CRT', key: 'OS-KEY' });
  assert.equal(cp.machine.token, 'trustd.token');
  assert.equal(cp.machine.network.hostname, 'n1');
  assert.deepEqual(
    { id: cp.cluster.id, secret: cp.cluster.secret, token: cp.cluster.token, sb: cp.cluster.secretboxEncryptionSecret },
    { id: 'cluster-id', secret: 'cluster-secret', token: 'abcdef.0123456789abcdef', sb: 'secretbox-secret' },
  );
  assert.deepEqual(cp.cluster.ca, { crt: 'K8S-CRT', key: 'K8S-KEY' });
  assert.deepEqual(cp.cluster.aggregatorCA, { crt: 'AGG-CRT', key: 'AGG-KEY' });
  assert.deepEqual(cp.cluster.serviceAccount, { key: 'SA-KEY' });
  assert.deepEqual(cp.cluster.etcd.ca, { crt: 'ETCD-CRT', key: 'ETCD-KEY' });
  assert.equal(cp.cluster.controlPlane.endpoint, 'https://cp:6443', 'the template is kept');

  const w = r.render('worker', values, []);
  for (const key of ['OS-KEY', 'K8S-KEY', 'ETCD', 'AGG', 'SA-KEY', 'secretbox-secret']) assert.ok(!w.includes(key), `a worker never gets ${key}`);
  const wp = parse(w);
  assert.deepEqual(wp.machine.ca, { crt: 'OS-CRT', key: '' });
  assert.equal(wp.cluster.token, 'abcdef.0123456789abcdef');
  assert.equal(wp.cluster.id, 'overridden-id', 'a profile patch after the bundle wins');
});

test('a secrets bundle open to others, or missing a field, stops the start-up check, naming the file and field', () => {
  const open = folder(BUNDLE, 0o644);
  assert.throws(
    () => new MachineConfigRenderer(open, { cp: { template: 'cp.yaml', patches: [], secrets_bundle: 'secrets.yaml' } }).check(),
    (e: unknown) => e instanceof RenderError && /secrets\.yaml: the secrets bundle is readable or writable by others \(mode 0644\): chmod 600/.test(e.message),
  );
  const { trustdinfo: _t, ...partial } = BUNDLE;
  const missing = folder(partial);
  assert.throws(
    () => new MachineConfigRenderer(missing, { cp: { template: 'cp.yaml', patches: [], secrets_bundle: 'secrets.yaml' } }).check(),
    (e: unknown) => e instanceof RenderError && /secrets\.yaml at trustdinfo\.token: is required in a secrets bundle/.test(e.message),
  );
  assert.throws(
    () => new MachineConfigRenderer(folder(BUNDLE), { cp: { template: 'cp.yaml', patches: [], secrets_bundle: '../secrets.yaml' } }).check(),
    /must be inside the templates folder/,
  );
});
