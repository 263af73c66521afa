// The system secret test storages and gates seal with: random per process, like a real one.
import { randomBytes } from 'node:crypto';
import { SealedBox } from '../../server/secrets/sealed-box.js';

export function newSystemSecret(): string {
  return randomBytes(32).toString('hex');
}

/** A box with a fresh secret, for storages a test opens itself. */
export function testBox(): SealedBox {
  return new SealedBox([newSystemSecret()]);
}

/** One box for the whole test process, so storages reopened on the same file or database read what was written. */
export const sharedTestBox = testBox();
