/**
 * A node joining a fleet (a fresh data directory on a PostgreSQL store that already has keys) is
 * that node's first start: its management API, certificate and pin are new, so its banner gives
 * the access config and a key also to a log (under systemd the journal is where the operator
 * reads them), as a lone server's first start does. Before, it printed a restart's banner
 * ("Secrets are not printed on a restart …") because the store's first key was not made now.
 * Control: the same node's restart prints the restart banner.
 *
 * Only its own access config, though: the fleet's key was made by another node and handed out
 * already, so with N nodes its secret would land in N journals. The log banner says where keys
 * are (`ladder keys`) instead; the node that made the key logs it (the control).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startManaged, type ManagedFlags } from '../../src/cli/managed.js';
import { silentLogger } from '../../src/shared/logger.js';
import { HAVE_POSTGRES, startPostgres } from '../helpers/postgres.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { flags } from '../api/managed-helpers.js';
import { tempDir } from '../api/helpers.js';

test("a node's first start on a fleet's store prints its access config; its restart does not", async (t) => {
  if (!requireOrSkip(t, HAVE_POSTGRES, 'PostgreSQL (initdb, pg_ctl)')) return;
  const pg = await startPostgres();
  t.after(() => pg.destroy());
  const node = (name: string, dir: string): ManagedFlags => ({
    ...flags(dir),
    metrics: false,
    store: pg.url,
    node: name,
  });
  const a = await startManaged(node('a', tempDir(t)), silentLogger, { drawQr: false });
  t.after(() => a.close());
  assert.equal(a.firstStart, true, 'the first node makes the initial key');
  const [key] = await a.store.listKeys();
  assert.match(a.logBanner, /^Initial key \(a secret/m, 'the node that made the key logs it');
  assert.match(a.logBanner, /^ {2}ss:\/\//m);

  const dirB = tempDir(t);
  let b = await startManaged(node('b', dirB), silentLogger, { drawQr: false });
  assert.equal(b.firstStart, true, "node b's first start");
  assert.match(b.logBanner, new RegExp(`^\\{"apiUrl":"https://127\\.0\\.0\\.1:${b.api!.port}/`, 'm'));
  assert.match(b.logBanner, /"certSha256":"[0-9A-F]{64}"/, "its own certificate's pin");
  assert.doesNotMatch(b.logBanner, /not printed on a restart/);
  assert.doesNotMatch(b.logBanner, /ss:\/\/|ssconf:\/\/|a secret: give it/, 'no key URL in its log');
  assert.ok(!b.logBanner.includes(key!.secret), "no key's secret in its log");
  assert.match(b.logBanner, /keys url ID --data-dir .* --store /, 'where the keys are');
  await b.close();

  b = await startManaged(node('b', dirB), silentLogger, { drawQr: false });
  t.after(() => b.close());
  assert.equal(b.firstStart, false, "node b's restart");
});
