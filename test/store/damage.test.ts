// A lost or damaged SQLite store is refused at start with one line naming the file and the way to
// restore it, never silently replaced by a new server, never a stack trace (issue 14, item 2).
// Each damage is made on a real store file written by a real managed server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { startManaged } from '../../src/cli/managed.js';
import { silentLogger } from '../../src/shared/logger.js';
import { tempDir } from '../api/helpers.js';
import { flags } from '../api/managed-helpers.js';
import { managedServerArgs, runLadder, type LadderRun } from '../helpers/ladder-run.js';

/** A store made by a managed server (marker and all), with some keys and usage, then stopped. */
async function servedStore(dir: string): Promise<{ db: string; serverId: string; keys: number }> {
  const m = await startManaged(flags(dir), silentLogger);
  try {
    for (let i = 0; i < 40; i++)
      await m.store.createKey({ name: `k${i}`, method: 'aes-256-gcm', secret: `s${i}`, port: 1 });
    for (let i = 0; i < 40; i++) m.store.addBytes(String(i), 1000 * i, 2000);
    await m.store.flush();
    return {
      db: join(dir, 'ladder.db'),
      serverId: (await m.store.getSettings()).serverId,
      keys: await m.store.countKeys(),
    };
  } finally {
    await m.close();
  }
}

function serve(dir: string): Promise<LadderRun> {
  return runLadder(managedServerArgs(dir), { killAfterMs: 30_000 });
}

/** Exit 2, one stderr line naming the file and the restore command, nothing on stdout. */
function refusedNaming(r: LadderRun, db: string, what: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '', 'nothing served, no banner');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.ok(lines[0]!.includes(db), `names the file: ${lines[0]}`);
  assert.match(lines[0]!, what);
  assert.match(lines[0]!, new RegExp(`ladder store restore BACKUP --store ${db.replace(/[/.]/g, '\\$&')}`));
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

/** The page an index (or table) starts on, and the page size. */
function rootPage(db: string, name: string): { offset: number; pageSize: number } {
  const d = new BetterSqlite3(db, { readonly: true });
  try {
    const pageSize = d.pragma('page_size', { simple: true }) as number;
    const row = d.prepare('select rootpage from sqlite_master where name = ?').get(name) as {
      rootpage: number;
    };
    return { offset: (row.rootpage - 1) * pageSize, pageSize };
  } finally {
    d.close();
  }
}

function scribble(file: string, offset: number, length: number): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.alloc(length, 0xa5), 0, length, offset);
  } finally {
    closeSync(fd);
  }
}

test('first start is recognised by the marker; a deleted or emptied store is refused, not re-created', async (t) => {
  const dir = tempDir(t);
  const s = await servedStore(dir);
  const marker = `${s.db}.marker`;
  assert.ok(existsSync(marker), 'the first start wrote the marker');
  assert.deepEqual(Object.keys(JSON.parse(readFileSync(marker, 'utf8')) as object).sort(), [
    'createdTimestampMs',
    'serverId',
  ]);
  assert.equal((JSON.parse(readFileSync(marker, 'utf8')) as { serverId: string }).serverId, s.serverId);
  // Control: the intact store starts (and keeps its server id and keys).
  const again = await startManaged(flags(dir), silentLogger);
  assert.equal(again.firstStart, false);
  assert.equal((await again.store.getSettings()).serverId, s.serverId);
  await again.close();

  truncateSync(s.db, 0);
  refusedNaming(await serve(dir), s.db, /is empty but this server has run before/);
  assert.equal(statSync(s.db).size, 0, 'the empty file was left as it was');
  for (const f of [s.db, `${s.db}-wal`, `${s.db}-shm`]) rmSync(f, { force: true });
  refusedNaming(await serve(dir), s.db, /is missing but this server has run before/);
  assert.ok(!existsSync(s.db), 'no new store was created');
  // The CLI's keys commands say the same, even with --init.
  const keys = await runLadder(['keys', '--data-dir', dir, 'list', '--init']);
  refusedNaming(keys, s.db, /is missing/);
});

