import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { test } from 'node:test';
import { generateClientKey } from '../../server/exchange/client-key.js';
import { newEd25519Jwk, newKeyPair } from '../../server/pki/fresh-keys.js';
import { packageRoot } from '../../server/paths.js';

// New keys (server/pki/fresh-keys.ts): working pairs, and made in a way Node 20 cannot deadlock on.

test('newEd25519Jwk and newKeyPair make working, distinct key pairs', () => {
  const data = Buffer.from('talos-gate');
  const a = newEd25519Jwk();
  const b = newEd25519Jwk();
  assert.notEqual(a.d, b.d);
  const priv = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', ...a }, format: 'jwk' });
  assert.equal(createPublicKey(priv).export({ format: 'jwk' }).x, a.x, 'x is the public half of d');
  for (const kind of ['ed25519', 'p256'] as const) {
    const { privateKey, publicKey } = newKeyPair(kind);
    const digest = kind === 'ed25519' ? null : 'sha256';
    assert.ok(verify(digest, data, publicKey, sign(digest, data, privateKey)), kind);
  }
});

test('making client keys under allocation pressure never hangs (Node 20 deadlocked in ExportJWK → GC → ~KeyGenJob)', () => {
  // On Node 20.20, generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }) in a loop like
  // this one stopped for good before 10,000 keys in three runs of three, and this very loop with the
  // gate's former generateClientKey (that pattern) in one run of two (gdb: the main thread waiting on
  // the key's own lock). A child process, so a hang fails the test instead of stalling the runner.
  const script = `
    import { generateClientKey } from ${JSON.stringify(new URL('../../server/exchange/client-key.ts', import.meta.url).href)};
    const garbage = [];
    for (let n = 1; n <= 100000; n++) {
      generateClientKey();
      garbage.push(new Array(50).fill('x' + n));
      if (garbage.length > 2000) garbage.length = 0;
    }
    process.stdout.write('made 100000 keys');
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: packageRoot, encoding: 'utf8', timeout: 90_000 });
  assert.equal(r.signal, null, `the loop did not finish (killed by ${r.signal}): a deadlock\n${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'made 100000 keys');
  assert.ok(generateClientKey().privateKeyPem?.startsWith('-----BEGIN PRIVATE KEY-----'));
});
