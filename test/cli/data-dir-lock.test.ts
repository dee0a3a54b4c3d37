import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { run, waitForStdout, type Run } from '../helpers/cli-run.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../helpers/net.js';
import { runLadder } from '../helpers/ladder-run.js';

/**
 * Finding 2: a second `ladder server` on a data directory in use is refused at once, in one line
 * naming the directory and the holder's pid, before it changes anything (the first server's
 * settings stay as they were); a lock left by a killed server (kill -9) does not block the next
 * start (the control: the refusal is about a live holder, not the file).
 */
test('a second server on a data directory in use is refused before it touches anything; a killed one leaves no block', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-lock-'));
  const procs: Run[] = [];
  t.after(() => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const server = async (host: string): Promise<string[]> => [
    'server',
    '--data-dir',
    dir,
    '--host',
    '127.0.0.1',
    '--public-host',
    host,
    '--port',
    String(await freePort()),
    '--api-host',
    '127.0.0.1',
    '--api-port',
    String(await freePort()),
    '--workers',
    '1',
    '--no-metrics',
  ];
  const settings = async (): Promise<Record<string, unknown>> => {
    const store = await openStore(parseStoreLocation(undefined, dir));
    try {
      const s = await store.getSettings();
      return { apiPort: s.apiPort, port: s.portForNewAccessKeys, host: s.hostnameForAccessKeys };
    } finally {
      await store.close();
    }
  };

  const first = run(await server('127.0.0.1'));
  procs.push(first);
  await waitForStdout(first, /Ctrl-C to stop/, 60_000);
  const before = await settings();
  const web = (): string | undefined =>
    existsSync(join(dir, 'web-endpoint.json'))
      ? readFileSync(join(dir, 'web-endpoint.json'), 'utf8')
      : undefined;
  const webBefore = web();

  const second = run(await server('127.0.0.9'));
  procs.push(second);
  const code = await Promise.race([second.exit, sleep(30_000).then(() => 'still running')]);
  assert.equal(code, 2, second.stderr());
  const lines = second.stderr().trim().split('\n');
  assert.equal(lines.length, 1, second.stderr());
  assert.match(
    lines[0]!,
    new RegExp(`data directory ${dir} is in use by another ladder server \\(pid ${first.child.pid}\\)`),
  );
  assert.deepEqual(await settings(), before, "the first server's settings are unchanged");
  assert.equal(web(), webBefore, 'web-endpoint.json unchanged');
  assert.equal(first.child.exitCode, null, 'the first server still runs');

  // The control: kill -9 leaves server.pid behind; the next start takes it over.
  first.child.kill('SIGKILL');
  await first.exit;
  assert.ok(existsSync(join(dir, 'server.pid')), 'the killed server left its lock file');
  const third = run(await server('127.0.0.1'));
  procs.push(third);
  await waitForStdout(third, /Ctrl-C to stop/, 60_000);
  assert.equal(readFileSync(join(dir, 'server.pid'), 'utf8').split(' ')[0], String(third.child.pid));
  third.child.kill('SIGTERM');
  assert.equal(await third.exit, 0, third.stderr());
  assert.ok(!existsSync(join(dir, 'server.pid')), 'a stopped server removes its lock file');
});

/**
 * The lock's judgement of what server.pid names (in-process, lockDataDir itself): an empty or
 * garbled file and a pid whose start time differs (reused) are stale and replaced; a live process
 * with its own start time holds the directory (the control), and the file is never left without
 * content by a taker.
 */
