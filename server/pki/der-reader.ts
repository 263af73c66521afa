// A strict DER (X.690 §10) reader for what clients send: public keys and CSRs. Strict because
// lenient readers disagree: OpenSSL ignores bytes after a key, node-forge folds a BIT STRING that
// looks like DER into children, and Go's crypto/x509 (what every Talos node runs) reads the same
// bytes a third way. Whatever is accepted here is exactly one tree, so every reader sees one thing:
//   - one element covers the whole input: no trailing bytes at any level;
//   - definite lengths in their shortest form (X.690 §10.1), never the indefinite 0x80;
//   - low tag numbers only (below 31), as every type in a key or a CSR is;
//   - constructed elements hold nothing but whole elements, to a bounded depth.

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

export interface DerElement {
  /** The identifier octet: class, constructed bit and tag number. */
  tag: number;
  /** The contents octets (a view into the input). */
  contents: Buffer;
  /** The whole element, identifier and length included (a view into the input). */
  raw: Buffer;
}

/** Nesting deeper than any key or CSR has; bounds the work on hostile input. */
const MAX_DEPTH = 16;

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  SEQUENCE: 0x30,
  SET: 0x31,
  CONTEXT_0_CONSTRUCTED: 0xa0,
} as const;

export const isConstructed = (tag: number): boolean => (tag & 0x20) !== 0;

/** Reads the element at `at`; returns it and where the next one starts. */
function readAt(buf: Buffer, at: number): { element: DerElement; next: number } {
  if (at + 2 > buf.length) throw new DerError('truncated element');
  const tag = buf[at] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used here');
  const first = buf[at + 1] as number;
  let length: number;
  let start = at + 2;
  if (first < 0x80) {
    length = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new DerError('indefinite length is not DER');
    if (n > 4) throw new DerError('length too large');
    if (start + n > buf.length) throw new DerError('truncated length');
    if (buf[start] === 0) throw new DerError('length not in its shortest form');
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + (buf[start + i] as number);
    if (length < 0x80) throw new DerError('length not in its shortest form');
    start += n;
  }
  const end = start + length;
  if (end > buf.length) throw new DerError('element runs past its container');
  return { element: { tag, contents: buf.subarray(start, end), raw: buf.subarray(at, end) }, next: end };
}

/** The elements that fill `buf` exactly, one after another. */
function readAll(buf: Buffer): DerElement[] {
  const out: DerElement[] = [];
  for (let at = 0; at < buf.length; ) {
    const { element, next } = readAt(buf, at);
    out.push(element);
    at = next;
  }
  return out;
}

function checkTree(el: DerElement, depth: number): void {
  if (!isConstructed(el.tag)) return;
  if (depth >= MAX_DEPTH) throw new DerError('nested too deeply');
  for (const child of readAll(el.contents)) checkTree(child, depth + 1);
}

/**
 * Exactly one DER element filling `buf`, its whole tree checked (every constructed element holds
 * whole elements only). Throws DerError otherwise.
 */
export function readDer(buf: Buffer): DerElement {
  const { element, next } = readAt(buf, 0);
  if (next !== buf.length) throw new DerError('trailing bytes after the element');
  checkTree(element, 0);
  return element;
}

/** The children of a constructed element (already checked by readDer). */
export function childrenOf(el: DerElement): DerElement[] {
  if (!isConstructed(el.tag)) throw new DerError('not a constructed element');
  return readAll(el.contents);
}

/** The children of `el`, which must have this tag and exactly `counts` children (one of them). */
export function expectConstructed(el: DerElement | undefined, tag: number, counts: number[], what: string): DerElement[] {
  if (!el || el.tag !== tag) throw new DerError(`${what}: unexpected element`);
  const kids = childrenOf(el);
  if (!counts.includes(kids.length)) throw new DerError(`${what}: unexpected number of elements`);
  return kids;
}

/** An element that a count check already proved is there; for the type checker. */
export function present(el: DerElement | undefined, what: string): DerElement {
  if (!el) throw new DerError(`${what}: missing`);
  return el;
}

/** An OBJECT IDENTIFIER's dotted form; base-128 arcs in their shortest form (X.690 §8.19). */
export function oidOf(el: DerElement | undefined, what: string): string {
  if (!el || el.tag !== TAG.OID || el.contents.length === 0) throw new DerError(`${what}: not an object identifier`);
  const arcs: number[] = [];
  let value = 0;
  let fresh = true;
  for (const byte of el.contents) {
    if (fresh && byte === 0x80) throw new DerError(`${what}: arc not in its shortest form`);
    if (value > 0x1fffffffffff) throw new DerError(`${what}: arc too large`);
    value = value * 128 + (byte & 0x7f);
    fresh = (byte & 0x80) === 0;
    if (fresh) {
      arcs.push(value);
      value = 0;
    }
  }
  if (!fresh) throw new DerError(`${what}: truncated object identifier`);
  const [head = 0, ...rest] = arcs;
  const first = head < 40 ? 0 : head < 80 ? 1 : 2;
  return [first, head - first * 40, ...rest].join('.');
}

/** A BIT STRING of whole octets (keys and signatures): the unused-bits octet must be 0. */
export function bitStringBytes(el: DerElement | undefined, what: string): Buffer {
  if (!el || el.tag !== TAG.BIT_STRING) throw new DerError(`${what}: not a BIT STRING`);
  if (el.contents.length === 0 || el.contents[0] !== 0) throw new DerError(`${what}: must be whole octets`);
  return el.contents.subarray(1);
}
