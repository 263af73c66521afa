import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { Composer, LineCounter, Parser, stringify, type CST } from 'yaml';
import type { PatchSpec } from '../storage/storage.js';
import { applyJsonPatch, checkJsonPatch, isJsonPatch, JsonPatchError, type JsonPatchHooks } from './json-patch.js';
import {
  checkConfigBytes,
  LimitError,
  MAX_ALIAS_COUNT,
  MAX_DEPTH,
  MAX_DOCUMENTS,
  MAX_SOURCE_BYTES,
  RenderWork,
  SizeBudget,
  TOO_DEEP,
  TOO_MANY_ALIASES,
  TOO_MANY_DOCUMENTS,
  tooBigSource,
} from './limits.js';
import { BundleError, bundlePatch } from './secrets-bundle.js';
import { documentKey, isMap, mergeDocuments, setOwn, type YamlMap } from './strategic-merge.js';

/** A template or patch that cannot be used; names the file and the place in it. */
export class RenderError extends Error {
  constructor(
    readonly file: string,
    readonly where: string,
    readonly problem: string,
  ) {
    super(`${file}${where ? ` at ${where}` : ''}: ${problem}`);
    this.name = 'RenderError';
  }
}

export interface Profile {
  template: string;
  patches: string[];
  /** A Talos secrets bundle (`talosctl gen secrets`) in the templates folder, merged after the template. */
  secrets_bundle?: string | undefined;
  /** The profile of approvals that name none (config: at most one). */
  default?: boolean | undefined;
}

/** What a template may refer to as {{name}}. A null value used by a template is an error. */
export interface TemplateValues {
  uuid: string | null;
  mac: string | null;
  serial: string | null;
  hostname: string | null;
  profile: string;
}

/** What check() renders every profile with: each value a node may send, present. */
const CHECK_VALUES: Omit<TemplateValues, 'profile'> = {
  uuid: '00000000-0000-4000-8000-000000000000',
  mac: '02:00:00:00:00:00',
  serial: 'start-up-check',
  hostname: 'start-up-check',
};

const PLACEHOLDER = /\{\{\s*([a-z_]+)\s*\}\}/g;

/**
 * The deepest nesting of maps and lists in the parsed tokens, walked without recursion, before the
 * yaml library composes them (it recurses); throws at the first token past MAX_DEPTH.
 */
function checkTokenDepth(tokens: CST.Token[], lines: LineCounter, file: string): void {
  const stack: [CST.Token, number][] = tokens.map((t) => [t, 0]);
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [t, depth] = next;
    if (t.type === 'document') {
      if (t.value) stack.push([t.value, depth]);
    } else if (t.type === 'block-map' || t.type === 'block-seq' || t.type === 'flow-collection') {
      if (depth + 1 > MAX_DEPTH) throw new RenderError(file, `line ${lines.linePos(t.offset).line}`, TOO_DEEP);
      for (const item of t.items) {
        if (item.key) stack.push([item.key, depth + 1]);
        if (item.value) stack.push([item.value, depth + 1]);
      }
    }
  }
}

/**
 * YAML text as plain values, within the limits: size before parsing, nesting before composing,
 * aliases while converting, values and bytes after. Map keys become own properties, `__proto__`
 * included (the yaml library defines rather than assigns that one).
 */
function parseYamlDocuments(text: string, file: string): unknown[] {
  if (text.length > MAX_SOURCE_BYTES || Buffer.byteLength(text) > MAX_SOURCE_BYTES) throw new RenderError(file, '', tooBigSource('the YAML text'));
  const lines = new LineCounter();
  const tokens = [...new Parser(lines.addNewLine).parse(text)];
  if (tokens.filter((t) => t.type === 'document').length > MAX_DOCUMENTS) throw new RenderError(file, '', TOO_MANY_DOCUMENTS);
  checkTokenDepth(tokens, lines, file);
  const out: unknown[] = [];
  const size = new SizeBudget('the YAML');
  for (const doc of new Composer({ uniqueKeys: true }).compose(tokens)) {
    const err = doc.errors[0];
    if (err) {
      throw new RenderError(file, `line ${lines.linePos(err.pos[0]).line}`, `not valid YAML: ${err.message.split('\n')[0]}`);
    }
    let js: unknown;
    try {
      js = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e) {
      // the yaml library throws a ReferenceError for an alias it cannot or will not resolve
      if (e instanceof ReferenceError && /alias count/i.test(e.message)) throw new RenderError(file, '', TOO_MANY_ALIASES);
      if (e instanceof ReferenceError) throw new RenderError(file, '', `not valid YAML: ${e.message}`);
      throw e;
    }
    if (js === null || js === undefined) continue;
    try {
      size.add(js);
    } catch (e) {
      if (e instanceof LimitError) throw new RenderError(file, '', e.message);
      throw e;
    }
    out.push(js);
  }
  return out;
}

