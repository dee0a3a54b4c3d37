/**
 * How a banner names a PostgreSQL store: never with its password; in the commands it suggests
 * (`--store "…"`) with a visible PASSWORD placeholder a person replaces, not the URL encoding
 * of "…" (%E2%80%A6), which pasted back was taken for the password and refused as a login.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeStore, storeFlags, withoutPassword } from '../../src/cli/banner-text.js';
import { parseStoreLocation } from '../../src/store/index.js';

const URL_WITH_SECRET = 'postgres://ladder:s3cr%40t@127.0.0.1:55410/fleet?sslmode=disable';

test('the password never shows; commands carry PASSWORD, descriptions an ellipsis', () => {
  const loc = parseStoreLocation(URL_WITH_SECRET, '/tmp/d');
  const flags = storeFlags(loc, '/tmp/d', true);
  assert.equal(
    flags,
    ' --data-dir "/tmp/d" --store "postgres://ladder:PASSWORD@127.0.0.1:55410/fleet?sslmode=disable"',
  );
  const described = describeStore(loc, '/tmp/d');
  assert.match(described, /^postgres:\/\/ladder:…@127\.0\.0\.1:55410\/fleet/);
  for (const s of [flags, described]) {
    assert.doesNotMatch(s, /s3cr/);
    assert.doesNotMatch(s, /%E2%80%A6/);
  }
  assert.equal(withoutPassword('postgres://ladder@h/db'), 'postgres://ladder@h/db', 'nothing to hide');
  // No URL parser: what node-postgres could not read keeps its shape, without the password.
  assert.equal(withoutPassword('postgres://u:p/w#d@h/db'), 'postgres://u:…@h/db');
});
