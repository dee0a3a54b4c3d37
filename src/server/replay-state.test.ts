import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../shared/clock.js';
import { silentLogger } from '../shared/logger.js';
import {
  memoryReplayStore,
  ReplayState,
  ReplayStateError,
  replayStateFile,
  type ReplayStore,
} from './replay-state.js';

function state(clock: ManualClock, store: ReplayStore | undefined, saveMs?: number): ReplayState {
  return new ReplayState({ clock, log: silentLogger, capacity: 100, store, ...(saveMs ? { saveMs } : {}) });
}

describe('ReplayState', () => {
  it('round-trips all three filters through an in-memory store (LRS3)', async () => {
    const clock = new ManualClock();
    const store = memoryReplayStore();
    const a = state(clock, store);
    const [c, s, w] = [randomBytes(32), randomBytes(32), randomBytes(16)];
    a.clientSalts.add(c);
    a.serverSalts.add(s);
    assert.ok(a.salts2022.add(w, clock.now()));
    a.noteSalt2022();
    await a.save();
    assert.equal(store.data?.toString('latin1', 0, 4), 'LRS3');
    const b = state(clock, store);
    await b.load();
    assert.ok(b.clientSalts.has(c));
    assert.ok(b.serverSalts.has(s));
    assert.ok(b.salts2022.has(w, clock.now()));
    assert.equal(b.clientSalts.has(s), false);
  });

  it('saves only when something changed, and periodically while started', async () => {
    const clock = new ManualClock();
    let writes = 0;
    const mem = memoryReplayStore();
    const store: ReplayStore = { read: () => mem.read(), write: (d) => (writes++, mem.write(d)) };
    const a = state(clock, store, 1_000);
    await a.save();
    assert.equal(writes, 1, 'the first save writes (nothing loaded)');
    await a.save();
    assert.equal(writes, 1, 'unchanged: no write');
    a.start();
    a.clientSalts.add(randomBytes(32));
    clock.advance(1_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(writes, 2, 'the periodic save wrote the change');
    a.stop();
    a.clientSalts.add(randomBytes(32));
    clock.advance(5_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(writes, 2, 'stopped: no more periodic saves');
  });

  it('a file store: missing file is an empty start, malformed content with no previous generation is refused, writes are 0600', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ladder-replay-'));
    try {
      const file = join(dir, 'replay.bin');
      const clock = new ManualClock();
      const a = state(clock, replayStateFile(file));
      await a.load(); // ENOENT: nothing to load
      const salt = randomBytes(32);
      a.clientSalts.add(salt);
      await a.save();
      assert.equal((await readFile(file)).toString('latin1', 0, 4), 'LRS3');
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      const b = state(clock, replayStateFile(file));
      await b.load();
      assert.ok(b.clientSalts.has(salt));
      // Legacy LRS2 (no checksum) still loads: the LRS3 body under the old magic.
      const lrs3 = await readFile(file);
      const lrs2 = Buffer.from(lrs3.subarray(0, lrs3.length - 32));
      lrs2.write('LRS2', 0, 'latin1');
      await writeFile(file, lrs2);
      const legacy = state(clock, replayStateFile(file));
      await legacy.load();
      assert.ok(legacy.clientSalts.has(salt));
      await writeFile(file, Buffer.from('LRS2 not really'));
      const c = state(clock, replayStateFile(file));
      await assert.rejects(c.load(), ReplayStateError);
      assert.equal(c.clientSalts.size, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a failed save leaves no temporary file, and keeps the state it had', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ladder-replay-'));
    try {
      const file = join(dir, 'replay.bin');
      const clock = new ManualClock();
      const a = state(clock, replayStateFile(file));
      a.clientSalts.add(randomBytes(32));
      await a.save();
      const saved = await readFile(file);
      // The previous generation's name is a non-empty directory: the rotation fails.
      await mkdir(join(`${file}.prev`, 'x'), { recursive: true });
      a.clientSalts.add(randomBytes(32));
      await a.save();
      assert.deepEqual((await readdir(dir)).sort(), ['replay.bin', 'replay.bin.prev']);
      assert.ok((await readFile(file)).equals(saved), 'the current generation is untouched');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a save neither follows nor is stopped by what another user planted at a predictable temporary name (a shared directory)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ladder-replay-'));
    try {
      const file = join(dir, 'replay.bin');
      const victim = join(dir, 'victim');
      await writeFile(victim, 'not yours');
      const planted = `${file}.${process.pid}.tmp`;
      await symlink(victim, planted);
      const a = state(new ManualClock(), replayStateFile(file));
      a.clientSalts.add(randomBytes(32));
      await a.save();
      assert.equal(await readFile(victim, 'utf8'), 'not yours', "the link's target is untouched");
      assert.equal(
        (await readFile(file)).subarray(0, 4).toString(),
        'LRS3',
        'the state went to its own file',
      );
      // Something this process cannot remove (another user's file in a sticky /tmp; here a directory).
      await rm(planted, { force: true });
      await mkdir(planted);
      await rm(file);
      a.clientSalts.add(randomBytes(32));
      await a.save();
      assert.equal((await readFile(file)).subarray(0, 4).toString(), 'LRS3', 'saved all the same');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