/** Replaces {{name}} inside string values (never keys), so a value can never inject YAML structure. */
function substitute(v: unknown, values: TemplateValues, file: string, path: string): unknown {
  if (typeof v === 'string') {
    return v.replace(PLACEHOLDER, (_m, name: string) => {
      if (!Object.hasOwn(values, name)) {
        throw new RenderError(file, path, `unknown placeholder {{${name}}} (known: ${Object.keys(values).join(', ')})`);
      }
      const value = values[name as keyof TemplateValues];
      if (value === null) throw new RenderError(file, path, `{{${name}}} is not known for this node`);
      return value;
    });
  }
  if (Array.isArray(v)) return v.map((x, i) => substitute(x, values, file, `${path}/${i}`));
  if (isMap(v)) {
    const out: YamlMap = {};
    for (const [k, x] of Object.entries(v)) setOwn(out, k, substitute(x, values, file, `${path}/${k}`));
    return out;
  }
  return v;
}

/**
 * Renders per-node machine configs from a template folder: template, then the profile's patches,
 * then the node's own, in order. Files are looked at on each render so templates can be edited
 * without a restart (parsed again only when their size or mtime changed: a rack approved at once
 * renders thousands of times); check() runs at start-up so a missing or broken file fails before
 * anything listens.
 */
export class MachineConfigRenderer {
  private readonly parsed = new Map<string, { version: string; docs: unknown[] }>();

  constructor(
    readonly templatesDir: string,
    readonly profiles: Record<string, Profile>,
    /** CA certificates (PEM) added to machine.acceptedCAs of every config (Talos 1.7+). */
    private readonly acceptedCaPems: string[] = [],
  ) {}

  /** The profile marked default: true, if any: approvals without a profile get it. */
  get defaultProfile(): string | undefined {
    return Object.entries(this.profiles).find(([, p]) => p.default === true)?.[0];
  }

  /** Whether a profile of this name is configured: an own key, so "constructor" or "__proto__" never is. */
  hasProfile(name: string): boolean {
    return Object.hasOwn(this.profiles, name);
  }

  /**
   * Every profile's template and patches exist, are regular files and parse within the limits
   * (JSON patches also within the operation count), and every profile renders once with placeholder
   * values, so an unknown {{placeholder}} or a patch that does not apply is found at start-up, not
   * at the first approval. Throws RenderError naming the first that fails.
   */
  check(): void {
    for (const [name, p] of Object.entries(this.profiles)) {
      if (p.secrets_bundle !== undefined) this.bundleDocument(this.fileIn(p.secrets_bundle, `profile ${name} secrets_bundle`));
      for (const file of [p.template, ...p.patches]) {
        const path = this.fileIn(file);
        if (!existsSync(path)) throw new RenderError(path, '', `file not found (profile ${name})`);
        const docs = this.readDocuments(path, path, file);
        const first = docs[0];
        if (file !== p.template && docs.length === 1 && isJsonPatch(first)) this.withLimits(path, () => checkJsonPatch(first));
      }
      try {
        this.render(name, CHECK_VALUES, []);
      } catch (e) {
        if (e instanceof RenderError) throw new RenderError(e.file, e.where, `${e.problem} (profile ${name}, rendered at start-up with placeholder values)`);
        throw e;
      }
    }
  }

