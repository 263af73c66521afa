import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { diffLineOps, diffLines } from '../../server/machine-config/line-diff.js';

const lines = (...l: string[]) => l.map((x) => `${x}\n`).join('');

/** What a script keeps and removes is the old text; what it keeps and adds is the new one. */
function sides(oldText: string, newText: string, maxEdits?: number) {
  const { lines: ops, approximate } = diffLineOps(oldText, newText, maxEdits);
  const old = ops.filter((l) => l.op !== 'add').map((l) => l.text);
  const now = ops.filter((l) => l.op !== 'del').map((l) => l.text);
  return { old, now, edits: ops.filter((l) => l.op !== 'same').length, approximate, ops };
}

/** GNU diff's count of changed lines, with --minimal: the shortest edit script, as Myers finds. */
function gnuEdits(dir: string, a: string, b: string): number {
  writeFileSync(join(dir, 'a'), a);
  writeFileSync(join(dir, 'b'), b);
  let out = '';
  try {
    out = execFileSync('diff', ['--minimal', join(dir, 'a'), join(dir, 'b')], { encoding: 'utf8' });
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? ''); // exit 1: the files differ
  }
  return out.split('\n').filter((l) => l.startsWith('< ') || l.startsWith('> ')).length;
}

test('the same text has no hunks', () => {
  const d = diffLines(lines('a', 'b', 'c'), lines('a', 'b', 'c'));
  assert.deepEqual(d, { hunks: [], added: 0, removed: 0, approximate: false });
  assert.deepEqual(diffLines('', ''), { hunks: [], added: 0, removed: 0, approximate: false });
});

test('one changed line: a hunk with three lines of context each side and diff -u line numbers', () => {
  const old = lines('1', '2', '3', '4', '5', '6', '7', '8', '9');
  const now = lines('1', '2', '3', '4', 'five', '6', '7', '8', '9');
  const d = diffLines(old, now);
  assert.equal(d.added, 1);
  assert.equal(d.removed, 1);
  assert.equal(d.hunks.length, 1);
  const h = d.hunks[0];
  assert.ok(h);
  assert.deepEqual([h.oldStart, h.oldCount, h.newStart, h.newCount], [2, 7, 2, 7]);
  assert.deepEqual(
    h.lines.map((l) => `${l.op === 'same' ? ' ' : l.op === 'del' ? '-' : '+'}${l.text}`),
    [' 2', ' 3', ' 4', '-5', '+five', ' 6', ' 7', ' 8'],
  );
  assert.deepEqual(h.lines.find((l) => l.op === 'add'), { op: 'add', text: 'five', oldNo: null, newNo: 5 });
});

test('changes closer than twice the context share a hunk; farther ones do not', () => {
  const base = Array.from({ length: 30 }, (_, i) => `l${i}`);
  const near = base.map((l, i) => (i === 5 || i === 11 ? `${l}!` : l));
  assert.equal(diffLines(lines(...base), lines(...near)).hunks.length, 1);
  const far = base.map((l, i) => (i === 5 || i === 20 ? `${l}!` : l));
  const d = diffLines(lines(...base), lines(...far));
  assert.equal(d.hunks.length, 2);
  assert.deepEqual(d.hunks.map((h) => [h.oldStart, h.oldCount]), [[3, 7], [18, 7]]);
});

test('added to an empty text, and all removed: diff -u starts', () => {
  const added = diffLines('', lines('a', 'b'));
  assert.deepEqual(added.hunks.map((h) => [h.oldStart, h.oldCount, h.newStart, h.newCount]), [[0, 0, 1, 2]]);
  const removed = diffLines(lines('a', 'b'), '');
  assert.deepEqual(removed.hunks.map((h) => [h.oldStart, h.oldCount, h.newStart, h.newCount]), [[1, 2, 0, 0]]);
});

test('a final newline ends the last line; a missing one is not a change of every line', () => {
  assert.equal(diffLines('a\nb\n', 'a\nb').hunks.length, 0);
  assert.equal(diffLines('a\nb\n', 'a\nb\n\n').added, 1, 'an extra empty line is one');
});

test('random texts: the script rebuilds both sides and is as short as GNU diff --minimal', () => {
  const dir = mkdtempSync(join(tmpdir(), 'line-diff-'));
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 60; round++) {
    const alphabet = 2 + rand(6);
    const a = Array.from({ length: rand(40) }, () => `x${rand(alphabet)}`);
    const b = a.flatMap((l) => (rand(4) === 0 ? [] : rand(5) === 0 ? [l, `x${rand(alphabet)}`] : [rand(6) === 0 ? `x${rand(alphabet)}` : l]));
    const old = lines(...a);
    const now = lines(...b);
    const s = sides(old, now);
    assert.deepEqual(s.old, a, `round ${round}: old side`);
    assert.deepEqual(s.now, b, `round ${round}: new side`);
    assert.equal(s.approximate, false);
    assert.equal(s.edits, gnuEdits(dir, old, now), `round ${round}: minimal`);
  }
});

test('past the bound the middle is given whole, still correct, and the common ends are kept', () => {
  const a = ['head', ...Array.from({ length: 5000 }, (_, i) => `a${i}`), 'tail'];
  const b = ['head', ...Array.from({ length: 5000 }, (_, i) => `b${i}`), 'tail'];
  const s = sides(lines(...a), lines(...b), 100);
  assert.equal(s.approximate, true);
  assert.deepEqual(s.old, a);
  assert.deepEqual(s.now, b);
  assert.equal(s.ops[0]?.op, 'same');
  assert.equal(s.ops[s.ops.length - 1]?.op, 'same');
  const d = diffLines(lines(...a), lines(...b), { maxEdits: 100 });
  assert.deepEqual([d.added, d.removed, d.approximate, d.hunks.length], [5000, 5000, true, 1]);
  // within the bound, the same texts are diffed exactly
  assert.equal(sides(lines(...a), lines(...b), 10_000).approximate, false);
});

test('a huge config with a few changes is exact: only the differing middle is searched', () => {
  const a = Array.from({ length: 60_000 }, (_, i) => `  key${i}: value${i}`);
  const b = a.map((l, i) => (i % 20_000 === 7 ? `${l} # changed` : l));
  const d = diffLines(lines(...a), lines(...b));
  assert.deepEqual([d.added, d.removed, d.approximate, d.hunks.length], [3, 3, false, 3]);
});
