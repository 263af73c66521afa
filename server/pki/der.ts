// Just enough DER (X.690) to write certificates: every value is built straight into Buffers, which
// keeps certificate building well below the cost of its signature on the exchange's hot path.
// Reading is der-reader.ts's job, strictly.

/** Octets the definite length n takes: short form below 128, else 0x8N and N big-endian octets. */
function lengthSize(n: number): number {
  let size = 1;
  if (n >= 0x80) for (let v = n; v > 0; v = Math.floor(v / 256)) size++;
  return size;
}

/** One TLV with the given identifier octet and the parts of its contents, written into one buffer. */
function tlvOf(tag: number, parts: Buffer[]): Buffer {
  let n = 0;
  for (const p of parts) n += p.length;
  const lenSize = lengthSize(n);
  const out = Buffer.allocUnsafe(1 + lenSize + n);
  out[0] = tag;
  if (lenSize === 1) out[1] = n;
  else {
    out[1] = 0x80 | (lenSize - 1);
    for (let i = lenSize, v = n; i >= 2; i--, v = Math.floor(v / 256)) out[i] = v & 0xff;
  }
  let at = 1 + lenSize;
  for (const p of parts) at += p.copy(out, at);
  return out;
}

/** One TLV with the given identifier octet. */
export const tlv = (tag: number, contents: Buffer): Buffer => tlvOf(tag, [contents]);
export const sequence = (items: Buffer[]): Buffer => tlvOf(0x30, items);
export const set = (items: Buffer[]): Buffer => tlvOf(0x31, items);
export const octetString = (b: Buffer): Buffer => tlv(0x04, b);
export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
export const boolTrue = (): Buffer => Buffer.of(0x01, 0x01, 0xff);
export const derNull = (): Buffer => Buffer.of(0x05, 0x00);
/** A BIT STRING of whole octets (no unused bits), as signatures and keys are. */
export const bitString = (b: Buffer, unusedBits = 0): Buffer => tlvOf(0x03, [Buffer.of(unusedBits), b]);
/** [n] EXPLICIT: a constructed context-specific wrapper around one element. */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
/** [n] IMPLICIT for a primitive type: the contents under a context-specific tag. */
export const implicitPrimitive = (n: number, contents: Buffer): Buffer => tlv(0x80 | n, contents);

/** An INTEGER from unsigned big-endian magnitude bytes: leading zeros dropped, a 0x00 added when the top bit is set. */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const trimmed = magnitude.subarray(i);
  const contents = ((trimmed[0] ?? 0) & 0x80) !== 0 ? Buffer.concat([Buffer.of(0), trimmed]) : trimmed;
  return tlv(0x02, contents.length ? contents : Buffer.of(0));
}

const oids = new Map<string, Buffer>();

/** OIDs are a handful of constants: each is encoded once. */
export function objectIdentifier(dotted: string): Buffer {
  let der = oids.get(dotted);
  if (!der) {
    der = encodeObjectIdentifier(dotted);
    oids.set(dotted, der);
  }
  return der;
}

function encodeObjectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const [first = 0, second = 0, ...rest] = arcs;
  const out: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const base128: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) base128.unshift(0x80 | (v & 0x7f));
    out.push(...base128);
  }
  return tlv(0x06, Buffer.from(out));
}

const two = (n: number) => String(n).padStart(2, '0');

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after, both in Zulu with seconds. */
export function time(d: Date): Buffer {
  const year = d.getUTCFullYear();
  const rest = `${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
  if (year < 2050) return tlv(0x17, Buffer.from(`${two(year % 100)}${rest}`, 'latin1'));
  return tlv(0x18, Buffer.from(`${String(year).padStart(4, '0')}${rest}`, 'latin1'));
}