  render(profileName: string, values: Omit<TemplateValues, 'profile'>, nodePatches: PatchSpec[]): string {
    if (!this.hasProfile(profileName)) throw new RenderError('config', 'profiles', `unknown profile ${JSON.stringify(profileName)}`);
    const profile = this.profiles[profileName] as Profile;
    const all: TemplateValues = { ...values, profile: profileName };
    const work = new RenderWork();
    const templateFile = this.fileIn(profile.template);
    let docs = this.readDocuments(templateFile).map((d, i) => {
      if (!isMap(d)) throw new RenderError(templateFile, `document ${i + 1}`, 'a machine config document must be a map');
      return substitute(d, all, templateFile, '') as YamlMap;
    });
    let last = templateFile;
    const size = new SizeBudget('the rendered config', work);
    this.withLimits(templateFile, () => size.addDocuments(docs));
    const apply = (patchDocs: unknown[], label: string) => {
      docs = this.withLimits(label, () => this.applyPatch(docs, patchDocs, label, size));
      last = label;
    };
    if (profile.secrets_bundle !== undefined) {
      // first, so the profile's and the node's patches can still override a value of it
      const file = this.fileIn(profile.secrets_bundle, 'secrets_bundle');
      const v1 = docs.find((d) => documentKey(d) === 'v1alpha1');
      if (!v1) throw new RenderError(templateFile, '', 'a secrets bundle is merged into the v1alpha1 document, and the template has none');
      const machineType = isMap(v1.machine) ? v1.machine.type : undefined;
      let patch: YamlMap;
      try {
        patch = bundlePatch(this.bundleDocument(file), machineType, templateFile);
      } catch (e) {
        if (e instanceof BundleError) throw new RenderError(file, e.where === templateFile ? '' : e.where, e.problem);
        throw e;
      }
      apply([patch], file);
    }
    for (const file of profile.patches) apply(this.readDocuments(this.fileIn(file)), this.fileIn(file));
    nodePatches.forEach((spec, i) => {
      const { docs: patchDocs, file } = this.patchDocuments(spec, `node patch #${i + 1}`);
      apply(patchDocs, file);
    });
    if (this.acceptedCaPems.length > 0) docs = this.withAcceptedCas(docs);
    // aliasDuplicateObjects off: the config is printed in full, as counted, never as YAML aliases
    const text = docs.map((d) => stringify(d, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
    this.withLimits(last, () => checkConfigBytes(text));
    return text;
  }

  /** Talos reads machine.acceptedCAs as [{crt: base64 of the PEM}]; nodes then trust certificates those CAs sign. */
  private withAcceptedCas(docs: YamlMap[]): YamlMap[] {
    return docs.map((d) => {
      if (documentKey(d) !== 'v1alpha1') return d;
      const machine = isMap(d.machine) ? d.machine : {};
      const existing = Array.isArray(machine.acceptedCAs) ? machine.acceptedCAs : [];
      const have = new Set(existing.map((c) => (isMap(c) ? c.crt : undefined)));
      const added = this.acceptedCaPems.map((pem) => Buffer.from(pem).toString('base64')).filter((crt) => !have.has(crt));
      return { ...d, machine: { ...machine, acceptedCAs: [...existing, ...added.map((crt) => ({ crt }))] } };
    });
  }

  /** Checks a node's patches without rendering: used when they are stored for later. */
  checkPatches(specs: PatchSpec[]): void {
    specs.forEach((spec, i) => {
      const { docs } = this.patchDocuments(spec, `node patch #${i + 1}`);
      const first = docs[0];
      if (docs.length === 1 && isJsonPatch(first)) this.withLimits(`node patch #${i + 1}`, () => checkJsonPatch(first));
    });
  }

  private patchDocuments(spec: PatchSpec, label: string): { docs: unknown[]; file: string } {
    if (typeof spec === 'string' && spec.startsWith('@')) {
      const name = spec.slice(1);
      const file = this.fileIn(name, label);
      if (!existsSync(file)) throw new RenderError(label, '', `file ${name} not found in the templates folder`);
      return { docs: this.readDocuments(file, label, name), file };
    }
    if (typeof spec === 'string') return { docs: parseYamlDocuments(spec, label), file: label };
    // a patch sent as JSON: parsed already, but as deep or as large as the request allows
    this.withLimits(label, () => new SizeBudget('the patch').add(spec));
    return { docs: [spec], file: label };
  }

  /** Applies one patch; `size` goes on counting the config (an upper bound, counted afresh near a limit). */
  private applyPatch(docs: YamlMap[], patch: unknown[], file: string, size: SizeBudget): YamlMap[] {
    const first = patch[0];
    if (patch.length === 1 && isJsonPatch(first)) {
      const at = docs.findIndex((d) => documentKey(d) === 'v1alpha1');
      if (at < 0) throw new RenderError(file, '', 'a JSON patch needs a v1alpha1 document to apply to');
      const patched = applyJsonPatch(docs[at], checkJsonPatch(first), this.jsonPatchHooks(docs, at, size));
      if (!isMap(patched)) throw new RenderError(file, '', 'the patch must leave the document a map');
      return docs.map((d, i) => (i === at ? patched : d));
    }
    const maps = patch.map((d, i) => {
      if (!isMap(d)) {
        throw new RenderError(file, `document ${i + 1}`, 'must be a map (strategic merge) or a list of {op, path} (JSON patch)');
      }
      return d;
    });
    // A merge never nests deeper than its inputs and is at most as large as both together: adding
    // the patch's count keeps the bound; near a limit the merged config is counted afresh.
    const merged = mergeDocuments(docs, maps);
    if (merged.length > MAX_DOCUMENTS) throw new LimitError(TOO_MANY_DOCUMENTS);
    try {
      size.addDocuments(maps);
    } catch (e) {
      if (!(e instanceof LimitError)) throw e;
      size.reset();
      size.addDocuments(merged);
    }
    return merged;
  }

  /**
   * Counts what a JSON patch inserts before it is copied in, so sixteen "copy the document into
   * itself" operations stop at the limit instead of after building a 76 MB config. Removals are
   * not subtracted; past a limit the document as it is then is counted afresh, so a patch that
   * replaces a big value is not refused for the value it removed. Comparisons of `test` count as
   * work.
   */
  private jsonPatchHooks(docs: YamlMap[], at: number, size: SizeBudget): JsonPatchHooks {
    return {
      onInsert: (value, depth, doc) => {
        try {
          size.add(value, depth);
        } catch (e) {
          if (!(e instanceof LimitError)) throw e;
          size.reset();
          docs.forEach((d, i) => {
            if (i !== at) size.add(d);
          });
          if (depth > 0) size.add(doc); // at depth 0 the value replaces the whole document
          size.add(value, depth);
        }
      },
      onVisit: (n) => size.work?.charge(n),
    };
  }

  private withLimits<T>(file: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof LimitError || e instanceof JsonPatchError) throw new RenderError(file, '', e.message);
      throw e;
    }
  }

