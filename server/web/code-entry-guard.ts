import type { Storage } from '../storage/storage.js';

// RFC 8628 §5.1: a user code has ~34 bits (8 characters of a 20-letter alphabet); limit guesses.
// Wrong codes lock the session that typed them (5 within 15 minutes), so one user's typos or
// guesses never lock out the other admins behind the same address; the address as a whole has a
// much higher limit against a guesser who signs in again and again for fresh sessions. With the
// defaults one address gets at most 50 guesses per 15 minutes: with 1,000 codes pending at once,
// the chance that any guess hits one is 50 × 1,000 / 20^8 ≈ 2 × 10^-6 per window.

export interface GuardSettings {
  maxFailuresPerSession: number;
  maxFailuresPerAddress: number;
  windowMs: number;
}

export const DEFAULT_GUARD: GuardSettings = { maxFailuresPerSession: 5, maxFailuresPerAddress: 50, windowMs: 15 * 60_000 };

export class CodeEntryGuard {
  constructor(
    private readonly storage: Storage,
    private readonly now: () => number,
    private readonly settings: GuardSettings = DEFAULT_GUARD,
  ) {}

  private keys(sessionKey: string, ip: string): { key: string; max: number }[] {
    return [
      { key: `session:${sessionKey}`, max: this.settings.maxFailuresPerSession },
      { key: `ip:${ip}`, max: this.settings.maxFailuresPerAddress },
    ];
  }

  /** When entry opens again (ms since epoch), or undefined when it is open now. */
  async lockedUntil(sessionKey: string, ip: string): Promise<number | undefined> {
    const since = this.now() - this.settings.windowMs;
    let until: number | undefined;
    for (const { key, max } of this.keys(sessionKey, ip)) {
      if ((await this.storage.countCodeEntryFailures(key, since)) >= max) {
        const oldest = (await this.storage.oldestCodeEntryFailure(key, since)) ?? this.now();
        until = Math.max(until ?? 0, oldest + this.settings.windowMs);
      }
    }
    return until;
  }

  async recordFailure(sessionKey: string, ip: string): Promise<void> {
    await this.storage.addCodeEntryFailure(this.keys(sessionKey, ip).map((k) => k.key), this.now());
  }
}
