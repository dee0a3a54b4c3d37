/**
 * Data-plane workers started on demand (src/server/workers/pool.ts, native/fd_watch.cc): the
 * plane resolves with its sockets listening and no worker running; the first connection (or
 * datagram) starts the workers, which accept what waited in the backlog. Nothing is lost in the
 * gap: a burst of connections against a cold plane all complete, with a key added before the
 * first connection, usage counted and the shared replay filters refusing a replay (the fresh
 * first packet of a new connection is the negative control). startAtBoot starts them at once.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { startWorkerPlane, type WorkerPlane, type WorkerPlaneOptions } from '../../src/server/index.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { silentLogger } from '../../src/shared/logger.js';
import { AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { decodeUdp2017, encodeUdp2017 } from '../../src/protocol/shadowsocks/udp.js';
import { onDemandAvailable } from '../../src/server/workers/reuseport.js';
import { skipUnless } from '../helpers/prereq.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';

const METHOD = 'chacha20-ietf-poly1305';
const BURST = 40;
const key = (id: string): RuntimeKey => ({
  id,
  method: METHOD,
  secret: `demand-${id}-${randomBytes(4).toString('hex')}`,
});

async function plane(
  t: { after: (fn: () => Promise<void>) => void },
  extra: Partial<WorkerPlaneOptions> = {},
) {
  const usage = new Map<string, { up: number; down: number }>();
  const p: WorkerPlane = await startWorkerPlane({
    workers: 2,
    keys: [],
    port: 0,
    host: '127.0.0.1',
    logger: silentLogger,
    allowPrivateDestinations: true,
    reportMs: 50,
    usageFlushMs: 50,
    usage: {
      addBytes(id, up, down) {
        const u = usage.get(id) ?? { up: 0, down: 0 };
        usage.set(id, { up: u.up + up, down: u.down + down });
      },
    },
    ...extra,
  });
  t.after(() => p.close());
  return { p, usage };
}

/** Send `first` on a new raw connection: the bytes that came back before it closed (bounded). */
function exchange(port: number, first: Buffer, giveUpMs = 4000): Promise<number> {
  return new Promise((resolve) => {
    let bytes = 0;
    const s = net.connect({ port, host: '127.0.0.1' });
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(bytes);
    };
    const timer = setTimeout(done, giveUpMs);
    s.on('connect', () => s.write(first));
    s.on('data', (d: Buffer) => {
      bytes += d.length;
      done();
    });
    s.on('end', done);
    s.on('error', done);
  });
}

/** Sockets this process has open (/proc/self/fd). */
function sockets(): number {
  return readdirSync('/proc/self/fd').filter((f) => {
    try {
      return readlinkSync(`/proc/self/fd/${f}`).startsWith('socket:');
    } catch {
      return false;
    }
  }).length;
}

/** Rejects unless both TCP and UDP `port` on loopback can be bound again. */
async function assertPortFree(port: number): Promise<void> {
  for (const type of ['tcp', 'udp'] as const) {
    await new Promise<void>((resolve, reject) => {
      if (type === 'tcp') {
        const s = net.createServer().once('error', reject);
        s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
      } else {
        const s = dgram.createSocket('udp4').once('error', reject);
        s.bind(port, '127.0.0.1', () => s.close(() => resolve()));
      }
    });
  }
}

/** A UDP client of key `k`: ask(payload) sends one datagram through the plane, the echo's reply or undefined. */
async function udpClient(t: { after: (fn: () => Promise<void>) => void }, k: RuntimeKey, port: () => number) {
  const echo = dgram.createSocket('udp4');
  echo.on('message', (msg, r) => echo.send(msg, r.port, r.address));
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => echo.close(() => r())));
  const client = dgram.createSocket('udp4');
  t.after(() => new Promise<void>((r) => client.close(() => r())));
  const m = getAeadMethod(k.method);
  const master = evpBytesToKey(k.secret, m.keySize);
  const dst = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.address().port };
  return (payload: string, waitMs: number): Promise<string | undefined> =>
    new Promise((resolve) => {
      const onMessage = (msg: Buffer): void => {
        clearTimeout(timer);
        resolve(decodeUdp2017(m, master, msg).payload.toString());
      };
      const timer = setTimeout(() => {
        client.off('message', onMessage);
        resolve(undefined);
      }, waitMs);
      client.once('message', onMessage);
      client.send(encodeUdp2017(m, master, dst, Buffer.from(payload)), port(), '127.0.0.1');
    });
}

const sum = (p: WorkerPlane, f: (w: ReturnType<WorkerPlane['workerStats']>[number]) => number): number =>
  p.workerStats().reduce((n, w) => n + f(w), 0);

