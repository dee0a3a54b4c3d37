// A damaged or truncated replay-state file never turns replay protection off silently: the
// previous generation is loaded (the captured first packet is still refused), or, with no usable
// generation, the server refuses to start (issue 14, item 4). Real captures through a real server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDataPlane, type DataPlaneOptions } from '../../src/server/index.js';
import { ReplayStateError } from '../../src/server/replay-state.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { rawProbe, startEcho } from '../helpers/net.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { runLadder } from '../helpers/ladder-run.js';
import { waitFor } from '../helpers/wait.js';

const KEY = { id: 'a', method: 'aes-256-gcm', secret: 'replay-damage-pw' };

/** One key, loopback, a short idle timeout, the replay state in `file`. */
function optionsFor(file: string): DataPlaneOptions {
  return {
    keys: [KEY],
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    timeouts: { idleMs: 600 },
    replayStateFile: file,
  };
}

/** Serve one key with the state in `file`; capture the first packet of one real connection. */
async function captureAndStop(opts: DataPlaneOptions, echoPort: number): Promise<Buffer> {
  const plane = await startDataPlane(opts);
  try {
    const t = await openTestTunnel({
      port: plane.address.port,
      method: KEY.method,
      password: KEY.secret,
      target: { host: '127.0.0.1', port: echoPort },
      initial: Buffer.from('hello'),
    });
    await t.read(5);
    t.end();
    await t.closed;
    return t.sentWire[0]!;
  } finally {
    await plane.close(); // saves the state
  }
}

/** Replay `packet` against a server started with `opts`: was it relayed (data came back)? */
async function replayAnswered(
  opts: DataPlaneOptions,
  packet: Buffer,
): Promise<{ answered: boolean; statuses: string[] }> {
  const closed: ConnectionClosedEvent[] = [];
  const plane = await startDataPlane({ ...opts, hooks: { onConnectionClosed: (e) => closed.push(e) } });
  try {
    const r = await rawProbe(plane.address.port, packet, 1_500);
    await waitFor(() => closed.length > 0, { timeoutMs: 3000, message: 'the probe connection closed' });
    return { answered: r.received > 0, statuses: closed.map((e) => e.status) };
  } finally {
    await plane.close();
  }
}

test('damaged, truncated or deleted current state: the previous generation refuses the old capture', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const damages: Array<[string, (file: string) => void]> = [
    [
      'a flipped byte inside a salt',
      (f) => {
        const b = readFileSync(f);
        b[40] = b[40]! ^ 0x01;
        writeFileSync(f, b);
      },
    ],
    ['truncated', (f) => truncateSync(f, Math.floor(readFileSync(f).length / 2))],
    ['emptied', (f) => truncateSync(f, 0)],
    ['deleted', (f) => rmSync(f)],
  ];
  for (const [name, damage] of damages) {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-replay-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'replay.bin');
    const opts = optionsFor(file);
    const old = await captureAndStop(opts, echo.port); // generation 1 holds the capture's salt
    await captureAndStop(opts, echo.port); // generation 2: the first moves to replay.bin.prev
    assert.ok(existsSync(`${file}.prev`), 'the previous generation is kept');
    assert.equal(readFileSync(file).toString('latin1', 0, 4), 'LRS3');
    damage(file);
    const r = await replayAnswered(opts, old);
    assert.equal(r.answered, false, `${name}: the old capture was answered`);
    assert.ok(r.statuses.includes('ERR_REPLAY_CLIENT'), `${name}: [${r.statuses.join(',')}]`);
    // The damaged generation was moved aside and a good current one written at close.
    assert.equal(readFileSync(file).toString('latin1', 0, 4), 'LRS3', name);
    if (name !== 'deleted') assert.ok(existsSync(`${file}.damaged`), `${name}: kept for inspection`);
    // Negative control: a server without the state answers the same capture.
    const { replayStateFile: _drop, ...noFile } = opts;
    assert.equal((await replayAnswered(noFile, old)).answered, true, `${name}: control`);
  }
});

test('no usable generation at all: the server refuses to start, one line naming the file', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  const dir = mkdtempSync(join(tmpdir(), 'ladder-replay-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'replay.bin');
  const opts = optionsFor(file);
  await captureAndStop(opts, echo.port);
  await captureAndStop(opts, echo.port);
  truncateSync(file, 20);
  const prev = readFileSync(`${file}.prev`);
  prev[prev.length - 1] = prev[prev.length - 1]! ^ 0xff;
  writeFileSync(`${file}.prev`, prev);
  writeFileSync(`${file}.999999.tmp`, 'left by a crashed save');
  await assert.rejects(startDataPlane(opts), (err: unknown) => {
    assert.ok(err instanceof ReplayStateError, String(err));
    assert.match(
      err.message,
      new RegExp(
        `^replay state ${file.replace(/[/.]/g, '\\$&')} is damaged \\(truncated\\) and its previous generation .*\\.prev is damaged \\(checksum mismatch\\); starting with an empty filter would answer replays`,
      ),
    );
    return true;
  });
  assert.ok(!existsSync(`${file}.999999.tmp`), 'a stale temporary file is removed at start');
  // The same through the CLI (unmanaged server): one line, exit 2.
  const r = await runLadder(
    ['server', '--host', '127.0.0.1', '--port', '0', '--password', 'x', '--replay-state', file],
    { killAfterMs: 30_000 },
  );
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^ladder: replay state .* is damaged .*move both files aside/);
  // Moving both aside is the operator's explicit choice: then it starts (empty).
  rmSync(file);
  rmSync(`${file}.prev`);
  const plane = await startDataPlane(opts);
  await plane.close();
});

test('a replay-state file in a directory that does not exist: refused at start, not at the first save', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-replay-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'missing', 'replay.bin');
  await assert.rejects(startDataPlane(optionsFor(file)), (err: unknown) => {
    assert.ok(err instanceof ReplayStateError, String(err));
    assert.equal(err.code, 'REPLAY_STATE_UNWRITABLE');
    return true;
  });
  const r = await runLadder(
    ['server', '--host', '127.0.0.1', '--port', '0', '--password', 'x', '--replay-state', file],
    { killAfterMs: 30_000 },
  );
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, '', 'no banner');
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.match(
    r.stderr,
    /^ladder: replay state \S+replay\.bin cannot be saved: \S+missing: no such directory/,
  );
  // Control: the directory exists, the server starts.
  const plane = await startDataPlane(optionsFor(join(dir, 'replay.bin')));
  await plane.close();
});
