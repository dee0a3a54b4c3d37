import { test } from 'node:test';
import assert from 'node:assert/strict';
import { storePoolOption } from '../../src/cli/fleet-node.js';
import { UsageError } from '../../src/cli/errors.js';

// LADDER_STORE_POOL (issue 16): the PostgreSQL store's pool size for `ladder server`; bad input is
// one line naming the variable and the value, before anything starts.
test('LADDER_STORE_POOL: a whole number from 1 to 100, else one clear line', () => {
  assert.deepEqual(storePoolOption({}), {});
  assert.deepEqual(storePoolOption({ LADDER_STORE_POOL: '' }), {});
  assert.deepEqual(storePoolOption({ LADDER_STORE_POOL: '5' }), { poolSize: 5 });
  for (const bad of ['0', '101', 'abc', '2.5', '-1', ' 3']) {
    assert.throws(
      () => storePoolOption({ LADDER_STORE_POOL: bad }),
      (err: unknown) =>
        err instanceof UsageError &&
        err.message.includes('LADDER_STORE_POOL') &&
        err.message.includes(`"${bad}"`) &&
        !err.message.includes('\n'),
      bad,
    );
  }
});
