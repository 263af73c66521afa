import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { newKeyPair } from '../pki/fresh-keys.js';
import type { SigningKeyRecord, Storage } from '../storage/storage.js';

// The gate-token signing keys and their rotation (docs/ha.md, "Signing keys"). Keys live in the
// database (gate_signing_keys) on both backends, so every process and instance of one gate signs and
// verifies with the same ones. A key's life:
//   created    published at /.well-known/jwks.json and accepted, not yet signing;
//   activates  PUBLISH_BEFORE_SIGNING_MS later it signs (the newest key activated signs), by then
//              every instance has reloaded its ring (RING_REFRESH_MS) and publishes it too;
//   retired    once the next key has signed for longer than a token lives (access_token_ttl) plus
//              the ring's staleness and a clock skew, no token it signed can still be valid: deleted.
// Rotation: automatic when the signer is ROTATE_AFTER old (the maintenance round, on one instance
// at a time), or `talos-gate keys rotate` (--now: signs at once, after a leak).

const MINUTE = 60_000;
const DAY = 86_400_000;

/** How stale an instance's copy of the keys may be; after this it reads them again when used. */
export const RING_REFRESH_MS = 10_000;
/**
 * A new key is published this long before it signs: longer than every instance's RING_REFRESH_MS
 * plus the JWKS response's Cache-Control max-age (300 s, routes/oauth.ts), so whoever verifies gate
 * tokens with the published keys has the new one before the first token it signed.
 */
export const PUBLISH_BEFORE_SIGNING_MS = 6 * MINUTE;
/** The signer is replaced when it is this old. */
export const ROTATE_AFTER_MS = 30 * DAY;
/** Clock differences between instances that retirement allows for. */
const CLOCK_SKEW_MS = 5 * MINUTE;

/** A key as the ring uses it: parsed once. */
export interface LoadedKey {
  kid: string;
  createdAt: number;
  activatesAt: number;
  privateKey: KeyObject;
  publicKey: KeyObject;
  jwk: JWK;
}

export async function loadKey(r: SigningKeyRecord): Promise<LoadedKey> {
  const privateKey = createPrivateKey({ key: r.privateKey, format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(privateKey);
  const jwk = await exportJWK(publicKey);
  return { kid: r.kid, createdAt: r.createdAt, activatesAt: r.activatesAt, privateKey, publicKey, jwk: { ...jwk, kid: r.kid, alg: 'EdDSA', use: 'sig' } };
}

/** An Ed25519 key as stored; its kid is its JWK thumbprint (RFC 7638). */
export async function newSigningKey(createdAt: number, activatesAt: number, key?: KeyObject): Promise<SigningKeyRecord> {
  const privateKey = key ?? newKeyPair('ed25519').privateKey;
  const kid = await calculateJwkThumbprint(await exportJWK(createPublicKey(privateKey)));
  return { kid, privateKey: privateKey.export({ type: 'pkcs8', format: 'der' }), createdAt, activatesAt };
}

/** The key that signs at `now`: the one activated last; before any has activated, the first to activate. */
export function signerOf<K extends { activatesAt: number; createdAt: number }>(keys: K[], now: number): K | undefined {
  const byActivation = [...keys].sort((a, b) => a.activatesAt - b.activatesAt || a.createdAt - b.createdAt);
  return byActivation.filter((k) => k.activatesAt <= now).at(-1) ?? byActivation[0];
}

/** Keys no valid token can be signed with any more: a later key has signed for longer than the overlap. */
export function retiredKeys<K extends { activatesAt: number }>(keys: K[], now: number, accessTokenTtlMs: number): K[] {
  const overlap = accessTokenTtlMs + RING_REFRESH_MS + CLOCK_SKEW_MS;
  return keys.filter((k) => keys.some((j) => j.activatesAt > k.activatesAt && j.activatesAt + overlap <= now));
}

/**
 * The first key, when there is none: the SQLite gate's former data_dir/gate-signing-key.pem when it
 * is there (tokens it signed stay valid), else a new one. Of instances starting at once, one key is kept.
 */
export async function ensureSigningKey(storage: Storage, dataDir: string, now: number): Promise<void> {
  if ((await storage.listSigningKeys()).length > 0) return;
  const legacy = join(dataDir, 'gate-signing-key.pem');
  const key = existsSync(legacy) ? createPrivateKey(readFileSync(legacy, 'utf8')) : undefined;
  // unlessCreatedAfter -Infinity: added only while there is no key at all
  await storage.addSigningKey(await newSigningKey(now, now, key), -Infinity);
}

/**
 * A new key. `immediately`: it signs at once (a leaked key: instances that have not read it yet
 * still sign with the old one for up to RING_REFRESH_MS; retire the leaked one with `keys retire`);
 * else it is published first and signs PUBLISH_BEFORE_SIGNING_MS later. `unlessCreatedAfter`: none
 * is added when a key was made after then (instances rotating by age at the same moment add one).
 */
export async function rotateSigningKey(storage: Storage, now: number, opts: { immediately?: boolean; unlessCreatedAfter?: number } = {}): Promise<SigningKeyRecord | undefined> {
  const key = await newSigningKey(now, opts.immediately ? now : now + PUBLISH_BEFORE_SIGNING_MS);
  return (await storage.addSigningKey(key, opts.unlessCreatedAfter ?? now)) ? key : undefined;
}

/** The maintenance round's part: a new key when the signer is ROTATE_AFTER_MS old, then retired keys deleted. */
export async function maintainSigningKeys(storage: Storage, now: number, accessTokenTtlMs: number): Promise<{ rotated?: string; retired: string[] }> {
  let keys = await storage.listSigningKeys();
  const signer = signerOf(keys, now);
  let rotated: string | undefined;
  if (signer && now - signer.activatesAt >= ROTATE_AFTER_MS) {
    rotated = (await rotateSigningKey(storage, now, { unlessCreatedAfter: now - ROTATE_AFTER_MS }))?.kid;
    keys = await storage.listSigningKeys();
  }
  const retired: string[] = [];
  for (const k of retiredKeys(keys, now, accessTokenTtlMs)) if (await storage.deleteSigningKey(k.kid)) retired.push(k.kid);
  return { ...(rotated ? { rotated } : {}), retired };
}
