// Reading claims from an ID token for rules: `claim` may name a top-level claim (even one with dots
// in its name, like namespaced claims "https://example.com/groups") or a dotted path into nested
// objects ("realm_access.roles"); the value may be a string, an array, or a space-separated string.

export type Claims = Record<string, unknown>;

export function claimAt(claims: Claims, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let node: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** The values a claim holds, as strings: arrays flattened, strings split on white space. */
export function claimValues(claims: Claims, path: string): string[] {
  const v = claimAt(claims, path);
  if (typeof v === 'string') return v.split(/\s+/).filter(Boolean);
  if (typeof v === 'number' || typeof v === 'boolean') return [String(v)];
  if (Array.isArray(v)) return v.flatMap((x) => (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean' ? [String(x)] : []));
  return [];
}

export interface ClaimRule {
  claim: string;
  value: string;
}

export function ruleMatches(claims: Claims, rule: ClaimRule): boolean {
  return claimValues(claims, rule.claim).includes(rule.value);
}

export function matchesAny(claims: Claims, rules: ClaimRule[]): boolean {
  return rules.some((r) => ruleMatches(claims, r));
}
