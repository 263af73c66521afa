import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decidePoll, DEFAULT_POLL_POLICY, type PollState } from '../../device/poll.js';

const base: PollState = {
  status: 'pending',
  expiresAt: 900_000,
  intervalMs: 5_000,
  lastPollAt: null,
  nextPollAt: null,
  lastPollBasic: false,
  lastAnswer: null,
};

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

test('network jitter is tolerated', () => {
  assert.deepEqual(new Set(run([0, 4_100, 8_200, 13_900, 17_000, 21_500].map((at) => ({ at, basic: false })))), new Set(['authorization_pending']));
});

test('one early poll after a slow answer is forgiven (a Go ticker fires right after a late response)', () => {
  assert.deepEqual(new Set(run([0, 5_000, 10_000, 10_400, 15_000, 20_000].map((at) => ({ at, basic: true })))), new Set(['authorization_pending']));
});

test('a client that keeps polling too fast gets slow_down, its twin too, then must keep the new interval', () => {
  const answers = run([
    { at: 0, basic: true },
    { at: 1_000, basic: true }, // early, forgiven once
    { at: 2_000, basic: true }, // persistent: slow_down, interval 10 s
    { at: 2_003, basic: false }, // its twin
    { at: 4_000, basic: true }, // still far too soon
  ]);
  assert.deepEqual(answers, ['authorization_pending', 'authorization_pending', 'slow_down', 'slow_down', 'slow_down']);
  // a Go client adds 5 s after each slow_down: 10 s, then 15 s
  assert.deepEqual(
    run([
      { at: 0, basic: true },
      { at: 1_000, basic: true },
      { at: 2_000, basic: true },
      { at: 12_000, basic: true },
      { at: 22_000, basic: true },
    ]),
    ['authorization_pending', 'authorization_pending', 'slow_down', 'authorization_pending', 'authorization_pending'],
  );
});

test('a steady client a little faster than the interval is caught over time', () => {
  const answers = run(Array.from({ length: 30 }, (_, i) => ({ at: i * 4_000, basic: false })));
  assert.ok(answers.includes('slow_down'));
  assert.equal(answers.slice(0, 5).includes('slow_down'), false, 'not at once');
});

test('a second body-style request after a twin is a poll of its own', () => {
  assert.deepEqual(run([{ at: 0, basic: true }, { at: 2, basic: false }, { at: 4, basic: false }, { at: 6, basic: false }]), [
    'authorization_pending',
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

test('instances whose clocks differ by a few hundred ms: polls alternating between them at the interval never see slow_down', () => {
  // instance B's clock runs 400 ms behind A's: every other poll (and every twin) is stamped by B
  const skew = (i: number) => (i % 2 === 0 ? 0 : -400);
  const polls = [];
  for (let i = 0, t = 0; t < 120_000; t += 5_000, i++) {
    polls.push({ at: t + skew(i), basic: true }, { at: t + 3 + skew(i + 1), basic: false });
  }
  assert.deepEqual(new Set(run(polls)), new Set(['authorization_pending']));
});

test('a twin stamped by a clock behind the first request is still the twin', () => {
  // the Basic poll on A at 10_000, its twin on B whose clock is 300 ms behind
  assert.deepEqual(run([{ at: 5_000, basic: true }, { at: 10_000, basic: true }, { at: 9_705, basic: false }, { at: 9_710, basic: false }]), [
    'authorization_pending',
    'authorization_pending',
    'authorization_pending', // the twin
    'authorization_pending', // a body-style poll of its own, early, forgiven once
  ]);
  // beyond the skew allowance it is no twin: a body request "before" the Basic one is a poll of its own
  const policy = { ...DEFAULT_POLL_POLICY };
  const s = { ...base, lastPollAt: 10_000, nextPollAt: 15_000, lastPollBasic: true, lastAnswer: 'slow_down' };
  assert.equal(decidePoll(s, { now: 10_000 - policy.clockSkewMs - 1, basic: false }, policy).update.lastPollAt, 10_000 - policy.clockSkewMs - 1);
  assert.deepEqual(decidePoll(s, { now: 10_000 - policy.clockSkewMs + 1, basic: false }, policy), { answer: 'slow_down', update: { lastPollBasic: false } });
});
