import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { MachineConfigRenderer, RenderError } from '../../server/machine-config/render.js';

// Finding 9 of the security review: admin input that crashed (500) or stalled the renderer. Each
// case must be a RenderError naming the patch and the limit, and must come back quickly.

const values = { uuid: 'u-1', mac: '52:54:00:00:00:01', serial: null, hostname: 'node-1' };

/**
 * A guard against stalls (an unbounded expansion runs for minutes or exhausts memory), not a
 * benchmark: the bounded cases take well under a second on an idle machine, but parsing 100,000
 * YAML values on a loaded 2-core CI machine (test files run two at a time) took up to 3 s.
 */
const QUICK_MS = 10_000;

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-limits-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const TEMPLATE = 'version: v1alpha1\nmachine:\n  type: worker\n  network:\n    hostname: "{{hostname}}"\ncluster:\n  clusterName: c\n';

function renderer(files: Record<string, string> = {}, patches: string[] = []): MachineConfigRenderer {
  const dir = folder({ 't.yaml': TEMPLATE, 'patches/a.yaml': 'machine:\n  install:\n    disk: /dev/vda\n', ...files });
  return new MachineConfigRenderer(dir, { w: { template: 't.yaml', patches } });
}

function docs(text: string): Record<string, any>[] { // any: tests read arbitrary config shapes
  return parseAllDocuments(text).map((d) => d.toJS());
}

/** The RenderError message of fn, which must also return within QUICK_MS. */
function refusal(fn: () => unknown): string {
  const started = Date.now();
  try {
    fn();
  } catch (e) {
    const took = Date.now() - started;
    assert.ok(e instanceof RenderError, `expected a RenderError, got ${String(e).slice(0, 200)}`);
    assert.ok(took < QUICK_MS, `refused only after ${took} ms`);
    return e.message;
  }
  return assert.fail('expected a RenderError');
}

/** A billion-laughs document: 9 aliases per level, 9^levels strings once expanded. */
function laughs(levels: number): string {
  let text = 'machine:\n  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  for (let i = 1; i <= levels; i++) text += `  l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(',')}]\n`;
  return text;
}

test('profile names that are Object.prototype properties are unknown profiles', () => {
  const r = renderer();
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
    assert.equal(r.hasProfile(name), false, name);
    assert.match(refusal(() => r.render(name, values, [])), new RegExp(`unknown profile "${name}"`));
  }
  assert.equal(r.hasProfile('w'), true);
});

test('__proto__ and constructor keys in templates and patches are plain keys: nothing polluted, nothing lost', () => {
  const r = renderer({ 't.yaml': `${TEMPLATE}  __proto__:\n    fromTemplate: "{{hostname}}"\n` });
  const out = r.render('w', values, [
    'machine:\n  __proto__:\n    fromYaml: 1\n  constructor: {a: 1}\n  toString: 2\n__proto__:\n  kind: Injected\n',
    [
      { op: 'add', path: '/machine/__proto__/fromJsonPatch', value: 2 },
      { op: 'add', path: '/machine/network/__proto__', value: { polluted: true } },
      { op: 'add', path: '/machine/constructor/b', value: 3 },
    ],
    { machine: { nested: JSON.parse('{"__proto__": {"fromObject": 4}}') } },
  ]);
  const [cfg, ...more] = docs(out);
  assert.equal(more.length, 0, 'a __proto__ key does not make the document look like another kind');
  const own = (o: object, k: string) => Object.getOwnPropertyDescriptor(o, k)?.value;
  assert.deepEqual({ ...own(cfg?.machine, '__proto__') }, { fromYaml: 1, fromJsonPatch: 2 }, 'strategic merge and JSON patch keep the key');
  assert.deepEqual({ ...own(cfg?.machine, 'constructor') }, { a: 1, b: 3 });
  assert.equal(own(cfg?.machine, 'toString'), 2);
  assert.deepEqual({ ...own(cfg?.machine.network, '__proto__') }, { polluted: true });
  assert.deepEqual({ ...own(cfg?.cluster, '__proto__') }, { fromTemplate: 'node-1' }, 'a template key, its placeholder filled');
  assert.deepEqual({ ...own(cfg?.machine.nested, '__proto__') }, { fromObject: 4 });
  assert.deepEqual({ ...own(cfg ?? {}, '__proto__') }, { kind: 'Injected' });
  const plain: Record<string, unknown> = {};
  for (const k of ['polluted', 'kind', 'fromYaml', 'fromJsonPatch', 'fromObject', 'b']) assert.equal(plain[k], undefined, `Object.prototype.${k}`);
});

