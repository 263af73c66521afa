import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { applyJsonPatch, checkJsonPatch } from '../../server/machine-config/json-patch.js';
import { MachineConfigRenderer, RenderError } from '../../server/machine-config/render.js';
import { mergeMaps } from '../../server/machine-config/strategic-merge.js';
import { bundledTemplatesDir } from '../../server/paths.js';

const values = { uuid: 'u-1', mac: '52:54:00:00:00:01', serial: null, hostname: 'node-1' };

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-tpl-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

function docs(text: string): Record<string, any>[] { // any: tests read arbitrary config shapes
  return parseAllDocuments(text).map((d) => d.toJS());
}

test('strategic merge follows talosctl rules', () => {
  const base = {
    machine: {
      certSANs: ['a'],
      network: {
        interfaces: [
          { interface: 'eth0', dhcp: true, vlans: [{ vlanId: 10, mtu: 1500 }] },
          { deviceSelector: { hardwareAddr: '52:54:*' }, dhcp: true },
        ],
      },
    },
    cluster: { network: { podSubnets: ['10.244.0.0/16'], serviceSubnets: ['10.96.0.0/12'] } },
  };
  const out = mergeMaps(base, {
    machine: {
      certSANs: ['b'],
      network: {
        interfaces: [
          { interface: 'eth0', dhcp: false, addresses: ['192.0.2.1/24'], vlans: [{ vlanId: 10, mtu: 9000 }, { vlanId: 20 }] },
          { deviceSelector: { hardwareAddr: '52:54:*' }, $patch: 'delete' },
          { interface: 'eth1', dhcp: true },
        ],
      },
    },
    cluster: { network: { podSubnets: ['10.32.0.0/12'] } },
  }) as any; // any: deep shape asserted below
  assert.deepEqual(out.machine.certSANs, ['a', 'b'], 'lists append');
  assert.deepEqual(out.machine.network.interfaces, [
    { interface: 'eth0', dhcp: false, addresses: ['192.0.2.1/24'], vlans: [{ vlanId: 10, mtu: 9000 }, { vlanId: 20 }] },
    { interface: 'eth1', dhcp: true },
  ]);
  assert.deepEqual(out.cluster.network.podSubnets, ['10.32.0.0/12'], 'podSubnets replaced');
  assert.deepEqual(out.cluster.network.serviceSubnets, ['10.96.0.0/12']);
  assert.deepEqual(base.machine.certSANs, ['a'], 'inputs are not changed');
  const deleted = mergeMaps(base, { machine: { network: { $patch: 'delete' } } }) as any; // any: as above
  assert.equal(deleted.machine.network, undefined);
});

