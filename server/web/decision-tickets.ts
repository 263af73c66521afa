import { createHmac, timingSafeEqual } from 'node:crypto';

// A decision on /device/decision is taken only for a request this very session looked up on
// /device (security review #6). The confirm page carries a ticket: an HMAC over the session and the
// request it shows, under a key only the gate knows. Without one, a signed-in user could post guesses
// at user codes straight to the decision and learn from 403/404 which exist, or deny (or approve as
// themselves) other people's codes, past the lockout that guards code entry. Tickets need no storage
// and die with the session or the request; they are worth nothing to another session.

export class DecisionTickets {
  private readonly key: Buffer;

  constructor(secret: string) {
    // a key of its own, derived from the gate's cookie secret: a ticket is never a valid cookie signature
    this.key = createHmac('sha256', secret).update('talos-gate device decision tickets v1').digest();
  }

  issue(sessionIdHash: string, requestId: number | string): string {
    return createHmac('sha256', this.key).update(`${sessionIdHash}\0${requestId}`).digest('base64url');
  }

  verify(ticket: unknown, sessionIdHash: string, requestId: number | string): boolean {
    if (typeof ticket !== 'string' || ticket.length > 100) return false;
    const want = Buffer.from(this.issue(sessionIdHash, requestId));
    const got = Buffer.from(ticket);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}