test('server.pid: empty, garbled and reused-pid files are stale; a live holder is refused', async (t) => {
  const { lockDataDir, SERVER_PID_FILE } = await import('../../src/cli/data-dir-lock.js');
  const { spawn } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'ladder-lock-unit-'));
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => {
    holder.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, SERVER_PID_FILE);
  const start = readFileSync(`/proc/${holder.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]!;
  for (const stale of ['', 'garbage\n', `${holder.pid} 1\n`]) {
    writeFileSync(file, stale);
    const release = lockDataDir(dir);
    assert.equal(
      readFileSync(file, 'utf8').split(' ')[0],
      String(process.pid),
      `replaced: ${JSON.stringify(stale)}`,
    );
    release();
    assert.ok(!existsSync(file), 'released');
  }
  writeFileSync(file, `${holder.pid} ${start}\n`);
  assert.throws(
    () => lockDataDir(dir),
    new RegExp(`in use by another ladder server \\(pid ${holder.pid}\\)`),
  );
  assert.equal(readFileSync(file, 'utf8'), `${holder.pid} ${start}\n`, 'the holder keeps its file');
});

/**
 * The pid line is written to a new file at a name no one can guess (O_EXCL), never through a
 * symlink at a predictable name: one planted at the old name (server.pid.PID.tmp) pointing at
 * another file leaves that file as it was, and nothing temporary is left behind.
 */
test('server.pid: a symlink planted at a temporary name is not followed', async (t) => {
  const { lockDataDir, SERVER_PID_FILE } = await import('../../src/cli/data-dir-lock.js');
  const dir = mkdtempSync(join(tmpdir(), 'ladder-lock-link-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  const file = join(dir, SERVER_PID_FILE);
  symlinkSync(victim, `${file}.${process.pid}.tmp`);
  const release = lockDataDir(dir);
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the link target is untouched');
  assert.equal(readFileSync(file, 'utf8').split(' ')[0], String(process.pid), 'the lock is taken');
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.endsWith('.tmp') && n !== `${SERVER_PID_FILE}.${process.pid}.tmp`),
    [],
    'no temporary file left',
  );
  release();
  assert.ok(!existsSync(file));
});

/**
 * A data directory that cannot be made (a file in its place, a file in its path, /proc that
 * refuses new directories) is one line naming it and why, exit 2, for the server and for
 * `keys --init` alike; it was "this is a bug in ladder" with a stack trace from the server.
 */
test('a data directory that cannot be created: one line saying why, no stack trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-dd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'a-file');
  writeFileSync(file, 'not a directory\n');
  const dangling = join(dir, 'link');
  symlinkSync(join(dir, 'gone'), dangling);
  const cases: Array<[string, RegExp]> = [
    [file, /a file of that name is in the way \(not a directory\)$/],
    [join(file, 'sub'), /a part of its path is a file, not a directory$/],
    ['/proc/ladder-no-such-dir', /the file system does not allow a new directory there$/],
    // A symbolic link to nothing: `keys --init` was a stack trace, the server blamed the file system.
    [dangling, new RegExp(`a symbolic link to ${join(dir, 'gone')}, which does not exist$`)],
  ];
  for (const [dataDir, why] of cases) {
    for (const args of [
      ['server', '--data-dir', dataDir, '--port', '0', '--no-metrics'],
      ['keys', '--init', '--data-dir', dataDir, 'add'],
    ]) {
      const r = await runLadder(args, { killAfterMs: 30_000 });
      const what = `${args.join(' ')}: ${r.stderr}`;
      assert.equal(r.code, 2, what);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, what);
      assert.match(
        r.stderr.trimEnd(),
        new RegExp(`^ladder: (store: )?cannot create (the data directory )?${dataDir}: `),
        what,
      );
      assert.match(r.stderr.trimEnd(), why, what);
    }
  }
  assert.equal(readFileSync(file, 'utf8'), 'not a directory\n', 'the file in the way is untouched');
});

/**
 * `--store mysql://…` is refused before the data directory is made or locked: it left an empty
 * ./.ladder behind, and with a server running there it said "in use by another ladder server"
 * instead of naming the mistyped scheme.
 */
test('a mistyped --store scheme is refused before the data directory is touched', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-dd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await runLadder(
    ['server', '--store', 'mysql://db.example/ladder', '--port', '0', '--no-metrics'],
    {
      cwd: dir,
      killAfterMs: 30_000,
    },
  );
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^ladder: store: unknown store scheme "mysql:\/\/" /);
  assert.equal(existsSync(join(dir, '.ladder')), false, 'no ./.ladder made');
});
