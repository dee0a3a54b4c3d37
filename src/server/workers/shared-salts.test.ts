import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { ManualClock } from '../../shared/clock.js';
import { silentLogger } from '../../shared/logger.js';
import { SaltFilter, SaltWindow } from '../../protocol/shadowsocks/replay.js';
import { memoryReplayStore, ReplayState } from '../replay-state.js';
import {
  createSharedReplay,
  sharedReplayFilters,
  SharedSaltFilter,
  SharedSaltWindow,
} from './shared-salts.js';

describe('SharedSaltFilter', () => {
  it("keeps SaltFilter's contract: exact, two generations of `capacity`, the older dropped whole", () => {
    const bufs = createSharedReplay(3, 16);
    const f = new SharedSaltFilter(bufs.client);
    const plain = new SaltFilter(3);
    const salts = Array.from({ length: 10 }, () => randomBytes(32));
    for (const s of salts) assert.equal(f.checkAndAdd(s), plain.checkAndAdd(s));
    for (const s of salts) assert.equal(f.has(s), plain.has(s), 'same memory as SaltFilter');
    assert.equal(f.size, plain.size);
    assert.equal(f.checkAndAdd(salts[9]!), false, 'a remembered salt is refused');
    assert.equal(f.has(randomBytes(32)), false);
  });

  it("two views of one buffer (two threads) see each other's salts; a different buffer does not", () => {
    const bufs = createSharedReplay(100);
    const a = new SharedSaltFilter(bufs.client);
    const b = new SharedSaltFilter(bufs.client);
    const other = new SharedSaltFilter(createSharedReplay(100).client); // negative control
    const s = randomBytes(16);
    assert.equal(a.checkAndAdd(s), true);
    assert.equal(b.checkAndAdd(s), false);
    assert.equal(other.checkAndAdd(s), true);
  });

  it('serialises to the LSF1 form SaltFilter reads, and loads from it', () => {
    const f = new SharedSaltFilter(createSharedReplay(4).client);
    const salts = Array.from({ length: 6 }, () => randomBytes(24));
    for (const s of salts) f.add(s);
    const back = SaltFilter.deserialize(f.serialize(), 4);
    for (const s of salts) assert.equal(back.has(s), f.has(s));
    const g = new SharedSaltFilter(createSharedReplay(4).client);
    g.replaceWith(back);
    for (const s of salts) assert.equal(g.has(s), f.has(s));
  });

  it('one salt offered by two threads at once is accepted by exactly one', async () => {
    const bufs = createSharedReplay(5000);
    const salts = Array.from({ length: 2000 }, () => randomBytes(16));
    const src = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(${JSON.stringify('tsx/esm/api')}).then((m) => { m.register();
        return import(${JSON.stringify(new URL('./shared-salts.ts', import.meta.url).href)}); }).then(({ SharedSaltFilter }) => {
        const f = new SharedSaltFilter(workerData.sab);
        let won = 0;
        for (const s of workerData.salts) if (f.checkAndAdd(new Uint8Array(s))) won++;
        parentPort.postMessage(won);
      });`;
    const run = (): Promise<number> =>
      new Promise((resolve, reject) => {
        const w = new Worker(src, {
          eval: true,
          workerData: { sab: bufs.client, salts: salts.map((s) => [...s]) },
        });
        w.once('message', (n: number) => void w.terminate().then(() => resolve(n)));
        w.once('error', reject);
      });
    const [x, y] = await Promise.all([run(), run()]);
    assert.equal(x + y, salts.length, `accepted ${x} + ${y}`);
  });

  it('matches SaltFilter over many generations, replays of older salts included, serialize() byte for byte', () => {
    const f = new SharedSaltFilter(createSharedReplay(50).client);
    const plain = new SaltFilter(50);
    const seen: Buffer[] = [];
    for (let i = 0; i < 1_000; i++) {
      // Mostly new salts; some repeat a salt from 1 to ~150 insertions ago (in, at the edge of,
      // and past the two generations' memory).
      const old =
        i % 7 === 3 && seen.length > 0 ? seen[Math.max(0, seen.length - 1 - ((i * 31) % 150))] : undefined;
      const s = old ?? randomBytes(8 + (i % 25));
      seen.push(s);
      assert.equal(f.checkAndAdd(s), plain.checkAndAdd(s), `insertion ${i}`);
    }
    assert.equal(f.size, plain.size);
    assert.deepEqual(f.serialize(), plain.serialize(), 'same salts, oldest first, in arrival order');
  });

  it('1,000 salts dirty at most ~1.2 MiB of a default-capacity filter (salts go to a log in arrival order)', () => {
    // Each page a salt lands on is a page the server keeps resident: with the salts in the hash
    // slots every new connection dirtied a random page of 4 MiB of slots (~3 MiB after 1,000).
    const sab = createSharedReplay(20_000).client;
    const f = new SharedSaltFilter(sab);
    for (let i = 0; i < 1_000; i++) assert.equal(f.checkAndAdd(randomBytes(32)), true);
    const bytes = new Uint8Array(sab);
    let dirty = 0;
    for (let o = 0; o < bytes.length; o += 4096) {
      const end = Math.min(bytes.length, o + 4096);
      for (let i = o; i < end; i++) {
        if (bytes[i] !== 0) {
          dirty++;
          break;
        }
      }
    }
    assert.ok(
      dirty * 4096 <= 1.2 * 1024 * 1024,
      `${dirty} pages of ${Math.ceil(bytes.length / 4096)} dirtied`,
    );
  });
});

describe('SharedSaltWindow', () => {
  it('remembers a salt for the TTL and forgets it after, across epochs', () => {
    const w = new SharedSaltWindow(createSharedReplay(16).window, 60_000);
    const s = randomBytes(16);
    const t = 1_000_000 * 60_000 + 59_000; // near the end of an epoch
    assert.equal(w.add(s, t), true);
    assert.equal(w.add(s, t + 59_999), false, 'still remembered in the next epoch');
    assert.equal(w.has(s, t + 60_001), false, 'forgotten after the TTL');
    assert.equal(w.add(s, t + 60_001), true);
    assert.deepEqual(w.export(t + 60_001).length, 1);
  });

  it('refuses (fails closed) when an epoch already holds `windowCapacity` salts', () => {
    const w = new SharedSaltWindow(createSharedReplay(16, 4).window);
    const t = 5_000;
    for (let i = 0; i < 4; i++) assert.equal(w.add(randomBytes(16), t), true);
    assert.equal(w.add(randomBytes(16), t), false);
    assert.equal(w.refusedFull, 1);
    const plain = new SaltWindow(); // control: the in-process window has no bound
    for (let i = 0; i < 5; i++) assert.equal(plain.add(randomBytes(16), t), true);
  });
  it('matches SaltWindow across epochs, a 20-s clock step back included, and exports the same entries', () => {
    const w = new SharedSaltWindow(createSharedReplay(16).window, 60_000);
    const plain = new SaltWindow(60_000);
    const salts = Array.from({ length: 40 }, () => randomBytes(16));
    let t = 7 * 60_000;
    for (let i = 0; i < 400; i++) {
      t += i === 200 ? -20_000 : 1_000 + ((i * 37) % 5_000);
      const s = salts[(i * 13) % salts.length]!;
      assert.equal(w.add(s, t), plain.add(s, t), `add ${i} at ${t}`);
    }
    assert.deepEqual(w.export(t), plain.export(t));
  });
});

describe('ReplayState over shared filters', () => {
  it('saves what any thread added and loads into the shared buffers', async () => {
    const clock = new ManualClock();
    const store = memoryReplayStore();
    const bufs = createSharedReplay(100);
    const main = new ReplayState({
      clock,
      log: silentLogger,
      capacity: 100,
      store,
      filters: sharedReplayFilters(bufs),
    });
    const worker = sharedReplayFilters(bufs); // what a worker holds
    const [c, s, w] = [randomBytes(32), randomBytes(32), randomBytes(16)];
    worker.clientSalts.add(c);
    worker.serverSalts.add(s);
    assert.ok(worker.salts2022.add(w, clock.now()));
    await main.save();
    assert.ok(store.data, 'a change made in another view is saved');
    const fresh = createSharedReplay(100);
    const restarted = new ReplayState({
      clock,
      log: silentLogger,
      capacity: 100,
      store,
      filters: sharedReplayFilters(fresh),
    });
    await restarted.load();
    const after = sharedReplayFilters(fresh);
    assert.ok(after.clientSalts.has(c));
    assert.ok(after.serverSalts.has(s));
    assert.ok(after.salts2022.has(w, clock.now()));
    assert.equal(after.clientSalts.has(s), false);
  });
});
