// X-Talos-Gate-Signature: sha256=<hex of HMAC-SHA256(secret, body)> over the exact bytes sent, the
// form GitHub's X-Hub-Signature-256 uses, so receivers' existing checks fit. docs/notifications.md
// shows the receiver's side.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-talos-gate-signature';

export function signBody(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** A receiver's check: the header as sent against the body as received, in constant time. */
export function verifySignature(secret: string, body: string | Buffer, header: string | undefined): boolean {
  if (header === undefined) return false;
  const expected = Buffer.from(signBody(secret, body));
  const got = Buffer.from(header.trim());
  return got.length === expected.length && timingSafeEqual(got, expected);
}
