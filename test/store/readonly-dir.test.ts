/**
 * A data directory or store file the server's user cannot write (a read-only mount, files owned
 * by another user): the start is refused in one line that says so, not with SQLite's "attempt to
 * write a readonly database" — before, a read-only store file opened without a word and the first
 * write after the start was "a bug in ladder" with a stack trace. Run as an unprivileged user
 * (root may write anywhere: as root the server is started as `nobody` through runuser).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';
import { LADDER_BIN, which } from '../helpers/peers.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { cleanEnv } from '../helpers/clean-env.js';

const root = process.getuid?.() === 0;
const runuser = which('runuser');
const NOBODY = 65534;
const uid = root ? NOBODY : userInfo().uid;

/** A store made in a fresh data directory, `lock` applied, then `ladder server` on it: its result. */
async function startOn(t: TestContext, lock: (dir: string) => void) {
  const base = mkdtempSync(join(tmpdir(), 'ladder-ro-'));
  const dir = join(base, 'd');
  t.after(() => {
    chmodSync(dir, 0o755);
    rmSync(base, { recursive: true, force: true });
  });
  const store = await openStore({ kind: 'sqlite', path: join(dir, 'ladder.db') });
  await store.close();
  if (root) {
    chmodSync(base, 0o755);
    for (const p of [dir, ...readdirSync(dir).map((f) => join(dir, f))]) chownSync(p, NOBODY, NOBODY);
  }
  lock(dir);
  const args = [LADDER_BIN, 'server', '--data-dir', dir, '--host', '127.0.0.1', '--port', '0'];
  args.push('--api-host', '127.0.0.1', '--api-port', '0', '--no-metrics');
  const cmd = root
    ? [runuser!, '-u', 'nobody', '--', process.execPath, ...args]
    : [process.execPath, ...args];
  const r = spawnSync(cmd[0]!, cmd.slice(1), {
    env: cleanEnv({ LADDER_LOG_LEVEL: 'silent' }),
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 2, `${r.stdout}${r.stderr}`);
  return { dir, stderr: r.stderr };
}

const canDrop = (t: TestContext): boolean =>
  requireOrSkip(t, !root || runuser !== undefined, 'runuser (util-linux) to drop root for this test');

test('a data directory this user cannot write is named as such', async (t) => {
  if (!canDrop(t)) return;
  const { dir, stderr } = await startOn(t, (d) => chmodSync(d, 0o555)); // the store file stays writable
  assert.equal(
    stderr,
    `ladder: store: the data directory ${dir} is not readable and writable by this user, uid ${uid} (cannot create server.pid: EACCES)\n`,
  );
});

test('a store file this user cannot write is refused at the start, not at its first write', async (t) => {
  if (!canDrop(t)) return;
  const { dir, stderr } = await startOn(t, (d) => chmodSync(join(d, 'ladder.db'), 0o444));
  const db = join(dir, 'ladder.db');
  assert.equal(
    stderr,
    `ladder: store: cannot write ${db} (the store file ${db} is not readable and writable by this user, uid ${uid})\n`,
  );
});
