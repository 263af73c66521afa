import { OAuthError } from './errors.js';

/**
 * A form-encoded body as single values. RFC 6749 §3.1: a parameter sent more than once is an
 * invalid request, so duplicates are refused rather than guessed at.
 */
export function singleValues(body: unknown): Map<string, string> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new OAuthError('invalid_request', 'expected an application/x-www-form-urlencoded body');
  }
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (Array.isArray(v)) throw new OAuthError('invalid_request', `parameter ${k} was sent more than once`);
    if (typeof v !== 'string') throw new OAuthError('invalid_request', `parameter ${k} is not a string`);
    out.set(k, v);
  }
  return out;
}

/** Printable text without control characters, of bounded length; for values shown to people. */
export function checkText(name: string, v: string, max: number): string {
  if (v.length > max) throw new OAuthError('invalid_request', `${name} is longer than ${max} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(v)) throw new OAuthError('invalid_request', `${name} contains control characters`);
  return v;
}