describe(
  'data-plane workers started on demand',
  { skip: skipUnless(onDemandAvailable(), 'the native addon (node scripts/build-native.mjs)') },
  () => {
    test('a burst against a cold plane: every connection completes, keys, usage and replay as before', async (t) => {
      const echo: TestServer = await startEcho();
      t.after(() => echo.close());
      const { p, usage } = await plane(t);
      assert.equal(p.started, false, 'no worker before the first connection');
      assert.deepEqual(
        sum(p, (w) => w.opened),
        0,
      );
      // A key added while no worker runs works on the very first connection.
      const k = key('first');
      await p.applyKeyDelta({ upsert: [k], remove: [] });
      assert.equal(p.started, false, 'a key change starts nothing');

      const payloads = Array.from({ length: BURST }, (_, i) => Buffer.from(`ping-${i}-${'x'.repeat(i)}`));
      const tunnels = await Promise.all(
        payloads.map((initial) =>
          openTestTunnel({
            port: p.address.port,
            method: k.method,
            password: k.secret,
            target: { host: '127.0.0.1', port: echo.port },
            initial,
          }),
        ),
      );
      const got = await Promise.all(tunnels.map((tn, i) => tn.read(payloads[i]!.length, 20_000)));
      for (const [i, g] of got.entries()) assert.equal(g.toString(), payloads[i]!.toString());
      assert.equal(p.started, true);
      for (const tn of tunnels) tn.destroy();

      await waitFor(() => sum(p, (w) => w.authenticated) === BURST || undefined, {
        timeoutMs: 10_000,
        message: 'every connection reported',
      });
      const bytes = payloads.reduce((n, b) => n + b.length, 0);
      await waitFor(() => (usage.get(k.id)?.down ?? 0) >= bytes || undefined, {
        timeoutMs: 10_000,
        message: 'usage counted',
      });
      const u = usage.get(k.id)!;
      assert.ok(u.up >= bytes && u.down >= bytes, `usage ${u.up}/${u.down} covers ${bytes} bytes each way`);

      // The shared replay filters saw every first packet: a replay is refused (no echo)...
      assert.equal(await exchange(p.address.port, tunnels[0]!.sentWire[0]!), 0, 'replay refused');
      // ...while a fresh first packet (never sent) is answered: the negative control.
      const m = getAeadMethod(k.method);
      const fresh = new AeadEncoder(m, evpBytesToKey(k.secret, m.keySize)).encode(
        Buffer.from([1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff, 0x70]),
      );
      assert.ok((await exchange(p.address.port, fresh)) > 0, 'a fresh connection is answered');
    });

    test('a datagram to a cold plane starts the workers and is relayed', async (t) => {
      const k = key('udp');
      const { p } = await plane(t, { keys: [k], udp: true });
      const ask = await udpClient(t, k, () => p.address.port);
      assert.equal(p.started, false);
      // Exactly one datagram: the first one itself must be relayed, not only start the workers.
      assert.equal(await ask('first datagram', 10_000), 'first datagram');
      await p.whenStarted(); // worker 0 may relay it before worker 1 listens
      assert.equal(p.started, true);
    });

    test('worker 0 (UDP) stops after listening while worker 1 still starts: it is restarted', async (t) => {
      const k = key('crash');
      const { p } = await plane(t, {
        keys: [k],
        udp: true,
        testHooks: true,
        restart: { backoffMs: 50 },
        testStartDelay: { worker: 1, ms: 1500 }, // the start is still under way when worker 0 stops
      });
      const ask = await udpClient(t, k, () => p.address.port);
      assert.equal(await ask('one', 10_000), 'one');
      assert.equal(p.started, false, 'worker 1 has not listened yet');
      p.crashWorker!(0);
      await p.whenStarted();
      await waitFor(() => p.workerStats()[0]!.restarts === 1 || undefined, {
        timeoutMs: 10_000,
        message: 'worker 0 restarted',
      });
      // The restarted worker binds UDP again: a new datagram is relayed (bounded retries).
      let back: string | undefined;
      for (let i = 0; i < 20 && back === undefined; i++) back = await ask('two', 500);
      assert.equal(back, 'two');
      assert.deepEqual(
        p.workerStats().map((w) => w.restarts),
        [1, 0],
      );
    });

    // A worker whose start fails (UDP options its relay refuses) is ended before its sockets are
    // closed: no abort, no hang, one line, both ports free and no socket left open.
    for (const startAtBoot of [false, true]) {
      test(
        `a worker start that fails (${startAtBoot ? 'startAtBoot' : 'on demand'}): one line, ports and sockets freed`,
        { timeout: 30_000 },
        async (t) => {
          const before = sockets();
          const reasons: string[] = [];
          const bad = { udp: { maxSessions: -1 }, onGiveUp: (r: string) => reasons.push(r), startAtBoot };
          let port: number;
          if (startAtBoot) {
            port = await new Promise<number>((r) => {
              const s = net.createServer().listen(0, '127.0.0.1', () => {
                const a = s.address() as net.AddressInfo;
                s.close(() => r(a.port));
              });
            });
            await assert.rejects(
              plane(t, { ...bad, port }),
              /cannot start UDP on port \d+: udp idleMs, maxSessions and maxSessionsPerKey must be positive$/,
            );
          } else {
            const { p } = await plane(t, bad);
            port = p.address.port;
            const s = net.connect({ port, host: '127.0.0.1' }).on('error', () => undefined);
            t.after(() => void s.destroy());
            await assert.rejects(p.whenStarted(), /cannot start UDP on port/);
            assert.equal(reasons.length, 1);
            assert.match(
              reasons[0]!,
              /^data-plane workers could not start: cannot start UDP on port \d+: [^\n]*stopping the server$/,
            );
            s.destroy();
            await p.close();
          }
          await assertPortFree(port);
          await waitFor(() => sockets() <= before || undefined, {
            timeoutMs: 5000,
            message: `sockets ${sockets()} > ${before}`,
          });
        },
      );
    }

    test('closed before any connection: the port is free again and no worker ever ran', async (t) => {
      const { p } = await plane(t, { udp: true });
      const port = p.address.port;
      await p.close();
      await p.whenStarted(); // resolves (nothing started) rather than hanging
      assert.equal(p.started, false);
      await assertPortFree(port);
    });

    test('startAtBoot: the workers run before the plane resolves', async (t) => {
      const { p } = await plane(t, { startAtBoot: true });
      assert.equal(p.started, true);
    });
  },
);
