// How the gate answers one poll of POST /token for a device code (RFC 8628 §3.5), as a pure
// function of the stored request, the poll and the time.
//
// golang.org/x/oauth2 (what Talos uses) probes the client authentication style on every request
// until one succeeds, so each poll arrives twice, milliseconds apart: first with HTTP Basic, then,
// after any error, again with the credentials in the body. The second request is the "twin": it is
// not a poll of its own, never counts as polling too fast, and is answered as its first request was
// (the client only ever sees the twin's answer).
//
// "Too fast" is judged over time, not between two polls (GCRA, the virtual-scheduling form of a token
// bucket): a client may poll once early, as happens when a slow answer makes a Go ticker fire right
// after it, but one that keeps polling faster than the interval gets slow_down, and the interval
// grows by 5 s, as the RFC says the client will do.
//
// Several instances behind a balancer judge the same request: its state is in the database, but each
// instance stamps a poll with its own clock. Clocks of machines kept by NTP differ by milliseconds;
// `clockSkewMs` allows a few hundred more, on every judgement that compares two stamps: a poll is too
// soon only when it is early by more than the tolerance plus the skew, and a twin may seem to come a
// little before (or later after) its first request. The code's expiry carries 30 s of grace, so
// skew does not matter there.

export interface PollState {
  status: 'pending' | 'approved' | 'denied' | 'consumed';
  expiresAt: number;
  intervalMs: number;
  lastPollAt: number | null;
  /** When the next poll is due at the current interval (GCRA's theoretical arrival time). */
  nextPollAt: number | null;
  lastPollBasic: boolean;
  lastAnswer: string | null;
}

export interface Poll {
  now: number;
  /** Whether this request authenticated with HTTP Basic. */
  basic: boolean;
}

export type PollAnswer = 'grant' | 'authorization_pending' | 'slow_down' | 'access_denied' | 'expired_token' | 'invalid_grant';

export interface PollDecision {
  answer: PollAnswer;
  /** Fields of the stored request to change; empty when nothing changes. */
  update: Partial<Pick<PollState, 'intervalMs' | 'lastPollAt' | 'nextPollAt' | 'lastPollBasic' | 'lastAnswer'>>;
}

export interface PollPolicy {
  /** How long past expires_in a pending request still answers authorization_pending. */
  expiryGraceMs: number;
  /** A body-credentials request this soon after a Basic one is the same poll's twin. */
  twinWindowMs: number;
  /** How far ahead of its schedule a poll may come, in intervals (1.2: one early poll plus jitter). */
  earlyTolerance: number;
  /** How far apart the clocks of two instances may be (a poll stamped by one, its twin by the other). */
  clockSkewMs: number;
}

export const DEFAULT_POLL_POLICY: PollPolicy = { expiryGraceMs: 30_000, twinWindowMs: 2_000, earlyTolerance: 1.2, clockSkewMs: 500 };

export const SLOW_DOWN_STEP_MS = 5_000;

export function decidePoll(state: PollState, poll: Poll, policy: PollPolicy = DEFAULT_POLL_POLICY): PollDecision {
  if (state.status === 'consumed') return { answer: 'invalid_grant', update: {} };
  if (state.status === 'denied') return { answer: 'access_denied', update: {} };
  if (poll.now > state.expiresAt + policy.expiryGraceMs) return { answer: 'expired_token', update: {} };
  if (state.status === 'approved') return { answer: 'grant', update: {} };

  // stamped by two clocks, the time since the first request may even look negative
  const sinceLast = state.lastPollAt === null ? null : poll.now - state.lastPollAt;
  const isTwin =
    !poll.basic &&
    state.lastPollBasic &&
    sinceLast !== null &&
    sinceLast >= -policy.clockSkewMs &&
    sinceLast <= policy.twinWindowMs + policy.clockSkewMs;
  if (isTwin) {
    const answer = state.lastAnswer === 'slow_down' ? 'slow_down' : 'authorization_pending';
    // The twin closes this poll: a further body-style request is a poll of its own.
    return { answer, update: { lastPollBasic: false } };
  }

  const due = state.nextPollAt;
  const tooSoon = due !== null && poll.now < due - state.intervalMs * policy.earlyTolerance - policy.clockSkewMs;
  if (tooSoon) {
    const intervalMs = state.intervalMs + SLOW_DOWN_STEP_MS;
    // after slow_down the next poll must keep (nearly) the whole new interval: no early credit left
    const nextPollAt = poll.now + intervalMs * (policy.earlyTolerance + 0.8);
    return {
      answer: 'slow_down',
      update: { intervalMs, lastPollAt: poll.now, nextPollAt, lastPollBasic: poll.basic, lastAnswer: 'slow_down' },
    };
  }
  return {
    answer: 'authorization_pending',
    update: {
      lastPollAt: poll.now,
      nextPollAt: Math.max(due ?? poll.now, poll.now) + state.intervalMs,
      lastPollBasic: poll.basic,
      lastAnswer: 'authorization_pending',
    },
  };
}
