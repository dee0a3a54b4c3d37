// A backup holds every key's secret and the API prefix, as the store does: `ladder store backup`
// and `restore` write owner-only files (0600) whatever the umask, as the store itself is made.
// Before, SQLite created the copy under the umask (0644 with the usual 022): a backup, and the
// store a restore put in place, were readable by every local user.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { backupStore, openStore, parseStoreLocation, restoreStore } from '../../src/store/index.js';
import { tempDir } from '../api/helpers.js';

const modeOf = (file: string): string => (statSync(file).mode & 0o777).toString(8);

test('store backup and restore write owner-only files under a permissive umask', async (t) => {
  const dir = tempDir(t);
  const db = join(dir, 'ladder.db');
  const store = await openStore(parseStoreLocation(undefined, dir));
  await store.createKey({ name: 'k', method: 'aes-256-gcm', secret: 'a secret', port: 1 });
  await store.close();
  assert.equal(modeOf(db), '600', 'the store itself (the control)');

  const umask = process.umask(0o022);
  t.after(() => process.umask(umask));
  const backup = join(dir, 'backup.db');
  await backupStore(db, backup);
  assert.equal(modeOf(backup), '600', 'the backup');

  const restored = join(tempDir(t), 'ladder.db');
  await restoreStore(backup, restored);
  assert.equal(modeOf(restored), '600', 'the restored store');
});
