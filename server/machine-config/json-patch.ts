// RFC 6902 JSON Patch over plain YAML/JSON values; errors say which operation and path failed.

import { LimitError, MAX_JSON_PATCH_OPS, TOO_MANY_OPS } from './limits.js';
import { setOwn } from './strategic-merge.js';

export interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

export class JsonPatchError extends Error {}

/** How the caller bounds a patch's work: copies can double the document with each operation. */
export interface JsonPatchHooks {
  /**
   * Before `value` is placed `depth` levels deep (add, copy, move, replace) into `doc` (as it is
   * then: a replaced or moved value already removed); throws LimitError to refuse it.
   */
  onInsert?(value: unknown, depth: number, doc: unknown): void;
  /** Values visited by a `test` comparison; throws LimitError to stop. */
  onVisit?(n: number): void;
}

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

export function isJsonPatch(v: unknown): v is JsonPatchOp[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'object' && x !== null && 'op' in x);
}

/** Checks the shape of each operation; the message names the operation by its position. */
export function checkJsonPatch(ops: unknown[]): JsonPatchOp[] {
  if (ops.length > MAX_JSON_PATCH_OPS) throw new LimitError(TOO_MANY_OPS);
  return ops.map((raw, i) => {
    const op = raw as Partial<JsonPatchOp>;
    const where = `operation #${i + 1}`;
    if (typeof op.op !== 'string' || !OPS.has(op.op)) throw new JsonPatchError(`${where}: op must be one of ${[...OPS].join(', ')}`);
    if (typeof op.path !== 'string') throw new JsonPatchError(`${where}: path is required`);
    if ((op.op === 'move' || op.op === 'copy') && typeof op.from !== 'string') {
      throw new JsonPatchError(`${where}: from is required for ${op.op}`);
    }
    if ((op.op === 'add' || op.op === 'replace' || op.op === 'test') && !('value' in op)) {
      throw new JsonPatchError(`${where}: value is required for ${op.op}`);
    }
    return op as JsonPatchOp;
  });
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new JsonPatchError(`${pointer}: a JSON pointer starts with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

type Container = Record<string, unknown> | unknown[];

function isContainer(v: unknown): v is Container {
  return typeof v === 'object' && v !== null;
}

function arrayIndex(arr: unknown[], token: string, forAdd: boolean, pointer: string): number {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new JsonPatchError(`${pointer}: "${token}" is not an array index`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new JsonPatchError(`${pointer}: index ${i} is out of range`);
  return i;
}

function parentOf(doc: unknown, tokens: string[], pointer: string): Container {
  let node: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[arrayIndex(node, t, false, pointer)];
    else if (isContainer(node) && Object.hasOwn(node, t)) node = (node as Record<string, unknown>)[t];
    else throw new JsonPatchError(`${pointer}: path not found`);
  }
  if (!isContainer(node)) throw new JsonPatchError(`${pointer}: path not found`);
  return node;
}

function get(doc: unknown, pointer: string): unknown {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return doc;
  const parent = parentOf(doc, tokens, pointer);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) return parent[arrayIndex(parent, last, false, pointer)];
  if (!Object.hasOwn(parent, last)) throw new JsonPatchError(`${pointer}: path not found`);
  return parent[last];
}

function remove(doc: unknown, pointer: string): unknown {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) throw new JsonPatchError('cannot remove the whole document');
  const parent = parentOf(doc, tokens, pointer);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, last, false, pointer), 1)[0];
  if (!Object.hasOwn(parent, last)) throw new JsonPatchError(`${pointer}: path not found`);
  const old = parent[last];
  delete parent[last];
  return old;
}

/**
 * Adds value at pointer. A value moved from `movedFrom` levels deep is placed as it is (it is no
 * longer in the document) and only reported when it lands deeper; anything else is reported,
 * then copied (the report comes first: the copy is what would take the time and memory).
 */
function add(doc: unknown, pointer: string, value: unknown, hooks: JsonPatchHooks, movedFrom?: number): unknown {
  const tokens = parsePointer(pointer);
  if (movedFrom === undefined || tokens.length > movedFrom) hooks.onInsert?.(value, tokens.length, doc);
  const placed = movedFrom === undefined ? structuredClone(value) : value;
  if (tokens.length === 0) return placed;
  const parent = parentOf(doc, tokens, pointer);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true, pointer), 0, placed);
  else setOwn(parent, last, placed);
  return doc;
}

/**
 * RFC 6902 equality (member order does not matter), without recursion and stopping at the first
 * difference; reports the values it visits.
 */
function equal(a: unknown, b: unknown, onVisit: (n: number) => void): boolean {
  const stack: [unknown, unknown][] = [[a, b]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [x, y] = next;
    onVisit(1);
    if (Array.isArray(x) || Array.isArray(y)) {
      if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length) return false;
      x.forEach((v, i) => stack.push([v, y[i]]));
    } else if (isContainer(x) || isContainer(y)) {
      if (!isContainer(x) || !isContainer(y)) return false;
      const keys = Object.keys(y);
      const xKeys = Object.keys(x);
      onVisit(keys.length + xKeys.length);
      if (xKeys.length !== keys.length) return false;
      for (const k of keys) {
        if (!Object.hasOwn(x, k)) return false;
        stack.push([(x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k]]);
      }
    } else if (x !== y) {
      return false;
    }
  }
  return true;
}

/** Applies the operations to a copy of doc and returns it. */
export function applyJsonPatch(doc: unknown, ops: JsonPatchOp[], hooks: JsonPatchHooks = {}): unknown {
  let out = structuredClone(doc);
  ops.forEach((op, i) => {
    try {
      switch (op.op) {
        case 'add':
          out = add(out, op.path, op.value, hooks);
          break;
        case 'remove':
          remove(out, op.path);
          break;
        case 'replace':
          get(out, op.path);
          if (parsePointer(op.path).length === 0) out = add(out, '', op.value, hooks);
          else {
            remove(out, op.path);
            out = add(out, op.path, op.value, hooks);
          }
          break;
        case 'move': {
          const v = remove(out, op.from as string);
          out = add(out, op.path, v, hooks, parsePointer(op.from as string).length);
          break;
        }
        case 'copy':
          out = add(out, op.path, get(out, op.from as string), hooks);
          break;
        case 'test':
          if (!equal(get(out, op.path), op.value, hooks.onVisit ?? (() => {}))) {
            throw new JsonPatchError(`${op.path}: test failed`);
          }
          break;
      }
    } catch (e) {
      const where = `operation #${i + 1} (${op.op} ${op.path})`;
      if (e instanceof JsonPatchError) throw new JsonPatchError(`${where}: ${e.message}`);
      if (e instanceof LimitError) throw new LimitError(`${where}: ${e.message}`);
      throw e;
    }
  });
  return out;
}
