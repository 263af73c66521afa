import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decidePoll, DEFAULT_POLL_POLICY, type PollState } from '../../device/poll.js';

const base: PollState = { status: 'pending', expiresAt: 900_000, intervalMs: 5_000, lastPollAt: null, lastPollBasic: false, lastAnswer: null };

/** Runs polls through decidePoll as the store would, returning each answer. */
function run(polls: { at: number; basic: boolean }[], state: PollState = base): string[] {
  let s = { ...state };
  return polls.map((p) => {
    const d = decidePoll(s, { now: p.at, basic: p.basic });
    s = { ...s, ...d.update };
    return d.answer;
  });
}

test('golang.org/x/oauth2 twins at the interval never see slow_down', () => {
  const polls = [];
  for (let t = 0; t < 60_000; t += 5_000) polls.push({ at: t, basic: true }, { at: t + 3, basic: false });
  assert.deepEqual(new Set(run(polls)), new Set(['authorization_pending']));
});

test('network jitter of a fifth of the interval is tolerated', () => {
  assert.deepEqual(run([{ at: 0, basic: false }, { at: 4_100, basic: false }, { at: 8_200, basic: false }]), [
    'authorization_pending',
    'authorization_pending',
    'authorization_pending',
  ]);
});

test('a client polling too fast gets slow_down, its twin too, and the interval grows by 5 s', () => {
  const answers = run([
    { at: 0, basic: true },
    { at: 2, basic: false },
    { at: 1_000, basic: true },
    { at: 1_003, basic: false },
    { at: 6_000, basic: true }, // 5 s after the slow_down, but the interval is now 10 s: 15 s from here
    { at: 21_000, basic: true }, // what a Go client does: the ticker at the grown interval
    { at: 36_000, basic: true },
  ]);
  assert.deepEqual(answers, [
    'authorization_pending',
    'authorization_pending',
    'slow_down',
    'slow_down',
    'slow_down',
    'authorization_pending',
    'authorization_pending',
  ]);
});

test('a second body-style request after a twin is a poll of its own', () => {
  assert.deepEqual(run([{ at: 0, basic: true }, { at: 2, basic: false }, { at: 4, basic: false }]), [
    'authorization_pending',
    'authorization_pending',
    'slow_down',
  ]);
});

test('decisions: approved grants, denied and used codes end the flow, expiry has a grace', () => {
  assert.equal(decidePoll({ ...base, status: 'approved', lastPollAt: 0 }, { now: 1, basic: false }).answer, 'grant');
  assert.equal(decidePoll({ ...base, status: 'denied' }, { now: 1, basic: true }).answer, 'access_denied');
  assert.equal(decidePoll({ ...base, status: 'consumed' }, { now: 1, basic: true }).answer, 'invalid_grant');
  const grace = DEFAULT_POLL_POLICY.expiryGraceMs;
  assert.equal(decidePoll(base, { now: base.expiresAt + grace - 1, basic: true }).answer, 'authorization_pending');
  assert.equal(decidePoll(base, { now: base.expiresAt + grace + 1, basic: true }).answer, 'expired_token');
  assert.equal(decidePoll({ ...base, status: 'approved' }, { now: base.expiresAt + 1, basic: true }).answer, 'grant');
});
