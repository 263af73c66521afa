// Values sealed at rest: what the database keeps of a machine config, a patch, an IdP refresh token
// or a key is AES-256-GCM ciphertext under a key derived from the system secret (secrets.system), so a
// copied database file, a dump or a backup opens no cluster. Ory Hydra encrypts its sensitive
// columns the same way with its system secret, and rotates by listing the new secret first.
//
// A sealed value is text, so it fits the TEXT columns of both backends and is copied between them
// byte for byte (db migrate, db backup):
//
//   sealed:1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>
//
// - version 1: AES-256-GCM (NIST SP 800-38D), a 96-bit random nonce per value, a 128-bit tag. Random
//   nonces are safe under one key for 2^32 values (SP 800-38D §8.3); a gate writes far fewer, and
//   a rotation starts a new key.
// - key id: names the secret that sealed the value (16 hex digits of an HMAC of the secret, which
//   says nothing about it), so rotation knows what to re-seal and a missing secret is named, not
//   guessed at.
// - associated data: the version and key id, then table, column and the row's stable id (never a
//   rowid or anything else that changes between SQLite and PostgreSQL). A value moved to another row
//   or column does not open there; neither does one with a single bit changed.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';

/** Where a sealed value lives: part of what it is bound to. */
export interface SealedAt {
  table: string;
  column: string;
  rowId: string;
}

export type SealedValueProblem = 'not_sealed' | 'malformed' | 'unknown_key' | 'tampered';

/** A stored value that cannot be opened; names the row so an operator can find it. */
export class SealedValueError extends Error {
  constructor(
    readonly problem: SealedValueProblem,
    readonly at: SealedAt,
    readonly keyId?: string,
  ) {
    super(`${at.table}.${at.column} of row ${at.rowId}: ${describeProblem(problem, keyId)}`);
    this.name = 'SealedValueError';
  }
}

export function describeProblem(problem: SealedValueProblem, keyId?: string): string {
  switch (problem) {
    case 'not_sealed':
      return 'stored in plaintext (written before secrets.system was set, or put there by hand): `talos-gate db reencrypt` seals values from before secrets.system';
    case 'malformed':
      return 'not a sealed value the gate can read (cut short or altered)';
    case 'unknown_key':
      return `sealed with a system secret this gate does not have (key id ${keyId ?? '?'}): list that secret in secrets.system (after the new one) until \`talos-gate db reencrypt\` has moved every value`;
    case 'tampered':
      return 'does not authenticate: altered, or moved from another row or column';
  }
}

const PREFIX = 'sealed:1:';
const KEY_ID_HEX = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SEALED = /^sealed:1:([0-9a-f]{16}):([A-Za-z0-9_-]+)$/;

/** Whether a stored value is in the sealed format (of any key), without opening it. */
export function isSealed(value: string): boolean {
  return value.startsWith(PREFIX);
}

/** The key id of a sealed value, read from its first characters only; undefined when not sealed. */
export function keyIdOf(value: string): string | undefined {
  if (!value.startsWith(PREFIX)) return undefined;
  const id = value.slice(PREFIX.length, PREFIX.length + KEY_ID_HEX);
  return /^[0-9a-f]{16}$/.test(id) && value[PREFIX.length + KEY_ID_HEX] === ':' ? id : undefined;
}

/** How many characters of a value keyIdOf needs: what a start-up check reads of each row. */
export const SEALED_HEAD_CHARS = PREFIX.length + KEY_ID_HEX + 1;

/** The public name of a secret: stable, and useless for guessing it. */
export function keyIdFor(secret: string): string {
  return createHmac('sha256', secret).update('talos-gate system secret id').digest('hex').slice(0, KEY_ID_HEX);
}

interface Key {
  id: string;
  key: Buffer;
}

/**
 * Seals and opens values with the system secrets: the first seals, every one opens. Synchronous
 * (node:crypto's AEAD is), so the storage row converters call it directly.
 */
export class SealedBox {
  private readonly keys: Map<string, Key>;
  private readonly primary: Key;

  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('SealedBox needs at least one secret');
    this.keys = new Map();
    for (const s of secrets) {
      const id = keyIdFor(s);
      // HKDF (RFC 5869): the secret may be any text of enough entropy; the AES key is 32 uniform bytes
      const key = Buffer.from(hkdfSync('sha256', s, 'talos-gate', 'sealed-box v1 aes-256-gcm', 32));
      if (!this.keys.has(id)) this.keys.set(id, { id, key });
    }
    this.primary = this.keys.get(keyIdFor(secrets[0] as string)) as Key;
  }

  /** The key id new values are sealed with. */
  get primaryKeyId(): string {
    return this.primary.id;
  }

  /** Key ids this box can open, the primary first. */
  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  canOpen(keyId: string): boolean {
    return this.keys.has(keyId);
  }

  seal(plaintext: string, at: SealedAt): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.primary.key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData(this.primary.id, at));
    const body = Buffer.concat([nonce, cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${PREFIX}${this.primary.id}:${body.toString('base64url')}`;
  }

  open(value: string, at: SealedAt): string {
    if (!isSealed(value)) throw new SealedValueError('not_sealed', at);
    const m = SEALED.exec(value);
    if (!m) throw new SealedValueError('malformed', at);
    const keyId = m[1] as string;
    const key = this.keys.get(keyId);
    if (!key) throw new SealedValueError('unknown_key', at, keyId);
    const body = Buffer.from(m[2] as string, 'base64url');
    if (body.length < NONCE_BYTES + TAG_BYTES) throw new SealedValueError('malformed', at, keyId);
    const decipher = createDecipheriv('aes-256-gcm', key.key, body.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(associatedData(keyId, at));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(body.subarray(NONCE_BYTES, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      // final() throws when the tag does not match: altered bytes, another row's value, another key's
      throw new SealedValueError('tampered', at, keyId);
    }
  }
}

/** NUL-separated: no part can contain NUL (ids and names are text), so no two places share bytes. */
function associatedData(keyId: string, at: SealedAt): Buffer {
  return Buffer.from(`${PREFIX}${keyId}\0${at.table}\0${at.column}\0${at.rowId}`, 'utf8');
}
