/**
 * The lean path's checks in the addon (LADDER_NATIVE_CHECKS, native/tcp_accept.cc and
 * shared_salts.cc): the C++ side reads and writes the shared SIP004 replay filters' buffers with
 * SharedSaltFilter's layout, hash, probing and rotation, under the same lock. A salt the addon
 * adds is the JS filter's and another server's on the same buffers (another worker's); a salt JS
 * adds, the addon refuses; a filter that rotates its generations in C++ ends byte for byte as one
 * fed the same salts in JS; and when a lock is held (by JS, or in the addon's state) the addon
 * leaves the checks to JS, which takes the lock once it is free, with no wake from the holder.
 * test/server/lean-path.test.ts compares every outcome with the checks on and off.
 */
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { nativeAvailable } from '../../src/protocol/shadowsocks/native.js';
import { SaltFilter } from '../../src/protocol/shadowsocks/replay.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { leanPathChecked, leanPathServed } from '../../src/server/lean-path.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import {
  createSharedReplay,
  sharedReplayFilters,
  type SharedReplayBuffers,
} from '../../src/server/workers/shared-salts.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { silentLogger } from '../../src/shared/logger.js';
import { nativeAccept } from '../../src/transport/native-stream.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { probeOnce } from '../probing/prober.js';

const KEY: RuntimeKey = { id: 'k1', method: 'aes-256-gcm', secret: 'native-checks-pw' };
const IDLE_MS = 300;

interface Run {
  server: ShadowsocksServer;
  port: number;
  closed: ConnectionClosedEvent[];
}

async function start(bufs: SharedReplayBuffers, nativeChecks = true, keys = [KEY]): Promise<Run> {
  const closed: ConnectionClosedEvent[] = [];
  const server = new ShadowsocksServer({
    keys,
    allowPrivateDestinations: true,
    nativeChecks,
    replayFilters: sharedReplayFilters(bufs),
    timeouts: { idleMs: IDLE_MS, connectMs: 2000 },
    logger: silentLogger,
    hooks: { onConnectionClosed: (e) => closed.push(e) },
  });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port, closed };
}

/** A first packet under KEY with `salt`: the target, then 16 bytes of data. */
function request(port: number, salt: Buffer): Buffer {
  const m = getAeadMethod('aes-256-gcm');
  const header = encodeAddress(toSocksAddress('127.0.0.1', port));
  return new AeadEncoder(m, evpBytesToKey(KEY.secret, m.keySize), salt).encode(
    Buffer.concat([header, randomBytes(16)]),
  );
}

/** Send `payload`; the bytes that came back (0 for a refusal). */
async function send(r: Run, payload: Buffer): Promise<number> {
  const n = r.closed.length;
  const p = await probeOnce(r.port, { label: 'c', payload }, { halfClose: false, giveUpMs: IDLE_MS * 4 });
  await waitFor(() => r.closed.length > n, { timeoutMs: 2000 });
  return p.bytesBack;
}

const last = (r: Run): string => r.closed.at(-1)!.status;

const withAddon = nativeAvailable() && nativeAccept()?.acceptKeys !== undefined;

