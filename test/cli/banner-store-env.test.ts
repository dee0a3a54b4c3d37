/**
 * The commands the managed server's banner and `server access-config` suggest reach the store the
 * server uses when LADDER_STORE names it. A PostgreSQL URL (a password with it) stays in the
 * environment and the banner says the commands rely on LADDER_STORE (fleet tests); a SQLite path
 * is no secret and is named as --store, since a typed --data-dir makes a SQLite LADDER_STORE yield:
 * suggesting `--data-dir` alone pointed the commands at another, empty store (review12b).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, waitForStdout } from '../helpers/cli-run.js';

test('with a SQLite LADDER_STORE, the suggested commands name it and reach the same store', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-banner-env-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'from-env.db');
  const env = { LADDER_STORE: `sqlite:${db}` };

  const missing = run(['server', 'access-config'], { cwd: dir, env });
  assert.equal(await missing.exit, 2, missing.stderr());
  assert.ok(missing.stderr().includes(`no store at ${db}`), missing.stderr());
  assert.ok(missing.stderr().includes(`--store ${JSON.stringify(db)}`), missing.stderr());

  const args = ['server', '--host', '127.0.0.1', '--port', '0', '--api-host', '127.0.0.1', '--api-port', '0'];
  const srv = run([...args, '--no-metrics'], { cwd: dir, env });
  t.after(() => srv.child.kill('SIGKILL'));
  const manage = (await waitForStdout(srv, /^Manage keys: .*$/m))[0];
  const dataDir = join(dir, '.ladder');
  assert.ok(manage.endsWith(` --data-dir ${JSON.stringify(dataDir)} --store ${JSON.stringify(db)}`), manage);
  assert.match(srv.stdout(), new RegExp(`store: ${db} \\(SQLite\\)\n`));
  // What the banner suggests, run as the operator would (LADDER_STORE still exported): the key is there.
  const list = run(['keys', 'list', '--data-dir', dataDir, '--store', db], { cwd: dir, env });
  assert.equal(await list.exit, 0, list.stderr());
  assert.match(list.stdout(), /Initial key/);
});
