// A line diff of two texts (a node's stored config and what its templates render now), in hunks
// with context like `diff -u`. Myers' O((N+M)·D) algorithm ("An O(ND) Difference Algorithm and Its
// Variations", Algorithmica 1986, section 2: the greedy forward search and its trace), after the
// common first and last lines are set aside. The work is bounded for any input: at most `maxEdits`
// edit steps (D) are searched, keeping one row of 2d+1 diagonals per step (O(D²) memory); past the
// bound the differing middle is given whole, removed then added, and the result says so.

export type DiffOp = 'same' | 'del' | 'add';

export interface DiffLine {
  op: DiffOp;
  text: string;
  /** 1-based line numbers in the old and the new text (a removed line has no new one, an added none old). */
  oldNo: number | null;
  newNo: number | null;
}

export interface DiffHunk {
  /** 1-based first lines and line counts in the old and the new text, as a `@@ -a,b +c,d @@` header says. */
  oldStart: number;
  oldCount: number;
  newStart: number;
  newCount: number;
  lines: DiffLine[];
}

export interface LineDiff {
  hunks: DiffHunk[];
  added: number;
  removed: number;
  /** The texts differed by more than maxEdits lines: the differing middle is shown whole, not minimal. */
  approximate: boolean;
}

/** Edit steps searched at most: 1,000 steps are about 4 MB of trace and, on a 1 MiB config, well under a second. */
export const DIFF_MAX_EDITS = 1000;
/** Unchanged lines kept around each change. */
export const DIFF_CONTEXT = 3;

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  // a final newline ends the last line; it does not start an empty one
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/**
 * The edit script turning a into b (each an array of line ids), by Myers' greedy search, or
 * undefined when it needs more than maxEdits insertions and deletions.
 */
function myers(a: Int32Array, b: Int32Array, maxEdits: number): DiffOp[] | undefined {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, maxEdits);
  const off = max + 1;
  // v[k + off]: the furthest x reached on diagonal k (y = x - k)
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && (v[off + k - 1] as number) < (v[off + k + 1] as number));
      let x = down ? (v[off + k + 1] as number) : (v[off + k - 1] as number) + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) {
        trace.push(v.slice(off - d, off + d + 1));
        return backtrack(trace, n, m);
      }
    }
    // the diagonals -d..d of this step, for the way back
    trace.push(v.slice(off - d, off + d + 1));
  }
  return undefined;
}

/** Walks the trace back from (n, m) to (0, 0): the edit script, in order. */
function backtrack(trace: Int32Array[], n: number, m: number): DiffOp[] {
  const ops: DiffOp[] = [];
  let x = n;
  let y = m;
  const at = (d: number, k: number) => trace[d]?.[k + d] as number;
  for (let d = trace.length - 1; d > 0; d--) {
    const k = x - y;
    const down = k === -d || (k !== d && at(d - 1, k - 1) < at(d - 1, k + 1));
    const prevK = down ? k + 1 : k - 1;
    const prevX = at(d - 1, prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push('same');
      x--;
      y--;
    }
    ops.push(down ? 'add' : 'del');
    x = prevX;
    y = prevY;
  }
  while (x > 0 && y > 0) {
    ops.push('same');
    x--;
    y--;
  }
  return ops.reverse();
}

/** Every line of both texts, each as a number: equal lines, equal numbers, so the search compares integers. */
function intern(a: string[], b: string[]): [Int32Array, Int32Array] {
  const ids = new Map<string, number>();
  const idOf = (line: string) => {
    let id = ids.get(line);
    if (id === undefined) {
      id = ids.size;
      ids.set(line, id);
    }
    return id;
  };
  return [Int32Array.from(a, idOf), Int32Array.from(b, idOf)];
}

/** The lines of the two texts in order, each kept, removed or added. */
export function diffLineOps(oldText: string, newText: string, maxEdits = DIFF_MAX_EDITS): { lines: DiffLine[]; approximate: boolean } {
  const a = splitLines(oldText);
  const b = splitLines(newText);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  const [ia, ib] = intern(midA, midB);
  const script = myers(ia, ib, maxEdits);
  const ops: DiffOp[] = [
    ...Array<DiffOp>(head).fill('same'),
    ...(script ?? [...Array<DiffOp>(midA.length).fill('del'), ...Array<DiffOp>(midB.length).fill('add')]),
    ...Array<DiffOp>(tail).fill('same'),
  ];
  const lines: DiffLine[] = [];
  let i = 0;
  let j = 0;
  for (const op of ops) {
    if (op === 'same') lines.push({ op, text: a[i] as string, oldNo: ++i, newNo: ++j });
    else if (op === 'del') lines.push({ op, text: a[i] as string, oldNo: ++i, newNo: null });
    else lines.push({ op, text: b[j] as string, oldNo: null, newNo: ++j });
  }
  return { lines, approximate: script === undefined };
}

/** The changes between two texts in hunks with `context` unchanged lines around each; no hunks when they are the same. */
export function diffLines(oldText: string, newText: string, opts: { maxEdits?: number; context?: number } = {}): LineDiff {
  const { lines, approximate } = diffLineOps(oldText, newText, opts.maxEdits ?? DIFF_MAX_EDITS);
  const context = opts.context ?? DIFF_CONTEXT;
  const hunks: DiffHunk[] = [];
  let added = 0;
  let removed = 0;
  let current: { from: number; to: number } | undefined;
  const ranges: { from: number; to: number }[] = [];
  lines.forEach((l, idx) => {
    if (l.op === 'same') return;
    if (l.op === 'add') added++;
    else removed++;
    const from = Math.max(0, idx - context);
    const to = Math.min(lines.length, idx + context + 1);
    // changes closer than twice the context share a hunk, as diff -u does
    if (current && from <= current.to) current.to = to;
    else {
      current = { from, to };
      ranges.push(current);
    }
  });
  // lines of each text before a hunk, counted once along the way (not again per hunk)
  let seen = 0;
  let oldBefore = 0;
  let newBefore = 0;
  for (const r of ranges) {
    for (; seen < r.from; seen++) {
      if (lines[seen]?.op !== 'add') oldBefore++;
      if (lines[seen]?.op !== 'del') newBefore++;
    }
    const slice = lines.slice(r.from, r.to);
    const oldCount = slice.filter((l) => l.op !== 'add').length;
    const newCount = slice.filter((l) => l.op !== 'del').length;
    // a side with no lines starts, as diff -u writes it, at the line before the hunk
    hunks.push({ oldStart: oldCount > 0 ? oldBefore + 1 : oldBefore, oldCount, newStart: newCount > 0 ? newBefore + 1 : newBefore, newCount, lines: slice });
  }
  return { hunks, added, removed, approximate };
}
