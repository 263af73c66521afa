// Whether a secret an operator wrote into the config is worth anything. The admin token opens every
// node's machine config (cluster secrets included), so a copied example value or a short word must
// stop the gate at start, with a message that says how to make a real one.

/** Values that ship in examples and tutorials; matched whole or as a part, case-insensitively. */
const PLACEHOLDER_PARTS = ['change-me', 'changeme', 'change_me', 'replace-me', 'replaceme', 'placeholder', 'example', 'your-token', 'your_token', 'secret-here', 'xxxxxxxx'];
const WEAK_WHOLE = new Set(['secret', 'password', 'admin', 'token', 'admin-token', 'talos', 'talos-gate', 'letmein', 'test', 'default']);

/**
 * The estimate below reads 16 random bytes in hex (`openssl rand -hex 16`, 128 real bits) as about
 * 110 bits, since 32 characters rarely use all 16 hex digits evenly; 96 lets that through and keeps
 * out words, short strings and repetition. docs/operations.md and config.example.yaml suggest -hex 32 (about 240 by the estimate).
 */
export const MIN_SECRET_BITS = 96;
export const MIN_SECRET_LENGTH = 24;

export const HOW_TO_MAKE_A_SECRET = 'make one with `openssl rand -hex 32`';

/**
 * A generous estimate of the bits in a string: its length times the Shannon entropy of its own
 * characters (bits per character as they occur in it). Random hex of 64 characters estimates near
 * 240 bits, a 43-character base64 string near 230; "aaaa…" is 0, a sentence of words far below its
 * length. An estimate, not a proof: it only keeps obvious non-secrets out.
 */
export function estimatedBits(s: string): number {
  const counts = new Map<string, number>();
  for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  const n = [...s].length;
  let perChar = 0;
  for (const c of counts.values()) perChar -= (c / n) * Math.log2(c / n);
  return perChar * n;
}

/** Why a secret is not good enough, or undefined when it is. */
export function weakSecretReason(s: string): string | undefined {
  const lower = s.toLowerCase();
  if (WEAK_WHOLE.has(lower) || PLACEHOLDER_PARTS.some((p) => lower.includes(p))) return `is a placeholder, not a secret: ${HOW_TO_MAKE_A_SECRET}`;
  if ([...s].length < MIN_SECRET_LENGTH) return `is too short (at least ${MIN_SECRET_LENGTH} characters): ${HOW_TO_MAKE_A_SECRET}`;
  const bits = Math.floor(estimatedBits(s));
  if (bits < MIN_SECRET_BITS) return `is too weak (about ${bits} bits, at least ${MIN_SECRET_BITS} needed): ${HOW_TO_MAKE_A_SECRET}`;
  return undefined;
}
