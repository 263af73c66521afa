// Prefix search as a range of one index (issue 13, admin search): `col >= prefix AND col < next`,
// where `next` is the prefix with its last character incremented. Every string that starts with the
// prefix sorts inside that range in byte order (SQLite's BINARY collation, PostgreSQL's "C"), so both
// backends read one range of an index on lower(col) per searched column. Unlike LIKE 'x%' this needs
// no escaping of % and _ (there are no wildcards) and no case_sensitive_like pragma: SQLite's LIKE
// optimization only applies to a bare column with a NOCASE index, never to an expression.

/** What a search prefix may hold: printable ASCII, so that incrementing the last character stays within it. */
export const SEARCH_PREFIX = /^[\x20-\x7e]{1,128}$/;

/** The half-open range [from, to) of the strings that start with prefix (lower-case printable ASCII). */
export function prefixRange(prefix: string): { from: string; to: string } {
  if (!SEARCH_PREFIX.test(prefix)) throw new RangeError('a search prefix is 1-128 printable ASCII characters');
  const last = prefix.charCodeAt(prefix.length - 1);
  return { from: prefix, to: prefix.slice(0, -1) + String.fromCharCode(last + 1) };
}

/**
 * The searched columns as SQL expressions; each has an index on exactly this expression (SQLite
 * migration 011, PostgreSQL 002). The hostname is both the decided one and the one the node sent.
 */
export const SQLITE_SEARCH_COLUMNS = [
  'lower(uuid)',
  'lower(mac)',
  'lower(hostname)',
  'lower(source_ip)',
  "lower(json_extract(variables, '$.serial'))",
  "lower(json_extract(variables, '$.hostname'))",
] as const;

export const POSTGRES_SEARCH_COLUMNS = [
  '(lower(uuid) COLLATE "C")',
  '(lower(mac) COLLATE "C")',
  '(lower(hostname) COLLATE "C")',
  '(lower(source_ip) COLLATE "C")',
  `(lower(variables::jsonb ->> 'serial') COLLATE "C")`,
  `(lower(variables::jsonb ->> 'hostname') COLLATE "C")`,
] as const;
