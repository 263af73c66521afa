import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, loadConfig } from '../../server/config/load.js';
import { keyIdFor, keyIdOf, SealedBox, SealedValueError } from '../../server/secrets/sealed-box.js';
import { newSystemSecret } from '../helpers/sealing.js';

const at = { table: 'nodes', column: 'config', rowId: 'node-a' };

test('a sealed value opens with any listed secret, at its own row and column only; the first secret seals', () => {
  const [a, b] = [newSystemSecret(), newSystemSecret()];
  const old = new SealedBox([a]);
  const sealed = old.seal('machine:\n  token: s3cr3t\n', at);
  assert.match(sealed, /^sealed:1:[0-9a-f]{16}:[A-Za-z0-9_-]+$/);
  assert.doesNotMatch(sealed, /s3cr3t/);
  assert.notEqual(old.seal('x', at), old.seal('x', at), 'a fresh nonce per value');
  const rotated = new SealedBox([b, a]);
  assert.equal(rotated.open(sealed, at), 'machine:\n  token: s3cr3t\n');
  assert.equal(keyIdOf(rotated.seal('x', at)), keyIdFor(b));
  assert.equal(keyIdOf(sealed), keyIdFor(a));
  for (const other of [{ ...at, rowId: 'node-b' }, { ...at, column: 'patches' }, { ...at, table: 'operator_grants' }]) {
    assert.throws(() => old.open(sealed, other), (e: unknown) => e instanceof SealedValueError && e.problem === 'tampered');
  }
  assert.throws(() => new SealedBox([b]).open(sealed, at), (e: unknown) => e instanceof SealedValueError && e.problem === 'unknown_key' && e.keyId === keyIdFor(a));
  assert.throws(() => old.open('machine: plain', at), (e: unknown) => e instanceof SealedValueError && e.problem === 'not_sealed');
  assert.throws(() => old.open(`${sealed.slice(0, 30)}`, at), SealedValueError);
});

test('every single bit flipped in a sealed value is refused', () => {
  const box = new SealedBox([newSystemSecret()]);
  const sealed = box.seal('cluster secret', at);
  const head = sealed.slice(0, sealed.lastIndexOf(':') + 1);
  const body = Buffer.from(sealed.slice(head.length), 'base64url');
  for (let bit = 0; bit < body.length * 8; bit++) {
    const flipped = Buffer.from(body);
    flipped[bit >> 3] = (flipped[bit >> 3] as number) ^ (1 << (bit & 7));
    assert.throws(() => box.open(head + flipped.toString('base64url'), at), SealedValueError, `bit ${bit}`);
  }
});

test('secrets.system: weak or placeholder secrets, a file open to others, or both keys are refused, naming the key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-gate-secrets-'));
  const cfg = (secrets: unknown) => {
    const f = join(dir, `c${Math.random()}.yaml`);
    writeFileSync(f, stringify({ secrets }));
    return f;
  };
  const refused = (file: string, re: RegExp, env: NodeJS.ProcessEnv = {}) =>
    assert.throws(() => loadConfig(file, env), (e: unknown) => e instanceof ConfigError && re.test(e.message));
  refused(cfg({ system: ['change-me-please-change-me-please'] }), /secrets\.system\[0\]: is a placeholder/);
  refused(cfg({ system: [newSystemSecret(), 'short'] }), /secrets\.system\[1\]: is too short/);
  const s = newSystemSecret();
  refused(cfg({ system: [s, s] }), /secrets\.system\[1\]: is listed twice/);
  const file = join(dir, 'system-secret');
  writeFileSync(file, `# new first\n${newSystemSecret()}\n\n${s}\n`, { mode: 0o644 });
  chmodSync(file, 0o644);
  refused(cfg({ system_file: file }), /secrets\.system_file: \S+ is readable or writable by others \(mode 0644\): chmod 600/);
  chmodSync(file, 0o600);
  assert.equal(loadConfig(cfg({ system_file: file }), {}).secrets.system[1], s);
  refused(cfg({ system: [s], system_file: file }), /not both/);
  // from the environment, "new,old"
  const fromEnv = loadConfig(cfg({}), { TALOS_GATE_SECRETS_SYSTEM: `${newSystemSecret()}, ${s}` });
  assert.equal(fromEnv.secrets.system.length, 2);
  assert.equal(fromEnv.secrets.system[1], s);
  refused(cfg({}), /environment variable TALOS_GATE_SECRETS_SYSTEM: secrets\.system\[0\]: is too weak/, { TALOS_GATE_SECRETS_SYSTEM: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' });
});