test('a node patch naming a folder is refused as not a regular file', () => {
  const r = renderer();
  assert.match(refusal(() => r.render('w', values, ['@patches'])), /^node patch #1: patches is not a regular file \(it is a folder\)$/);
  assert.match(refusal(() => r.render('w', values, ['@.'])), /^node patch #1: \. is not a regular file/);
  assert.match(refusal(() => r.checkPatches(['@patches/a.yaml', '@patches'])), /^node patch #2: patches is not a regular file/);
  const folderTemplate = renderer({}, ['patches']);
  assert.match(refusal(() => folderTemplate.check()), /patches is not a regular file/, 'check() at start-up too');
});

test('billion-laughs YAML is refused by its alias count, in a patch and in a template at start-up', () => {
  const r = renderer();
  assert.match(refusal(() => r.render('w', values, [laughs(9)])), /^node patch #1: too many YAML alias expansions \(more than 100\)$/);
  const bad = renderer({ 'patches/laughs.yaml': laughs(9) }, ['patches/laughs.yaml']);
  assert.match(refusal(() => bad.check()), /laughs\.yaml: too many YAML alias expansions/);
});

test('deep nesting is refused before anything recurses: YAML flow, YAML block, and patch objects', () => {
  const r = renderer();
  const deepFlow = `machine:\n  x: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`;
  assert.match(refusal(() => r.render('w', values, [deepFlow])), /^node patch #1 at line 2: nested deeper than 64 levels$/);
  const deepMap = `machine:\n  x: ${'{a: '.repeat(10_000)}1${'}'.repeat(10_000)}\n`;
  assert.match(refusal(() => r.render('w', values, [deepMap])), /nested deeper than 64 levels/);
  const block = Array.from({ length: 100 }, (_, i) => `${' '.repeat(i)}k:`).join('\n');
  assert.match(refusal(() => r.render('w', values, [block])), /nested deeper than 64 levels/);
  let obj: unknown = 1;
  let arr: unknown = 1;
  for (let i = 0; i < 10_000; i++) {
    obj = { a: obj };
    arr = [arr];
  }
  assert.match(refusal(() => r.render('w', values, [{ machine: { x: obj } }])), /^node patch #1: nested deeper than 64 levels$/);
  assert.match(refusal(() => r.checkPatches([{ machine: { x: arr } }])), /^node patch #1: nested deeper than 64 levels$/);
  // a JSON patch that copies a deep part into its own deepest leaf doubles the depth each time
  let chain: unknown = 1;
  for (let i = 0; i < 40; i++) chain = [chain];
  const grow = [{ op: 'add', path: '/machine/deep', value: chain }, { op: 'copy', from: '/machine', path: `/machine/deep${'/0'.repeat(40)}` }];
  assert.match(refusal(() => r.render('w', values, [grow])), /^node patch #1: operation #2 \(copy .*\): nested deeper than 64 levels$/);
});

test('huge input is refused by its size before parsing; too many values or documents after', () => {
  const r = renderer({ 'patches/huge.yaml': `machine:\n  x: "${'x'.repeat(1024 * 1024)}"\n` });
  assert.match(refusal(() => r.render('w', values, [`machine:\n  x: "${'x'.repeat(1024 * 1024)}"\n`])), /^node patch #1: the YAML text is larger than 1 MiB$/);
  assert.match(refusal(() => r.render('w', values, ['@patches/huge.yaml'])), /huge\.yaml: the file is larger than 1 MiB$/);
  const many = Array.from({ length: 110_000 }, (_, i) => i);
  assert.match(refusal(() => r.render('w', values, [{ machine: { many } }])), /^node patch #1: the patch has more than 100,000 values$/);
  assert.match(refusal(() => r.render('w', values, [`machine:\n  many: [${many.join(',')}]\n`])), /^node patch #1: the YAML has more than 100,000 values$/);
  const documents = Array.from({ length: 300 }, (_, i) => `apiVersion: v1alpha1\nkind: K\nname: n${i}\n`).join('---\n');
  assert.match(refusal(() => r.render('w', values, [documents])), /^node patch #1: more than 256 documents$/);
  // each patch is small, together they are not
  const quarter = { machine: { files: [{ content: 'x'.repeat(300 * 1024) }] } };
  assert.match(refusal(() => r.render('w', values, [quarter, quarter, quarter, quarter])), /^node patch #4: the rendered config is larger than 1 MiB$/);
});

test('a JSON patch copying the document into itself stops at the size limit, not after building it', () => {
  const r = renderer();
  const ops: unknown[] = [{ op: 'add', path: '/big', value: {} }];
  for (let i = 0; i < 16; i++) ops.push({ op: 'copy', from: '', path: `/big/c${i}` });
  assert.match(refusal(() => r.render('w', values, [ops])), /^node patch #1: operation #\d+ \(copy \/big\/c\d+\): the rendered config (is larger than 1 MiB|has more than 100,000 values)$/);
  // strings are shared in memory but printed in full: a 60 KB string copied 16 times
  const strings: unknown[] = [{ op: 'add', path: '/s', value: ['x'.repeat(60_000)] }];
  for (let i = 0; i < 16; i++) strings.push({ op: 'copy', from: '/s', path: '/s/-' });
  assert.match(refusal(() => r.render('w', values, [strings])), /^node patch #1: operation #\d+ \(copy \/s\/-\): the rendered config is larger than 1 MiB$/);
  const tooMany = Array.from({ length: 1001 }, () => ({ op: 'add', path: '/machine/x', value: 1 }));
  assert.match(refusal(() => r.render('w', values, [tooMany])), /^node patch #1: more than 1000 JSON patch operations$/);
  assert.match(refusal(() => r.checkPatches([tooMany])), /^node patch #1: more than 1000 JSON patch operations$/);
});

test('a JSON patch replacing a big value with another is not refused for what it removed', () => {
  const r = renderer();
  const big = (c: string) => ({ machine: { files: [{ content: c.repeat(600 * 1024) }] } });
  const out = r.render('w', values, [big('a'), [{ op: 'replace', path: '/machine/files/0/content', value: 'b'.repeat(600 * 1024) }]]);
  assert.equal(docs(out)[0]?.machine.files[0].content.length, 600 * 1024);
});

test('a JSON patch moving a big value in and out of a deeper place stops at the work limit', () => {
  const r = renderer();
  const a = Array.from({ length: 60_000 }, (_, i) => i);
  const moves: unknown[] = [{ op: 'add', path: '/machine/b', value: {} }];
  for (let i = 0; i < 499; i++) {
    // each move deeper walks the value (it could nest too deep there); moving back costs nothing
    moves.push({ op: 'move', from: '/machine/a', path: '/machine/b/a' }, { op: 'move', from: '/machine/b/a', path: '/machine/a' });
  }
  assert.match(
    refusal(() => r.render('w', values, [{ machine: { a } }, moves])),
    /^node patch #2: operation #\d+ \(move \/machine\/b\/a\): applying the patches takes too much work \(more than 2,000,000 values visited\)$/,
  );
  // moving it about a little is fine, and so is moving it back and forth at the same depth
  assert.equal(docs(r.render('w', values, [{ machine: { a } }, moves.slice(0, 5)]))[0]?.machine.a.length, 60_000);
  const level = Array.from({ length: 1000 }, (_, i) => (i % 2 === 0 ? { op: 'move', from: '/machine/a', path: '/machine/c' } : { op: 'move', from: '/machine/c', path: '/machine/a' }));
  const started = Date.now();
  assert.equal(docs(r.render('w', values, [{ machine: { a } }, level]))[0]?.machine.a.length, 60_000);
  assert.ok(Date.now() - started < QUICK_MS);
});

test('thousands of interfaces merge by identity without comparing every pair', () => {
  const r = renderer();
  const interfaces = Array.from({ length: 8_000 }, (_, i) => ({ interface: `eth${i}`, mtu: 1500 }));
  const again = interfaces.map((x) => ({ ...x, mtu: 9000 }));
  const started = Date.now();
  const cfg = docs(r.render('w', values, [{ machine: { network: { interfaces } } }, { machine: { network: { interfaces: again } } }]))[0];
  assert.ok(Date.now() - started < QUICK_MS, `took ${Date.now() - started} ms`);
  assert.equal(cfg?.machine.network.interfaces.length, 8_000);
  assert.equal(cfg?.machine.network.interfaces[7_999].mtu, 9000);
});

test('identity merge still follows talosctl: first match, delete, re-add', () => {
  const r = renderer();
  const cfg = docs(
    r.render('w', values, [
      { machine: { network: { interfaces: [{ interface: 'a', n: 1 }, { interface: 'b' }, { interface: 'a', n: 2 }] } } },
      { machine: { network: { interfaces: [{ interface: 'a', $patch: 'delete' }, { interface: 'a', m: 1 }, { interface: 'c' }, { interface: 'c', x: 1 }] } } },
    ]),
  )[0];
  assert.deepEqual(cfg?.machine.network.interfaces, [{ interface: 'b' }, { interface: 'a', n: 2, m: 1 }, { interface: 'c', x: 1 }]);
});
