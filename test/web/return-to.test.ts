import assert from 'node:assert/strict';
import { test } from 'node:test';
import { safeReturnTo } from '../../server/web/return-to.js';

test('after sign-in only local paths are returned to', () => {
  assert.equal(safeReturnTo('/device?user_code=BCDF-GHJK'), '/device?user_code=BCDF-GHJK');
  assert.equal(safeReturnTo('/'), '/');
  for (const evil of ['//evil.example', '/\\evil.example', '/\t/evil.example', '/\n/evil.example', 'https://evil.example', '', undefined, '/ /x', `/${'a'.repeat(1000)}`]) {
    assert.equal(safeReturnTo(evil), '/', JSON.stringify(evil));
  }
});
