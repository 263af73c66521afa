// The one place where a shared secret's bytes become what the database stores, and back: the
// instance secrets (instance-secrets.ts) and the gate-token signing keys (operators/gate-tokens.ts)
// go through these two functions and nothing else reads or writes the stored bytes.
//
// Today the stored form is the secret itself: the database is as sensitive as data_dir (docs/ha.md).
// Encryption at rest (issue 16) wraps them here, e.g. AES-256-GCM with a key from outside the
// database: seal() returns nonce ‖ ciphertext ‖ tag, open() checks and unwraps it.

/** The stored form of a secret. */
export function sealSecret(plain: Buffer): Buffer {
  return Buffer.from(plain);
}

/** The secret from its stored form; throws when the stored bytes are not a sealed secret. */
export function openSecret(stored: Buffer): Buffer {
  return Buffer.from(stored);
}
