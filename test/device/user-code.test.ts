import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatUserCode, generateUserCode, normalizeUserCode, USER_CODE_ALPHABET } from '../../device/user-code.js';

test('user codes are 8 letters of the base-20 alphabet, shown XXXX-XXXX', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const c = generateUserCode();
    assert.match(c, /^[BCDFGHJKLMNPQRSTVWXZ]{8}$/);
    seen.add(c);
  }
  assert.ok(seen.size > 1990, 'codes do not repeat in a small sample');
  const letters = new Set([...seen].join(''));
  assert.equal(letters.size, USER_CODE_ALPHABET.length, 'every letter of the alphabet is used');
  assert.equal(formatUserCode('BCDFGHJK'), 'BCDF-GHJK');
});

test('entry is case-insensitive and ignores dashes and spaces', () => {
  assert.equal(normalizeUserCode('bcdf-ghjk'), 'BCDFGHJK');
  assert.equal(normalizeUserCode(' BCDF GHJK '), 'BCDFGHJK');
  assert.equal(normalizeUserCode('bc-df-gh-jk'), 'BCDFGHJK');
  assert.equal(normalizeUserCode('BCDF-GHJ'), undefined, 'too short');
  assert.equal(normalizeUserCode('ABCD-EFGH'), undefined, 'vowels are not in the alphabet');
  assert.equal(normalizeUserCode("BCDF-GHJK' OR 1=1"), undefined);
});
