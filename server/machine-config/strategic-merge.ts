// Strategic merge of Talos machine-config documents, with talosctl's rules: maps merge, lists
// append, except network.interfaces (matched by `interface` or `deviceSelector`), vlans (matched by
// `vlanId`) and cluster.network.podSubnets/serviceSubnets (replaced); `$patch: delete` removes a key,
// a list item matched by identity, or a whole document. Keys are own properties whatever their
// name: `__proto__` or `constructor` in a patch is a key like any other, never the prototype.

export type YamlMap = Record<string, unknown>;

export function isMap(v: unknown): v is YamlMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sets an own property, even for `__proto__` (plain assignment would replace the prototype). */
export function setOwn(obj: YamlMap, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

const REPLACED_LISTS = new Set(['cluster.network.podSubnets', 'cluster.network.serviceSubnets']);

/** How items of a list are matched, by the list's key and path; undefined when items are appended. */
function identityOf(path: string[]): ((item: YamlMap) => unknown) | undefined {
  const key = path[path.length - 1];
  if (key === 'interfaces' && path[path.length - 2] === 'network') {
    return (item) => (item.interface !== undefined ? { interface: item.interface } : { deviceSelector: item.deviceSelector });
  }
  if (key === 'vlans') return (item) => ({ vlanId: item.vlanId });
  return undefined;
}

function isDelete(v: unknown): boolean {
  return isMap(v) && v.$patch === 'delete';
}

function withoutDirective(v: unknown): unknown {
  if (!isMap(v)) return structuredClone(v);
  const { $patch: _directive, ...rest } = v;
  return structuredClone(rest);
}

function mergeList(dst: unknown[], src: unknown[], path: string[]): unknown[] {
  if (REPLACED_LISTS.has(path.join('.'))) return structuredClone(src);
  const identity = identityOf(path);
  if (!identity) return [...dst, ...src.map((x) => structuredClone(x))];
  // Items by identity, each identity's positions in order: a lookup per item, not a scan of the
  // list (a patch of thousands of interfaces would otherwise compare every pair).
  const out: unknown[] = [...dst];
  const deleted = new Set<number>();
  const at = new Map<string, number[]>();
  const keyOf = (item: YamlMap) => JSON.stringify(identity(item));
  const remember = (item: unknown, i: number) => {
    if (!isMap(item)) return;
    const key = keyOf(item);
    const list = at.get(key);
    if (!list) at.set(key, [i]);
    else {
      // kept in order: the first match in the list wins
      const before = list.findIndex((j) => j > i);
      list.splice(before < 0 ? list.length : before, 0, i);
    }
  };
  out.forEach(remember);
  for (const item of src) {
    if (!isMap(item)) {
      out.push(structuredClone(item));
      continue;
    }
    const same = at.get(keyOf(item));
    const first = same?.[0];
    if (isDelete(item)) {
      if (first !== undefined) {
        deleted.add(first);
        same?.shift();
      }
    } else if (first !== undefined) {
      const merged = mergeMaps(out[first] as YamlMap, item, path);
      out[first] = merged;
      if (keyOf(merged) !== keyOf(item)) {
        // merging changed the identity (a list inside a deviceSelector grew): file it anew
        same?.shift();
        remember(merged, first);
      }
    } else {
      out.push(withoutDirective(item));
      remember(out[out.length - 1], out.length - 1);
    }
  }
  return deleted.size === 0 ? out : out.filter((_, i) => !deleted.has(i));
}

/** Returns dst with src merged in; neither argument is changed. */
export function mergeMaps(dst: YamlMap, src: YamlMap, path: string[] = []): YamlMap {
  const out: YamlMap = { ...dst };
  for (const [key, sv] of Object.entries(src)) {
    if (key === '$patch') continue;
    const here = [...path, key];
    if (isDelete(sv)) {
      delete out[key];
      continue;
    }
    // own keys only: out.constructor or out.__proto__ are not a value of the document
    const dv = Object.hasOwn(out, key) ? out[key] : undefined;
    if (isMap(dv) && isMap(sv)) setOwn(out, key, mergeMaps(dv, sv, here));
    else if (Array.isArray(dv) && Array.isArray(sv)) setOwn(out, key, mergeList(dv, sv, here));
    else setOwn(out, key, withoutDirective(sv));
  }
  return out;
}

/**
 * A document's identity in a multi-document config: the v1alpha1 config has `version` and no
 * `kind`; the others are matched by apiVersion, kind and name.
 */
export function documentKey(doc: YamlMap): string {
  if (doc.kind === undefined) return 'v1alpha1';
  return JSON.stringify([doc.apiVersion ?? null, doc.kind, doc.name ?? null]);
}

export function mergeDocuments(docs: YamlMap[], patchDocs: YamlMap[]): YamlMap[] {
  let out = [...docs];
  for (const patch of patchDocs) {
    const key = documentKey(patch);
    const at = out.findIndex((d) => documentKey(d) === key);
    if (isDelete(patch)) {
      out = out.filter((_, i) => i !== at);
    } else if (at >= 0) {
      out[at] = mergeMaps(out[at] as YamlMap, patch);
    } else {
      out.push(withoutDirective(patch) as YamlMap);
    }
  }
  return out;
}