test('garbled, truncated, damaged table page and damaged index page: refused at start, one line', async (t) => {
  const cases: Array<[string, (db: string) => void, RegExp]> = [
    ['garbled header', (db) => scribble(db, 0, 100), /is damaged \(.*not a database/],
    ['truncated', (db) => truncateSync(db, Math.floor(statSync(db).size / 2)), /is damaged/],
    [
      'damaged index page',
      (db) => {
        const { offset, pageSize } = rootPage(db, 'usage_bucket_idx');
        scribble(db, offset + 8, pageSize - 16);
      },
      /is damaged \(quick_check: /,
    ],
    [
      'damaged table page',
      (db) => {
        const { offset } = rootPage(db, 'keys');
        scribble(db, offset, 64);
      },
      /is damaged/,
    ],
  ];
  for (const [name, damage, what] of cases) {
    const dir = tempDir(t);
    const s = await servedStore(dir);
    const before = readFileSync(s.db);
    damage(s.db);
    const r = await serve(dir);
    refusedNaming(r, s.db, what);
    assert.ok(!readFileSync(s.db).equals(before), `${name}: the damage is in place`);
    // A command that opens the store (not the server's pre-check) gives the same pastable hint.
    if (name === 'garbled header')
      refusedNaming(await runLadder(['keys', '--data-dir', dir, 'list']), s.db, what);
  }
});

test('ladder store backup (while serving), check, restore (refused while in use, then in place)', async (t) => {
  const dir = tempDir(t);
  const s = await servedStore(dir);
  const backup = join(dir, 'backup.db');
  const m = await startManaged(flags(dir), silentLogger);
  let open = true;
  t.after(async () => {
    if (open) await m.close();
  });
  await m.store.createKey({ id: 'after-backup-1', method: 'aes-256-gcm', secret: 'x', port: 1 });
  const b = await runLadder(['store', '--data-dir', dir, 'backup', backup]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(
    b.stdout,
    new RegExp(
      `^backed up .*ladder\\.db to .*backup\\.db \\(server ${s.serverId}, ${s.keys + 1} key\\(s\\), integrity_check ok\\)\\n$`,
    ),
  );
  assert.ok(!existsSync(`${backup}-wal`), 'the backup is one file');
  // A backup never overwrites a file.
  const again = await runLadder(['store', '--data-dir', dir, 'backup', backup]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists/);
  const nowhere = await runLadder(['store', '--data-dir', dir, 'backup', join(dir, 'no-such-dir', 'b.db')]);
  assert.equal(nowhere.code, 2, nowhere.stderr);
  assert.match(nowhere.stderr, /^ladder: store: \S+b\.db: its directory \S+no-such-dir does not exist\n$/);
  // Restore is refused while the server has the store open.
  await m.store.createKey({ id: 'after-backup-2', method: 'aes-256-gcm', secret: 'x', port: 1 });
  const busy = await runLadder(['store', '--data-dir', dir, 'restore', backup]);
  assert.equal(busy.code, 2, busy.stderr);
  assert.match(busy.stderr, /^ladder: store: .*ladder\.db is in use .*stop it, then restore\n$/);
  await m.close();
  open = false;
  // A new host's data directory not made yet: one line naming it, nothing created.
  const newHost = join(dir, 'new-host');
  const missing = await runLadder(['store', '--data-dir', newHost, 'restore', backup]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(
    missing.stderr,
    /^ladder: store: \S+ladder\.db: the data directory \S+new-host does not exist \(create it first, e\.g\. mkdir -p \S+new-host\)\n$/,
  );
  assert.ok(!existsSync(newHost));
  const ok = await runLadder(['store', '--data-dir', dir, 'restore', backup]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /the previous file is kept as .*ladder\.db\.replaced-/);
  assert.doesNotMatch(ok.stdout, /another server's backup/, 'its own backup: no note');
  // Another server's data directory: restored, and said so.
  const other = tempDir(t);
  const o = await servedStore(other);
  assert.notEqual(o.serverId, s.serverId);
  const foreign = await runLadder(['store', '--data-dir', other, 'restore', backup]);
  assert.equal(foreign.code, 0, foreign.stderr);
  assert.match(
    foreign.stdout,
    new RegExp(
      `note: this is another server's backup \\(server ${s.serverId}; this data directory held ${o.serverId}\\)`,
    ),
  );
  const check = await runLadder(['store', '--data-dir', dir, 'check']);
  assert.equal(check.code, 0, check.stderr);
  assert.match(
    check.stdout,
    new RegExp(`integrity_check ok, server ${s.serverId}, ${s.keys + 1} key\\(s\\)`),
  );
  const back = await startManaged(flags(dir), silentLogger);
  try {
    assert.ok(await back.store.getKey('after-backup-1'), 'the backup holds what was there when it was taken');
    assert.equal(await back.store.getKey('after-backup-2'), undefined, 'and not what came after');
  } finally {
    await back.close();
  }
  // A damaged file is neither restored nor reported as healthy.
  scribble(backup, 0, 100);
  const bad = await runLadder(['store', '--data-dir', dir, 'restore', backup]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /backup\.db cannot be restored: .*damaged/);
  assert.doesNotMatch(bad.stderr, /restore a backup with/, 'no advice to restore into the backup itself');
  const badCheck = await runLadder(['store', '--store', backup, 'check']);
  assert.equal(badCheck.code, 2);
  assert.equal(badCheck.stderr.trimEnd().split('\n').length, 1, badCheck.stderr);
});

test('--store with a scheme other than postgres:// is refused, not created as a SQLite file named after it', async (t) => {
  const dir = tempDir(t);
  for (const spec of ['mysql://u:s3cr3t@db.invalid/x', 'postgress://u:s3cr3t@db.invalid/x']) {
    const r = await runLadder(['server', '--store', spec, '--port', '0', '--data-dir', dir]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^ladder: store: unknown store scheme "\w+:\/\/"/);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /s3cr3t/, 'the password in the URL is not echoed');
  }
  assert.deepEqual(readdirSync(dir), [], 'nothing created');
});

test('--store sqlite:///x.db (another tool\'s form) says to write sqlite:PATH, not "unknown store scheme"', async (t) => {
  const dir = tempDir(t);
  const r = await runLadder([
    'server',
    '--store',
    `sqlite://${join(dir, 'x.db')}`,
    '--port',
    '0',
    '--data-dir',
    dir,
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^ladder: store: "sqlite:\/\/…" is not read \(write sqlite:PATH/);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.deepEqual(readdirSync(dir), [], 'nothing created');
});
