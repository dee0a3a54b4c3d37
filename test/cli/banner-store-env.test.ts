/**
 * A store named by LADDER_STORE is not put on the command line by the commands the managed
 * server's banner and `server access-config` suggest (the URL, a password with it, belongs in the
 * environment): they name the data directory alone and the banner says they rely on LADDER_STORE.
 * Before, `--store "…"` was suggested whenever a store was given, however it came.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, waitForStdout } from '../helpers/cli-run.js';

test('the managed banner and access-config suggest no --store for a LADDER_STORE store', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-banner-env-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'from-env.db');
  const env = { LADDER_STORE: `sqlite:${db}` };

  const missing = run(['server', 'access-config'], { cwd: dir, env });
  assert.equal(await missing.exit, 2, missing.stderr());
  assert.ok(missing.stderr().includes(`no store at ${db}`), missing.stderr());
  assert.doesNotMatch(missing.stderr(), /--store "/);

  const args = ['server', '--host', '127.0.0.1', '--port', '0', '--api-host', '127.0.0.1', '--api-port', '0'];
  const srv = run([...args, '--no-metrics'], { cwd: dir, env });
  t.after(() => srv.child.kill('SIGKILL'));
  const manage = (await waitForStdout(srv, /^Manage keys: .*$/m))[0];
  assert.ok(manage.endsWith(` --data-dir ${JSON.stringify(join(dir, '.ladder'))}`), manage);
  assert.match(
    srv.stdout(),
    new RegExp(`store: ${db} \\(SQLite\\) from LADDER_STORE \\(the commands below need it set too\\)`),
  );
  assert.doesNotMatch(srv.stdout(), /--store "/);
});
