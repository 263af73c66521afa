// One SQLite value turned into the PostgreSQL column's type, and the canonical text both sides are
// checksummed by. SQLite keeps a value's own type whatever the column says (SQLite docs "Datatypes
// In SQLite", 3 "Type Affinity"); PostgreSQL's columns are strict. So each value is checked against
// the target column's type and converted, or refused naming the table, column and row: nothing is
// coerced by guesswork. The canonical text is PostgreSQL's own text output of the value (docs 8:
// integers in decimal, booleans t/f, bytea in hex "\x…", text as is), so what is read back from
// PostgreSQL needs no conversion to be compared.

/** The PostgreSQL types `db migrate` knows how to fill from SQLite (information_schema data_type). */
export const COPYABLE_TYPES = ['text', 'character varying', 'character', 'bigint', 'integer', 'smallint', 'boolean', 'bytea', 'json', 'jsonb'] as const;
export type CopyableType = (typeof COPYABLE_TYPES)[number];

export function isCopyable(t: string): t is CopyableType {
  return (COPYABLE_TYPES as readonly string[]).includes(t);
}

/** A value that does not fit its column; `where` is filled in by the caller. */
export class ValueError extends Error {}

export interface Converted {
  /** What is sent as the statement's parameter. */
  param: string | Buffer | null;
  /** The canonical text of the value (PostgreSQL's text output), null for NULL. */
  canonical: string | null;
}

const INT_RANGE: Record<string, [bigint, bigint]> = {
  smallint: [-32768n, 32767n],
  integer: [-2147483648n, 2147483647n],
  bigint: [-9223372036854775808n, 9223372036854775807n],
};

function describe(v: unknown): string {
  if (Buffer.isBuffer(v)) return `a blob of ${v.length} bytes`;
  if (typeof v === 'string') return `the text ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `the ${typeof v === 'number' ? 'real' : typeof v} ${String(v)}`;
}

/** Keys sorted, no spaces: the same JSON whatever its text (jsonb keeps no key order or spacing). */
export function canonicalJson(text: string): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  return JSON.stringify(sort(JSON.parse(text)));
}

/** Converts one value read from SQLite (integers as BigInt) for a column of PostgreSQL type `type`. */
export function convert(v: unknown, type: CopyableType): Converted {
  if (v === null || v === undefined) return { param: null, canonical: null };
  switch (type) {
    case 'text':
    case 'character varying':
    case 'character':
      // PostgreSQL text cannot hold NUL (docs 8.3); SQLite text can
      if (typeof v !== 'string') throw new ValueError(`holds ${describe(v)} where PostgreSQL expects text`);
      if (v.includes('\0')) throw new ValueError('holds text with a NUL character, which PostgreSQL text cannot store');
      return { param: v, canonical: v };
    case 'bigint':
    case 'integer':
    case 'smallint': {
      if (typeof v !== 'bigint') throw new ValueError(`holds ${describe(v)} where PostgreSQL expects a whole number (${type})`);
      const [min, max] = INT_RANGE[type] as [bigint, bigint];
      if (v < min || v > max) throw new ValueError(`holds ${v}, out of range for PostgreSQL ${type}`);
      return { param: v.toString(), canonical: v.toString() };
    }
    case 'boolean':
      // the gate writes flags as 0 and 1 (rows.ts)
      if (v === 0n || v === 1n) return { param: v === 1n ? 'true' : 'false', canonical: v === 1n ? 't' : 'f' };
      throw new ValueError(`holds ${describe(v)} where a flag (0 or 1) is expected`);
    case 'bytea': {
      // text in a blob column: its UTF-8 bytes, as SQLite's own CAST(x AS BLOB) gives
      const bytes = Buffer.isBuffer(v) ? v : typeof v === 'string' ? Buffer.from(v, 'utf8') : undefined;
      if (!bytes) throw new ValueError(`holds ${describe(v)} where bytes are expected`);
      return { param: bytes, canonical: `\\x${bytes.toString('hex')}` };
    }
    case 'json':
    case 'jsonb': {
      if (typeof v !== 'string') throw new ValueError(`holds ${describe(v)} where JSON text is expected`);
      let canonical: string;
      try {
        canonical = canonicalJson(v);
      } catch (e) {
        throw new ValueError(`holds text that is not JSON: ${(e as Error).message}`);
      }
      return { param: v, canonical };
    }
  }
}

/** The canonical text of a value read back from PostgreSQL as text (every type parser off). */
export function canonicalFromPostgres(text: string | null, type: CopyableType): string | null {
  if (text === null) return null;
  return type === 'json' || type === 'jsonb' ? canonicalJson(text) : text;
}
