import type { Storage } from '../storage/storage.js';

// RFC 8628 §5.1: a user code has ~34 bits; limit guesses. After `maxFailures` wrong codes from one
// session or one IP address within `windowMs`, entry is refused until the window has passed.

export interface GuardSettings {
  maxFailures: number;
  windowMs: number;
}

export const DEFAULT_GUARD: GuardSettings = { maxFailures: 5, windowMs: 15 * 60_000 };

export class CodeEntryGuard {
  constructor(
    private readonly storage: Storage,
    private readonly now: () => number,
    private readonly settings: GuardSettings = DEFAULT_GUARD,
  ) {}

  private keys(sessionKey: string, ip: string): string[] {
    return [`session:${sessionKey}`, `ip:${ip}`];
  }

  /** When entry opens again (ms since epoch), or undefined when it is open now. */
  lockedUntil(sessionKey: string, ip: string): number | undefined {
    const since = this.now() - this.settings.windowMs;
    let until: number | undefined;
    for (const key of this.keys(sessionKey, ip)) {
      if (this.storage.countCodeEntryFailures(key, since) >= this.settings.maxFailures) {
        const oldest = this.storage.oldestCodeEntryFailure(key, since) ?? this.now();
        until = Math.max(until ?? 0, oldest + this.settings.windowMs);
      }
    }
    return until;
  }

  recordFailure(sessionKey: string, ip: string): void {
    this.storage.addCodeEntryFailure(this.keys(sessionKey, ip), this.now());
  }
}