test('RFC 6902 operations and their errors', () => {
  const doc = { a: { b: [1, 2] }, 'x/y': 1 };
  const ops = checkJsonPatch([
    { op: 'add', path: '/a/b/-', value: 3 },
    { op: 'replace', path: '/a/b/0', value: 0 },
    { op: 'copy', from: '/a/b', path: '/c' },
    { op: 'move', from: '/x~1y', path: '/z' },
    { op: 'remove', path: '/a/b/1' },
    { op: 'test', path: '/z', value: 1 },
  ]);
  assert.deepEqual(applyJsonPatch(doc, ops), { a: { b: [0, 3] }, c: [0, 2, 3], z: 1 });
  assert.throws(() => applyJsonPatch(doc, checkJsonPatch([{ op: 'remove', path: '/nope' }])), /operation #1 \(remove \/nope\): \/nope: path not found/);
  assert.throws(() => checkJsonPatch([{ op: 'frobnicate', path: '/' }]), /operation #1: op must be one of/);
  assert.throws(() => applyJsonPatch(doc, checkJsonPatch([{ op: 'test', path: '/x~1y', value: 2 }])), /test failed/);
});

test('the sample profiles render for a node, placeholders filled', () => {
  const r = new MachineConfigRenderer(bundledTemplatesDir, {
    worker: { template: 'worker.yaml', patches: ['patches/common.yaml'] },
  });
  r.check();
  const [cfg] = docs(r.render('worker', values, ['@patches/static-ip-eth0.yaml']));
  assert.equal(cfg?.machine.network.hostname, 'node-1');
  assert.equal(cfg?.machine.nodeLabels['talos-gate.io/profile'], 'worker');
  assert.deepEqual(cfg?.machine.network.interfaces[0].addresses, ['192.0.2.10/24']);
});

test('multi-document configs: patches match documents by apiVersion/kind/name', () => {
  const dir = folder({
    't.yaml': 'version: v1alpha1\nmachine:\n  type: worker\n---\napiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: nut\nenvironment: [A=1]\n',
    'p.yaml':
      'apiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: nut\nenvironment: [B=2]\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: "{{hostname}}"\n---\nmachine:\n  install:\n    disk: /dev/vda\n',
  });
  const r = new MachineConfigRenderer(dir, { p: { template: 't.yaml', patches: ['p.yaml'] } });
  const out = docs(r.render('p', values, []));
  assert.equal(out.length, 3);
  assert.deepEqual(out[0]?.machine, { type: 'worker', install: { disk: '/dev/vda' } });
  assert.deepEqual(out[1]?.environment, ['A=1', 'B=2']);
  assert.equal(out[2]?.kind, 'HostnameConfig');
  assert.equal(out[2]?.hostname, '{{hostname}}', 'patches are not templates: only the template has placeholders');
});

test('values never inject YAML structure', () => {
  const dir = folder({ 't.yaml': 'version: v1alpha1\nmachine:\n  network:\n    hostname: "{{hostname}}"\n' });
  const r = new MachineConfigRenderer(dir, { p: { template: 't.yaml', patches: [] } });
  const evil = 'x\nmachine:\n  type: controlplane\n"{{uuid}}": 1';
  const [cfg] = docs(r.render('p', { ...values, hostname: evil }, []));
  assert.equal(cfg?.machine.network.hostname, evil);
  assert.equal(cfg?.machine.type, undefined);
});

test('broken templates and patches are refused with file and place', () => {
  const dir = folder({
    'bad.yaml': 'machine: [\n',
    'serial.yaml': 'version: v1alpha1\nmachine:\n  nodeLabels:\n    serial: "{{serial}}"\n',
    'unknown.yaml': 'version: v1alpha1\nmachine:\n  x: "{{rack}}"\n',
    'ok.yaml': 'version: v1alpha1\nmachine: {}\n',
    'badpatch.yaml': '- op: replace\n  path: /cluster/nope\n  value: 1\n',
  });
  const r = new MachineConfigRenderer(dir, {
    bad: { template: 'bad.yaml', patches: [] },
    serial: { template: 'serial.yaml', patches: [] },
    unknown: { template: 'unknown.yaml', patches: [] },
    ok: { template: 'ok.yaml', patches: ['badpatch.yaml'] },
    plain: { template: 'ok.yaml', patches: [] },
    missing: { template: 'missing.yaml', patches: [] },
  });
  const err = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof RenderError, String(e));
      return e.message;
    }
    return assert.fail('expected a RenderError');
  };
  assert.match(err(() => r.render('bad', values, [])), /bad\.yaml at line \d+: not valid YAML/);
  assert.match(err(() => r.render('serial', values, [])), /serial\.yaml at \/machine\/nodeLabels\/serial: \{\{serial\}\} is not known for this node/);
  assert.match(err(() => r.render('unknown', values, [])), /unknown\.yaml at \/machine\/x: unknown placeholder \{\{rack\}\}/);
  assert.match(err(() => r.render('ok', values, [])), /badpatch\.yaml: operation #1 \(replace \/cluster\/nope\): \/cluster\/nope: path not found/);
  assert.match(err(() => r.render('plain', values, ['machine: ['])), /node patch #1 at line \d+: not valid YAML/);
  assert.match(err(() => r.render('plain', values, ['@../../etc/passwd'])), /node patch #1: file must be inside the templates folder/);
  assert.match(err(() => r.check()), /bad\.yaml at line \d+: not valid YAML|missing\.yaml: file not found/);
});

test('templates are re-read when edited, even to the same size, and one render never leaks into the next', () => {
  const dir = folder({
    'base.yaml': 'version: v1alpha1\nmachine:\n  network:\n    hostname: "{{hostname}}"\n  certSANs: [a]\n',
    'p.yaml': 'machine:\n  certSANs: [b]\n',
  });
  const r = new MachineConfigRenderer(dir, { w: { template: 'base.yaml', patches: ['p.yaml'] } });
  const first = docs(r.render('w', values, [{ machine: { certSANs: ['node-own'] } }]))[0];
  assert.deepEqual(first?.machine.certSANs, ['a', 'b', 'node-own']);
  const second = docs(r.render('w', { ...values, hostname: 'node-2' }, []))[0];
  assert.deepEqual(second?.machine.certSANs, ['a', 'b'], "the first node's patch is not in the second's config");
  assert.equal(second?.machine.network.hostname, 'node-2');
  writeFileSync(join(dir, 'p.yaml'), 'machine:\n  certSANs: [c]\n'); // same size
  assert.deepEqual(docs(r.render('w', values, []))[0]?.machine.certSANs, ['a', 'c']);
});
