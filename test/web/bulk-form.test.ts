import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '../../server/api-error.js';
import { parseBulkForm } from '../../server/web/bulk-form.js';

// The dashboard's bulk form as @fastify/formbody hands it over: a string for one ticked box, an
// array for several, nothing for none.

const refused = (re: RegExp) => (e: unknown) => e instanceof ApiError && e.error === 'invalid_request' && re.test(e.description);

test('one box, several boxes, by code or by id, with the profile and template of an approval', () => {
  assert.deepEqual(parseBulkForm({ decision: 'deny', node_id: 'n1' }), { decision: 'deny', targets: { nodeIds: ['n1'] } });
  assert.deepEqual(parseBulkForm({ decision: 'approve', user_code: ['BCDF-GHJK', ' KLMN-PQRS '], profile: 'worker', hostname_template: '' }), {
    decision: 'approve',
    targets: { userCodes: ['BCDF-GHJK', 'KLMN-PQRS'] },
    approval: { profile: 'worker', hostnameTemplate: undefined },
  });
  assert.deepEqual(parseBulkForm({ decision: 'approve', user_code: 'BCDF-GHJK', hostname_template: 'w-{{index}}' }), {
    decision: 'approve',
    targets: { userCodes: ['BCDF-GHJK'] },
    approval: { profile: undefined, hostnameTemplate: 'w-{{index}}' },
  });
});

test('what our form never sends is refused as a client mistake', () => {
  assert.throws(() => parseBulkForm(undefined), refused(/Approve or Deny/));
  assert.throws(() => parseBulkForm({ decision: 'forget', node_id: 'n1' }), refused(/Approve or Deny/));
  assert.throws(() => parseBulkForm({ decision: ['approve', 'deny'], node_id: 'n1' }), refused(/twice/));
  assert.throws(() => parseBulkForm({ decision: 'deny' }), refused(/at least one/));
  assert.throws(() => parseBulkForm({ decision: 'deny', node_id: ['', ' '] }), refused(/at least one/));
  assert.throws(() => parseBulkForm({ decision: 'deny', node_id: 'n1', user_code: 'BCDF-GHJK' }), refused(/not both/));
  assert.throws(() => parseBulkForm({ decision: 'approve', node_id: 'n1', profile: ['a', 'b'] }), refused(/profile is given twice/));
  assert.throws(() => parseBulkForm({ decision: 'deny', node_id: { a: 1 } }), refused(/must be text/));
});
