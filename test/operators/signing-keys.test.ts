import { sharedTestBox } from '../helpers/sealing.js';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK } from 'jose';
import { GateTokenSigner } from '../../server/operators/gate-tokens.js';
import { ensureSigningKey, maintainSigningKeys, PUBLISH_BEFORE_SIGNING_MS, RING_REFRESH_MS, ROTATE_AFTER_MS, rotateSigningKey, signerOf } from '../../server/operators/signing-keys.js';
import { openSqliteStorage } from '../../server/storage/sqlite/index.js';

// The life of a gate-token signing key on a clock the test moves: published, signing, verifying
// after its successor took over, retired once no token it signed can be valid.

const MINUTE = 60_000;
const TTL = 10 * MINUTE;

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-keys-'));
  const storage = openSqliteStorage(join(dir, 'db.sqlite'), { cipher: sharedTestBox });
  let t = 1_800_000_000_000;
  const clock = { now: () => t, advance: (ms: number) => void (t += ms) };
  return { dir, storage, clock };
}

test('rotation by age: published first, signing later, the old key retired after its tokens expired', async () => {
  const { dir, storage, clock } = setup();
  const signer = await GateTokenSigner.open(storage, dir, 'https://gate.test', clock.now);
  const first = await signer.signingKid();
  const old = await signer.sign({ sub: 'ada', gid: 'g1' }, TTL, clock.now());

  clock.advance(ROTATE_AFTER_MS - MINUTE);
  assert.deepEqual(await maintainSigningKeys(storage, clock.now(), TTL), { retired: [] }, 'not yet due');
  clock.advance(MINUTE);
  const { rotated } = await maintainSigningKeys(storage, clock.now(), TTL);
  assert.ok(rotated && rotated !== first);
  assert.equal((await maintainSigningKeys(storage, clock.now(), TTL)).rotated, undefined, 'one new key, not one per round');

  clock.advance(RING_REFRESH_MS);
  assert.deepEqual((await signer.jwks()).keys.map((k) => k.kid).sort(), [first, rotated].sort(), 'published at once');
  assert.equal(await signer.signingKid(), first, 'the old key still signs while the new one is only published');
  clock.advance(PUBLISH_BEFORE_SIGNING_MS);
  const fresh = await signer.sign({ sub: 'ada', gid: 'g1' }, TTL, clock.now());
  assert.equal(decodeProtectedHeader(fresh).kid, rotated, 'then the new one signs');

  // the old key's last tokens live TTL more; it stays until then (with the ring's staleness and clock skew)
  clock.advance(TTL);
  assert.deepEqual((await maintainSigningKeys(storage, clock.now(), TTL)).retired, [], 'kept while its tokens may be valid');
  clock.advance(RING_REFRESH_MS + 5 * MINUTE);
  assert.deepEqual((await maintainSigningKeys(storage, clock.now(), TTL)).retired, [first]);
  clock.advance(RING_REFRESH_MS);
  assert.deepEqual((await signer.jwks()).keys.map((k) => k.kid), [rotated]);
  await assert.rejects(signer.verify(old), /kid/, 'a token of a retired key is refused');
  await storage.close();
});

test('a token of a key another process made is verified at once (the ring reads the keys again on an unknown kid)', async () => {
  const { dir, storage, clock } = setup();
  const one = await GateTokenSigner.open(storage, dir, 'https://gate.test', clock.now);
  const other = await GateTokenSigner.open(storage, dir, 'https://gate.test', clock.now);
  assert.equal(await one.signingKid(), await other.signingKid(), 'the first key is made once');
  await rotateSigningKey(storage, clock.now(), { immediately: true });
  await other.reload();
  const token = await other.sign({ sub: 'ada', gid: 'g1' }, TTL, clock.now());
  clock.advance(2000); // no refresh by age yet (10 s), but past the unknown-kid pause
  assert.equal((await one.verify(token)).sub, 'ada');
  await storage.close();
});

test('the SQLite gate keeps its data_dir/gate-signing-key.pem as the first key: tokens it signed stay valid', async () => {
  const { dir, storage, clock } = setup();
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'gate-signing-key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await ensureSigningKey(storage, dir, clock.now());
  await ensureSigningKey(storage, dir, clock.now());
  const keys = await storage.listSigningKeys();
  assert.equal(keys.length, 1);
  const signer = await GateTokenSigner.open(storage, dir, 'https://gate.test', clock.now);
  assert.equal(await signer.signingKid(), await calculateJwkThumbprint(await exportJWK(privateKey)));
  assert.equal(signerOf(keys, clock.now())?.kid, keys[0]?.kid);
  await storage.close();
});

test('isOurs: the gate\'s own tokens, by issuer; ID tokens of an IdP (RS256, ES256, or EdDSA from another issuer) are not', async () => {
  const { dir, storage, clock } = setup();
  const signer = await GateTokenSigner.open(storage, dir, 'https://gate.test', clock.now);
  assert.ok(signer.isOurs(await signer.sign({ sub: 'ada', gid: 'g1' }, TTL, clock.now())));
  const { SignJWT } = await import('jose');
  const foreign = async (alg: string, type: 'rsa' | 'ec' | 'ed25519', iss: string, header: Record<string, string> = {}) => {
    const { privateKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
    return new SignJWT({ sub: 'ada' }).setProtectedHeader({ alg, kid: 'idp-key', ...header }).setIssuer(iss).sign(privateKey);
  };
  assert.equal(signer.isOurs(await foreign('RS256', 'rsa', 'https://idp.test')), false);
  assert.equal(signer.isOurs(await foreign('ES256', 'ec', 'https://idp.test')), false);
  assert.equal(signer.isOurs(await foreign('EdDSA', 'ed25519', 'https://idp.test', { typ: 'at+jwt' })), false, 'same header shape, another issuer');
  // a token naming the gate as issuer under another header is refused by the IdP's checks, not taken for ours
  assert.equal(signer.isOurs(await foreign('ES256', 'ec', 'https://gate.test')), false);
  assert.equal(signer.isOurs('not.a.token'), false);
  await storage.close();
});
