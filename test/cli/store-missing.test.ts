// `ladder store check|backup` where there is no store (run from another directory, a mistyped
// --data-dir) say where they looked and how to name the store, like `keys` and `server
// access-config` do; a store that was there (its marker says so) gets the way to restore it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { escapeRe as esc, oneUsageLine, runLadder } from '../helpers/ladder-run.js';

test('store check and backup without a store: one line naming where it looked and --data-dir', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-nostore-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, '.ladder', 'ladder.db');
  for (const args of [
    ['store', 'check'],
    ['store', 'backup', join(dir, 'b.db')],
  ]) {
    const r = await runLadder(args, { cwd: dir, killAfterMs: 30_000 });
    oneUsageLine(
      r,
      args.join(' '),
      new RegExp(
        `^ladder: store: no store at ${esc(db)}: name the server's data directory with --data-dir DIR`,
      ),
    );
  }
  // The marker of a store that has run: missing now means lost, and the line says how to restore.
  const lost = join(dir, 'lost');
  mkdirSync(lost);
  writeFileSync(join(lost, 'ladder.db.marker'), JSON.stringify({ serverId: 'x-1', createdTimestampMs: 1 }));
  for (const args of [
    ['store', 'check', '--data-dir', lost],
    ['store', 'backup', join(dir, 'c.db'), '--data-dir', lost],
  ]) {
    oneUsageLine(
      await runLadder(args, { killAfterMs: 30_000 }),
      args.join(' '),
      /^ladder: store: \S+ladder\.db is missing but this server has run before .*store restore BACKUP/,
    );
  }
});
