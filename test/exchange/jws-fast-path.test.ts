import assert from 'node:assert/strict';
import { generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { createLocalJWKSet, errors, exportJWK, jwtVerify, SignJWT, type JSONWebKeySet, type JWK } from 'jose';
import { ALLOWED_ALGORITHMS } from '../../server/exchange/id-token.js';
import { verifyPlainJws } from '../../server/exchange/jws-fast-path.js';

// The node:crypto path for plain ID tokens: it accepts exactly what jose's jwtVerify accepts with
// the same key set and options, hands everything unusual back to jose (undefined), and throws
// jose's own claim errors.

const issuer = 'https://idp.example.com';
const options = { issuer, audience: ['talos-gate'], clockTolerance: 60, requiredClaims: ['sub', 'exp', 'iat'] };
const now = () => Math.floor(Date.now() / 1000);
const claims = (over: Record<string, unknown> = {}) => ({ iss: issuer, aud: 'talos-gate', sub: 'alice', groups: ['ops'], iat: now(), exp: now() + 300, ...over });

const pairs: { alg: string; privateKey: KeyObject; publicKey: KeyObject }[] = [
  { alg: 'RS256', ...generateKeyPairSync('rsa', { modulusLength: 2048 }) },
  { alg: 'ES256', ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
  { alg: 'ES384', ...generateKeyPairSync('ec', { namedCurve: 'P-384' }) },
  { alg: 'EdDSA', ...generateKeyPairSync('ed25519') },
];
const jwkOf = async (p: { alg: string; publicKey: KeyObject }, extra: Partial<JWK> = {}) => ({ ...(await exportJWK(p.publicKey)), kid: p.alg, alg: p.alg, use: 'sig', ...extra });
const jwks: JSONWebKeySet = { keys: await Promise.all(pairs.map((p) => jwkOf(p))) };
const sign = (p: { alg: string; privateKey: KeyObject }, payload: Record<string, unknown> = claims(), header: Record<string, unknown> = {}) =>
  new SignJWT(payload).setProtectedHeader({ alg: p.alg, kid: p.alg, typ: 'JWT', ...header }).sign(p.privateKey);

for (const p of pairs) {
  test(`${p.alg}: the same claims as jose's jwtVerify`, async () => {
    const token = await sign(p);
    const fast = await verifyPlainJws(token, jwks, ALLOWED_ALGORITHMS, options);
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { ...options, algorithms: ALLOWED_ALGORITHMS });
    assert.deepEqual(fast, payload);
  });
}

test('a bad signature, a tampered payload, an unknown kid or an algorithm not allowed: back to jose', async () => {
  const [rsa, es] = pairs as [(typeof pairs)[number], (typeof pairs)[number]];
  const token = await sign(es);
  const [h, p, s] = token.split('.') as [string, string, string];
  const flipped = Buffer.from(s, 'base64url');
  flipped[5] = (flipped[5] as number) ^ 1;
  assert.equal(await verifyPlainJws(`${h}.${p}.${flipped.toString('base64url')}`, jwks, ALLOWED_ALGORITHMS, options), undefined);
  const other = Buffer.from(JSON.stringify(claims({ groups: ['admins'] }))).toString('base64url');
  assert.equal(await verifyPlainJws(`${h}.${other}.${s}`, jwks, ALLOWED_ALGORITHMS, options), undefined);
  assert.equal(await verifyPlainJws(await sign(es, claims(), { kid: 'nope' }), jwks, ALLOWED_ALGORITHMS, options), undefined);
  assert.equal(await verifyPlainJws(await sign(rsa), jwks, ['ES256'], options), undefined);
  // ES256 signature under an RS256 header: the key of kid RS256 is RSA, and the signature does not fit
  assert.equal(await verifyPlainJws(`${Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'RS256' })).toString('base64url')}.${p}.${s}`, jwks, ALLOWED_ALGORITHMS, options), undefined);
  assert.equal(await verifyPlainJws('hello', jwks, ALLOWED_ALGORITHMS, options), undefined);
  // Node's decoder would skip the '!' and find the right signature; jose calls it malformed
  assert.equal(await verifyPlainJws(`${h}.${p}.${s.slice(0, 10)}!${s.slice(10)}`, jwks, ALLOWED_ALGORITHMS, options), undefined);
  assert.equal(await verifyPlainJws(token, undefined, ALLOWED_ALGORITHMS, options), undefined, 'no cached key set yet');
});

test('headers beyond alg, kid and typ go to jose (crit, b64, jku, …)', async () => {
  const es = pairs[1] as (typeof pairs)[number];
  assert.equal(await verifyPlainJws(await sign(es, claims(), { jku: 'https://evil.example.com/jwks' }), jwks, ALLOWED_ALGORITHMS, options), undefined);
  assert.equal(await verifyPlainJws(await sign(es, claims(), { x5t: 'abc' }), jwks, ALLOWED_ALGORITHMS, options), undefined);
});

test('only the one key jose would pick: two keys with the kid, use enc, another alg, key_ops without verify, a short RSA key', async () => {
  const es = pairs[1] as (typeof pairs)[number];
  const token = await sign(es);
  const base = await jwkOf(es);
  for (const keys of [
    [base, base],
    [{ ...base, use: 'enc' }],
    [{ ...base, alg: 'ES384' }],
    [{ ...base, key_ops: ['encrypt'] }],
  ]) {
    assert.equal(await verifyPlainJws(token, { keys }, ALLOWED_ALGORITHMS, options), undefined, JSON.stringify(keys));
  }
  const short = { alg: 'RS256', ...generateKeyPairSync('rsa', { modulusLength: 1024 }) };
  // jose will not sign with it either: signed here by hand
  const input = `${Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'RS256' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}`;
  const shortToken = `${input}.${nodeSign('sha256', Buffer.from(input), short.privateKey).toString('base64url')}`;
  assert.equal(await verifyPlainJws(shortToken, { keys: [await jwkOf(short)] }, ALLOWED_ALGORITHMS, options), undefined);
});

test('claims are checked by jose, with its errors', async () => {
  const es = pairs[1] as (typeof pairs)[number];
  const check = async (payload: Record<string, unknown>) => verifyPlainJws(await sign(es, payload), jwks, ALLOWED_ALGORITHMS, options);
  await assert.rejects(check(claims({ iat: now() - 7200, exp: now() - 3600 })), errors.JWTExpired);
  await assert.rejects(check(claims({ iss: 'https://evil.example.com' })), (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'iss');
  await assert.rejects(check(claims({ aud: 'other-app' })), (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'aud');
  await assert.rejects(check(claims({ nbf: now() + 3600 })), (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'nbf');
  const { iat: _iat, ...noIat } = claims();
  await assert.rejects(check(noIat), (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'iat');
});
