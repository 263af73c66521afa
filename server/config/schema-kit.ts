// A small typed schema for the YAML config: each field knows how to check a raw value, its default,
// and how an environment variable overrides it. Errors carry the key path so the message can name
// the key and the file.

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly key: string,
    readonly problem: string,
  ) {
    super(`${source}: ${key || '(top level)'}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** Thrown by field checks; the loader adds the source (file or env var). */
export class FieldError extends Error {
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(`${key}: ${problem}`);
  }
}

export interface Field<T> {
  readonly kind: 'leaf' | 'object' | 'list' | 'map';
  /** Checks a raw value (already parsed from YAML) or returns the default when it is undefined. */
  check(raw: unknown, key: string): T;
  /** For objects: the fields, so env overrides can be resolved against known key paths. */
  readonly fields?: Record<string, Field<unknown>>;
  /** Leaves whose env value is a string by nature take it verbatim; others are parsed as YAML. */
  readonly envVerbatim?: boolean;
}

export type Infer<F> = F extends Field<infer T> ? T : never;

function describe(raw: unknown): string {
  if (raw === null) return 'null';
  if (Array.isArray(raw)) return 'a list';
  return typeof raw === 'object' ? 'a map' : `${typeof raw} ${JSON.stringify(raw)}`;
}

function leaf<T>(check: (raw: unknown, key: string) => T, envVerbatim = false): Field<T> {
  return { kind: 'leaf', check, envVerbatim };
}

function withDefault<T>(raw: unknown, key: string, def: T | undefined): unknown {
  if (raw !== undefined && raw !== null) return raw;
  if (def === undefined) throw new FieldError(key, 'is required');
  return def;
}

export function str(opts: { default?: string; pattern?: RegExp; hint?: string } = {}): Field<string> {
  return leaf((raw, key) => {
    const v = withDefault(raw, key, opts.default);
    if (typeof v !== 'string') throw new FieldError(key, `must be a string, got ${describe(v)}`);
    if (opts.pattern && !opts.pattern.test(v)) {
      throw new FieldError(key, `${JSON.stringify(v)} is not valid${opts.hint ? ` (${opts.hint})` : ''}`);
    }
    return v;
  }, true);
}

export function optionalStr(): Field<string | undefined> {
  return leaf((raw, key) => {
    if (raw === undefined || raw === null || raw === '') return undefined;
    if (typeof raw !== 'string') throw new FieldError(key, `must be a string, got ${describe(raw)}`);
    return raw;
  }, true);
}

/**
 * A list of secrets, written as a YAML list or as one string of them separated by commas or white
 * space (what an environment variable can carry: TALOS_GATE_SECRETS_SYSTEM="new,old"). The message
 * of a wrong type never repeats the value.
 */
export function secretList(): Field<string[]> {
  return leaf((raw, key) => {
    if (raw === undefined || raw === null || raw === '') return [];
    const items: unknown[] = typeof raw === 'string' ? raw.split(/[\s,]+/).filter((x) => x !== '') : Array.isArray(raw) ? raw : [raw];
    return items.map((x, i) => {
      if (typeof x !== 'string') throw new FieldError(`${key}[${i}]`, `must be a string, got ${x === null ? 'null' : Array.isArray(x) ? 'a list' : typeof x}`);
      return x;
    });
  }, true);
}

export function bool(def: boolean): Field<boolean> {
  return leaf((raw, key) => {
    const v = withDefault(raw, key, def);
    if (typeof v !== 'boolean') throw new FieldError(key, `must be true or false, got ${describe(v)}`);
    return v;
  });
}

export function int(opts: { default?: number; min?: number; max?: number }): Field<number> {
  return leaf((raw, key) => {
    const v = withDefault(raw, key, opts.default);
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new FieldError(key, `must be a whole number, got ${describe(v)}`);
    }
    if (opts.min !== undefined && v < opts.min) throw new FieldError(key, `must be at least ${opts.min}`);
    if (opts.max !== undefined && v > opts.max) throw new FieldError(key, `must be at most ${opts.max}`);
    return v;
  });
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "90s", "15m", "4h", "1h30m", or a bare number of seconds. Returns milliseconds. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.round(v * 1000);
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const re = /(\d+)(ms|s|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
    consumed = re.lastIndex;
  }
  return consumed === s.length && s.length > 0 ? total : undefined;
}

/** A duration in milliseconds, written in config as "15m", "4h", "30s" or seconds. */
export function duration(opts: { default: string; min?: string; max?: string }): Field<number> {
  const min = opts.min === undefined ? undefined : parseDuration(opts.min);
  const max = opts.max === undefined ? undefined : parseDuration(opts.max);
  return leaf((raw, key) => {
    const v = withDefault(raw, key, opts.default);
    const ms = parseDuration(v);
    if (ms === undefined) {
      throw new FieldError(key, `must be a duration such as "30s", "15m" or "4h", got ${describe(v)}`);
    }
    if (min !== undefined && ms < min) throw new FieldError(key, `must be at least ${opts.min}`);
    if (max !== undefined && ms > max) throw new FieldError(key, `must be at most ${opts.max}`);
    return ms;
  }, true);
}

/** A string, number or boolean, for values compared with claims. */
export function anyScalar(): Field<string | number | boolean> {
  return leaf((raw, key) => {
    if (typeof raw === 'string' || typeof raw === 'number' || typeof raw === 'boolean') return raw;
    throw new FieldError(key, `must be a string, number or true/false, got ${describe(raw)}`);
  });
}

export function oneOf<const T extends string>(values: readonly T[], def: T): Field<T> {
  return leaf((raw, key) => {
    const v = withDefault(raw, key, def);
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      throw new FieldError(key, `must be one of ${values.join(', ')}, got ${describe(v)}`);
    }
    return v as T;
  }, true);
}

export function obj<S extends Record<string, Field<unknown>>>(
  fields: S,
): Field<{ [K in keyof S]: Infer<S[K]> }> {
  return {
    kind: 'object',
    fields,
    check(raw, key) {
      const v = raw ?? {};
      if (typeof v !== 'object' || Array.isArray(v)) throw new FieldError(key, `must be a map, got ${describe(v)}`);
      const input = v as Record<string, unknown>;
      for (const k of Object.keys(input)) {
        if (!(k in fields)) {
          throw new FieldError(join(key, k), `unknown key (known here: ${Object.keys(fields).join(', ')})`);
        }
      }
      const out: Record<string, unknown> = {};
      for (const [k, f] of Object.entries(fields)) out[k] = f.check(input[k], join(key, k));
      return out as { [K in keyof S]: Infer<S[K]> };
    },
  };
}

export function list<T>(item: Field<T>, def: T[] = []): Field<T[]> {
  return {
    kind: 'list',
    check(raw, key) {
      const v = raw ?? def;
      if (!Array.isArray(v)) throw new FieldError(key, `must be a list, got ${describe(v)}`);
      return v.map((x, i) => item.check(x, `${key}[${i}]`));
    },
  };
}

export function map<T>(value: Field<T>, def: Record<string, T> = {}): Field<Record<string, T>> {
  return {
    kind: 'map',
    check(raw, key) {
      if (raw === undefined || raw === null) return { ...def };
      if (typeof raw !== 'object' || Array.isArray(raw)) throw new FieldError(key, `must be a map, got ${describe(raw)}`);
      const out: Record<string, T> = {};
      for (const [k, x] of Object.entries(raw as Record<string, unknown>)) out[k] = value.check(x, join(key, k));
      return out;
    },
  };
}

function join(prefix: string, k: string): string {
  return prefix ? `${prefix}.${k}` : k;
}
