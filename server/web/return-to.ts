/**
 * Only local paths may be returned to (after sign-in, after an action): no open redirect. Printable
 * ASCII only, since browsers drop tabs and newlines from URLs ("/\t/evil.example" would become
 * "//evil.example").
 */
export function safeReturnTo(v: unknown): string {
  return typeof v === 'string' && v.length < 1000 && /^\/(?![/\\])[\x21-\x7e]*$/.test(v) ? v : '/';
}
