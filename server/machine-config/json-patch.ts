// RFC 6902 JSON Patch over plain YAML/JSON values; errors say which operation and path failed.

import { setOwn } from './strategic-merge.js';

export interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

export class JsonPatchError extends Error {}

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

export function isJsonPatch(v: unknown): v is JsonPatchOp[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'object' && x !== null && 'op' in x);
}

/** Checks the shape of each operation; the message names the operation by its position. */
export function checkJsonPatch(ops: unknown[]): JsonPatchOp[] {
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

function add(doc: unknown, pointer: string, value: unknown): unknown {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return structuredClone(value);
  const parent = parentOf(doc, tokens, pointer);
  const last = tokens[tokens.length - 1] as string;
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true, pointer), 0, structuredClone(value));
  else setOwn(parent, last, structuredClone(value));
  return doc;
}

/** Applies the operations to a copy of doc and returns it. */
export function applyJsonPatch(doc: unknown, ops: JsonPatchOp[]): unknown {
  let out = structuredClone(doc);
  ops.forEach((op, i) => {
    try {
      switch (op.op) {
        case 'add':
          out = add(out, op.path, op.value);
          break;
        case 'remove':
          remove(out, op.path);
          break;
        case 'replace':
          get(out, op.path);
          if (parsePointer(op.path).length === 0) out = structuredClone(op.value);
          else {
            remove(out, op.path);
            out = add(out, op.path, op.value);
          }
          break;
        case 'move': {
          const v = remove(out, op.from as string);
          out = add(out, op.path, v);
          break;
        }
        case 'copy':
          out = add(out, op.path, get(out, op.from as string));
          break;
        case 'test':
          if (JSON.stringify(get(out, op.path)) !== JSON.stringify(op.value)) {
            throw new JsonPatchError(`${op.path}: test failed`);
          }
          break;
      }
    } catch (e) {
      if (e instanceof JsonPatchError) throw new JsonPatchError(`operation #${i + 1} (${op.op} ${op.path}): ${e.message}`);
      throw e;
    }
  });
  return out;
}
