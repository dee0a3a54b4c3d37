import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../helpers/cli-run.js';

// LADDER_DNS_CACHE_MS (src/server/names.ts): a bad value stops `ladder server` at start with one
// line naming the variable and the value (exit 2), not a data-plane worker at the first connection.
test('ladder server: a LADDER_DNS_CACHE_MS that is not whole milliseconds is one clear line, exit 2', async () => {
  const r = run(['server', '--password', 'name-cache-env-pw', '--port', '0', '--host', '127.0.0.1'], {
    env: { LADDER_DNS_CACHE_MS: '5s' },
  });
  const stop = setTimeout(() => r.child.kill(), 15_000); // a server that started: the check is missing
  const code = await r.exit;
  clearTimeout(stop);
  assert.equal(code, 2, r.stderr());
  assert.equal(
    r.stderr().trim(),
    'ladder: LADDER_DNS_CACHE_MS: expected whole milliseconds (0 turns the cache off), got "5s"',
  );
});