  /**
   * A file's documents, parsed once per version of the file. Only a regular file is read (a folder
   * or a FIFO named by a patch would fail or block), and only one within MAX_SOURCE_BYTES.
   */
  private readDocuments(file: string, label = file, name = file): unknown[] {
    let stat;
    try {
      stat = statSync(file, { throwIfNoEntry: false, bigint: true });
    } catch (e) {
      throw new RenderError(label, '', `cannot read ${name}: ${(e as Error).message}`);
    }
    if (!stat) throw new RenderError(file, '', 'file not found');
    if (!stat.isFile()) throw new RenderError(label, '', `${name} is not a regular file${stat.isDirectory() ? ' (it is a folder)' : ''}`);
    if (stat.size > BigInt(MAX_SOURCE_BYTES)) throw new RenderError(file, '', tooBigSource('the file'));
    const version = `${stat.ino}:${stat.size}:${stat.mtimeNs}`;
    let cached = this.parsed.get(file);
    if (cached?.version !== version) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new RenderError(label, '', `cannot read ${name}: ${(e as Error).message}`);
      }
      cached = { version, docs: parseYamlDocuments(text, file) };
      this.parsed.set(file, cached);
    }
    // a copy: rendering must never change what the next render starts from
    return structuredClone(cached.docs);
  }

  /** A path inside the templates folder; refuses to leave it. */
  /**
   * The one document of a secrets bundle, read within the same limits as a template (size, depth,
   * aliases) and only from a file no one else may read: it holds the cluster's CA keys.
   */
  private bundleDocument(file: string): unknown {
    const st = statSync(file, { throwIfNoEntry: false });
    if (!st) throw new RenderError(file, '', 'secrets bundle not found');
    if (st.isFile() && (st.mode & 0o077) !== 0) {
      throw new RenderError(file, '', `the secrets bundle is readable or writable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 ${file}`);
    }
    const docs = this.readDocuments(file);
    if (docs.length !== 1) throw new RenderError(file, '', 'a secrets bundle is one YAML document');
    return docs[0];
  }

  private fileIn(name: string, label = name): string {
    const path = resolve(this.templatesDir, name);
    const rel = relative(this.templatesDir, path);
    if (rel.startsWith('..') || isAbsolute(rel)) throw new RenderError(label, '', 'file must be inside the templates folder');
    return path;
  }
}
