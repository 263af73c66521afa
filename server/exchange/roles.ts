import { ruleMatches, type ClaimRule, type Claims } from './claims.js';

export interface RoleRule extends ClaimRule {
  roles: string[];
}

/** Talos roles for an identity: the union of every matching rule's roles, else the default roles. */
export function mapRoles(claims: Claims, rules: RoleRule[], defaults: string[]): string[] {
  const roles = new Set<string>();
  for (const rule of rules) if (ruleMatches(claims, rule)) rule.roles.forEach((r) => roles.add(r));
  const out = roles.size > 0 ? [...roles] : [...defaults];
  return out.sort();
}