describe(
  'the lean path’s checks in the addon (shared replay filters)',
  { skip: skipUnless(withAddon, 'the native addon with acceptKeys') },
  () => {
    let echo: TestServer;
    before(async () => void (echo = await startEcho()));
    after(() => echo.close());

    it('a salt the addon adds is JS’s and another worker’s; one JS adds, the addon refuses', async () => {
      const bufs = createSharedReplay(1000);
      const view = sharedReplayFilters(bufs);
      const [a, b] = [await start(bufs), await start(bufs)];
      try {
        const salt = randomBytes(32);
        const first = request(echo.port, salt);
        const checked = leanPathChecked();
        assert.ok((await send(a, first)) > 0, 'relayed');
        assert.equal(leanPathChecked() - checked, 1, 'checked in the addon');
        assert.equal(view.clientSalts.has(salt), true, 'in the JS filter');
        // The replay, to the other server on the same buffers (another worker).
        assert.deepEqual([await send(b, first), last(b)], [0, 'ERR_REPLAY_CLIENT']);
        assert.deepEqual([await send(a, first), last(a)], [0, 'ERR_REPLAY_CLIENT']);
        // Salts JS added: as a client's, as this server's own (a reflection).
        const [c, s] = [randomBytes(32), randomBytes(32)];
        view.clientSalts.add(c);
        view.serverSalts.add(s);
        assert.deepEqual([await send(a, request(echo.port, c)), last(a)], [0, 'ERR_REPLAY_CLIENT']);
        assert.deepEqual([await send(b, request(echo.port, s)), last(b)], [0, 'ERR_REPLAY_SERVER']);
        assert.equal(view.clientSalts.has(s), false, 'a refused salt is not added');
      } finally {
        await a.server.close();
        await b.server.close();
      }
    });

    it('generations rotate in the addon exactly as in JS (capacity 3, 8 salts, then replays)', async () => {
      const salts = Array.from({ length: 8 }, () => randomBytes(32));
      async function rotate(nativeChecks: boolean): Promise<[string, Buffer, number]> {
        const bufs = createSharedReplay(3);
        const r = await start(bufs, nativeChecks);
        const checked = leanPathChecked();
        try {
          const back: number[] = [];
          for (const s of salts) back.push(await send(r, request(echo.port, s)));
          assert.ok(
            back.every((n) => n > 0),
            'all relayed',
          );
          // The newest is remembered; the oldest is forgotten (at most 2 * capacity kept).
          await send(r, request(echo.port, salts[7]!));
          const replayNewest = last(r);
          const forgotten = (await send(r, request(echo.port, salts[0]!))) > 0;
          return [
            `${replayNewest} ${forgotten}`,
            sharedReplayFilters(bufs).clientSalts.serialize(),
            leanPathChecked() - checked,
          ];
        } finally {
          await r.server.close();
        }
      }
      const reference = new SaltFilter(3);
      for (const s of [...salts, salts[0]!]) reference.add(s);
      const native = await rotate(true);
      const js = await rotate(false);
      assert.deepEqual(native[0], 'ERR_REPLAY_CLIENT true');
      assert.deepEqual(
        native[1],
        reference.serialize(),
        'the same salts, generations and order as JS’s filter',
      );
      assert.deepEqual([native[0], native[1]], [js[0], js[1]]);
      assert.deepEqual([native[2], js[2]], [9, 0]);
    });

    it('a key whose secret another key shares is left to JS (its walk names the key): relayed, not checked here', async () => {
      const bufs = createSharedReplay(1000);
      const r = await start(bufs, true, [KEY, { ...KEY, id: 'k1-twin' }]);
      try {
        const [served, checked] = [leanPathServed(), leanPathChecked()];
        assert.ok((await send(r, request(echo.port, randomBytes(32)))) > 0, 'relayed');
        assert.deepEqual([leanPathServed() - served, leanPathChecked() - checked, last(r)], [0, 0, 'OK']);
      } finally {
        await r.server.close();
      }
    });

    it('with a filter’s lock held, the addon leaves the checks to JS, which waits for the lock (no wake from the addon)', async () => {
      const bufs = createSharedReplay(1000);
      const r = await start(bufs);
      const lock = new Int32Array(bufs.client, 0, 1);
      try {
        // 1: held by JS on another thread (it wakes waiters); 3: the addon's state (it never does).
        for (const held of [1, 3]) {
          Atomics.store(lock, 0, held);
          const w = new Worker(
            `const { workerData: [sab, wake] } = require('node:worker_threads');
             const lock = new Int32Array(sab, 0, 1);
             setTimeout(() => { Atomics.store(lock, 0, 0); if (wake) Atomics.notify(lock, 0); }, 200);`,
            { eval: true, workerData: [bufs.client, held === 1] },
          );
          const [served, checked, t0] = [leanPathServed(), leanPathChecked(), Date.now()];
          const salt = randomBytes(32);
          assert.ok((await send(r, request(echo.port, salt))) > 0, `relayed (lock ${held})`);
          const ms = Date.now() - t0;
          assert.deepEqual(
            [leanPathServed() - served, leanPathChecked() - checked],
            [1, 0],
            `lean, checked in JS (lock ${held})`,
          );
          assert.ok(ms < IDLE_MS * 4 + 1000, `${ms} ms`);
          assert.deepEqual(
            [Atomics.load(lock, 0), sharedReplayFilters(bufs).clientSalts.has(salt)],
            [0, true],
          );
          await w.terminate();
        }
      } finally {
        await r.server.close();
      }
    });
  },
);
