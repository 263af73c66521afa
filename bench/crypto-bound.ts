import { createPublicKey, randomBytes, sign } from 'node:crypto';
import { newEd25519Jwk, newKeyPair } from '../server/pki/fresh-keys.js';
import { importJWK, jwtVerify, type JWK } from 'jose';

// The machine's raw rate for one exchange's cryptography on one core: verify the ID token, make an
// Ed25519 key (only when the gate generates it), and sign a TBSCertificate of the real size.

export interface CryptoBound {
  jwt_verify_per_s: Record<string, number>;
  ed25519_keygen_per_s: number;
  ed25519_sign_per_s: number;
  /** Exchanges per second one core could do if it did nothing but this cryptography. */
  exchange_bound_per_core: Record<string, number>;
}

async function rate(fn: () => unknown | Promise<unknown>, ms = 1000): Promise<number> {
  const end = performance.now() + ms;
  let n = 0;
  const start = performance.now();
  while (performance.now() < end) {
    await fn();
    n++;
  }
  return n / ((performance.now() - start) / 1000);
}

export async function cryptoBound(tokens: { alg: 'RS256' | 'ES256'; token: string; jwk: JWK }[], tbsBytes: number, ms: number): Promise<CryptoBound> {
  const jwt: Record<string, number> = {};
  for (const t of tokens) {
    const key = await importJWK(t.jwk, t.alg);
    jwt[t.alg] = Math.round(await rate(() => jwtVerify(t.token, key), ms));
  }
  const keygen = Math.round(await rate(() => newEd25519Jwk(), ms)); // as the gate makes a client key
  const { privateKey } = newKeyPair('ed25519');
  createPublicKey(privateKey);
  const tbs = randomBytes(tbsBytes);
  const signs = Math.round(await rate(() => sign(null, tbs, privateKey), ms));
  const bound: Record<string, number> = {};
  for (const [alg, v] of Object.entries(jwt)) {
    bound[`${alg}, client key`] = Math.round(1 / (1 / v + 1 / signs));
    bound[`${alg}, server key`] = Math.round(1 / (1 / v + 1 / signs + 1 / keygen));
  }
  return { jwt_verify_per_s: jwt, ed25519_keygen_per_s: keygen, ed25519_sign_per_s: signs, exchange_bound_per_core: bound };
}
