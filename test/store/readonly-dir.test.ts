/**
 * A data directory the server's user cannot write (a read-only mount, a directory owned by
 * another user): the start is refused in one line that says so, not only with SQLite's "attempt
 * to write a readonly database" / "unable to open database file". Run as an unprivileged user
 * (root may write anywhere: as root the server is started as `nobody` through runuser).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';
import { LADDER_BIN, which } from '../helpers/peers.js';
import { requireOrSkip } from '../helpers/prereq.js';

const root = process.getuid?.() === 0;
const runuser = which('runuser');

test('a data directory this user cannot write is named as such', async (t) => {
  if (!requireOrSkip(t, !root || runuser !== undefined, 'runuser (util-linux) to drop root for this test'))
    return;
  const base = mkdtempSync(join(tmpdir(), 'ladder-ro-'));
  t.after(() => {
    chmodSync(join(base, 'd'), 0o755);
    rmSync(base, { recursive: true, force: true });
  });
  const dir = join(base, 'd');
  const store = await openStore({ kind: 'sqlite', path: join(dir, 'ladder.db') });
  await store.close();
  const nobody = 65534;
  if (root) {
    chmodSync(base, 0o755);
    for (const p of [dir, ...readdirSync(dir).map((f) => join(dir, f))]) chownSync(p, nobody, nobody);
  }
  chmodSync(dir, 0o555); // the store file stays writable: only the directory is not
  const args = [LADDER_BIN, 'server', '--data-dir', dir, '--host', '127.0.0.1', '--port', '0'];
  args.push('--api-host', '127.0.0.1', '--api-port', '0', '--no-metrics');
  const cmd = root
    ? [runuser!, '-u', 'nobody', '--', process.execPath, ...args]
    : [process.execPath, ...args];
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    env: { ...process.env, LADDER_LOG_LEVEL: 'silent' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 2, `${r.stdout}${r.stderr}`);
  const uid = root ? nobody : userInfo().uid;
  assert.match(
    r.stderr,
    new RegExp(
      `^ladder: store: cannot check .*ladder\\.db: SQLITE_READONLY\\w*: .* \\(the data directory ${dir} is not readable and writable by this user, uid ${uid}\\)\\n$`,
    ),
  );
});
