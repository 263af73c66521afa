// Bounds on templates, patches and the configs they render. They are admin input, but one bad
// paste (or a YAML "billion laughs", or a JSON patch copying the document into itself) must be a
// clear refusal, not a gate that stalls or runs out of memory. A real Talos control-plane config is
// ~20–40 KB, ~1,000–2,000 values, nested ~10 levels deep, one v1alpha1 document and a few others.

/** A template, patch file or patch text before it is parsed: 25× the largest real config. */
export const MAX_SOURCE_BYTES = 1024 * 1024;

/** A rendered config: 25× a real one, room for big inline manifests; 1 MiB renders in well under a second. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Values (maps, lists and scalars) in a parsed file or a config being rendered: 50× a real config. */
export const MAX_VALUES = 100_000;

/**
 * Nesting of maps and lists. Talos configs nest ~10 deep; parsing, merging and printing recurse,
 * and at a few hundred levels the stack runs out (which V8 may even report as out of memory).
 */
export const MAX_DEPTH = 64;

/**
 * Alias expansions in one YAML document, as the yaml library counts them (uses × the aliases
 * inside what an alias points to). Its own default: configs seldom use aliases at all, and each
 * expansion can multiply the size (the billion-laughs attack).
 */
export const MAX_ALIAS_COUNT = 100;

/** Documents in one config or patch: a real config has a handful; they are matched pairwise. */
export const MAX_DOCUMENTS = 256;

/** Operations in one JSON patch: real ones have a few dozen at most; each may walk the document. */
export const MAX_JSON_PATCH_OPS = 1000;

/**
 * Values visited while rendering one config (counting, inserting, comparing): 20 walks of the
 * largest allowed config, well under a second of CPU, while a real render visits a few thousand.
 * It bounds what many operations on a big document (a JSON patch moving it about) add up to.
 */
export const MAX_RENDER_WORK = 2_000_000;

/** A limit was passed; the renderer adds which file or patch it was. */
export class LimitError extends Error {}

/** The values visited during one render, against MAX_RENDER_WORK. */
export class RenderWork {
  visited = 0;

  charge(n: number): void {
    this.visited += n;
    if (this.visited > MAX_RENDER_WORK) {
      throw new LimitError(`applying the patches takes too much work (more than ${MAX_RENDER_WORK.toLocaleString('en')} values visited)`);
    }
  }
}

function mib(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n} bytes`;
}

/** What each limit says when it is passed; the renderer puts the file or patch in front. */
export const tooBigSource = (what: string) => `${what} is larger than ${mib(MAX_SOURCE_BYTES)}`;
export const TOO_DEEP = `nested deeper than ${MAX_DEPTH} levels`;
export const TOO_MANY_DOCUMENTS = `more than ${MAX_DOCUMENTS} documents`;
export const TOO_MANY_OPS = `more than ${MAX_JSON_PATCH_OPS} JSON patch operations`;
export const TOO_MANY_ALIASES = `too many YAML alias expansions (more than ${MAX_ALIAS_COUNT})`;

/**
 * A running count of values and approximate bytes of a config, walked without recursion and
 * stopping at the first limit passed: the work of counting is bounded by the limits themselves,
 * however much a value would expand. The byte count is a lower bound of the printed YAML (string
 * and key lengths), so passing it means the printed config is too large as well. While patches
 * apply, it is an upper bound (what they remove is not subtracted); the renderer counts afresh
 * when that bound passes a limit, so a limit is only reported when the config really passes it.
 */
export class SizeBudget {
  values = 0;
  bytes = 0;

  constructor(
    /** What is counted, for messages: "the rendered config", or "the YAML" when parsing. */
    private readonly subject = 'the rendered config',
    readonly work?: RenderWork,
  ) {}

  /** Counts `value`, placed `depth` levels deep (0 for a whole document). */
  add(value: unknown, depth = 0): void {
    const before = this.values;
    const pending: unknown[] = [value];
    const depths: number[] = [depth];
    try {
      this.walk(pending, depths);
    } finally {
      // what was visited counts, also when a limit stopped the walk
      this.work?.charge(this.values - before);
    }
  }

  /** Two parallel stacks rather than one of pairs: this walk is the renderer's hot loop. */
  private walk(pending: unknown[], depths: number[]): void {
    while (pending.length > 0) {
      const v = pending.pop();
      const d = depths.pop() as number;
      this.values += 1;
      if (this.values > MAX_VALUES) throw new LimitError(`${this.subject} has more than ${MAX_VALUES.toLocaleString('en')} values`);
      if (typeof v === 'object' && v !== null) {
        if (d + 1 > MAX_DEPTH) throw new LimitError(TOO_DEEP);
        if (Array.isArray(v)) {
          for (const x of v) {
            pending.push(x);
            depths.push(d + 1);
          }
          this.bytes += 2 * v.length; // "- "
        } else {
          const map = v as Record<string, unknown>;
          for (const k of Object.keys(map)) {
            this.bytes += k.length + 2; // "key: "
            pending.push(map[k]);
            depths.push(d + 1);
          }
        }
      } else {
        this.bytes += typeof v === 'string' ? v.length : String(v).length;
      }
      if (this.bytes > MAX_CONFIG_BYTES) throw new LimitError(`${this.subject} is larger than ${mib(MAX_CONFIG_BYTES)}`);
    }
  }

  /** Starts over, to count a document afresh when an upper bound passed a limit. */
  reset(): void {
    this.values = 0;
    this.bytes = 0;
  }

  /** Counts the documents of a config; refuses more than MAX_DOCUMENTS. */
  addDocuments(docs: unknown[]): void {
    if (docs.length > MAX_DOCUMENTS) throw new LimitError(TOO_MANY_DOCUMENTS);
    for (const d of docs) this.add(d);
  }
}

/** The printed config is within MAX_CONFIG_BYTES. */
export function checkConfigBytes(text: string): void {
  // UTF-16 length is a lower bound of UTF-8 bytes: only measure exactly near the limit
  if (text.length > MAX_CONFIG_BYTES || (text.length * 3 > MAX_CONFIG_BYTES && Buffer.byteLength(text) > MAX_CONFIG_BYTES)) {
    throw new LimitError(`the rendered config is larger than ${mib(MAX_CONFIG_BYTES)}`);
  }
}
