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
      const echo = dgram.createSocket('udp4');
      echo.on('message', (msg, r) => echo.send(msg, r.port, r.address));
      await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
      t.after(() => new Promise<void>((r) => echo.close(() => r())));
      const k = key('udp');
      const { p } = await plane(t, { keys: [k], udp: true });
      assert.equal(p.started, false);
      const m = getAeadMethod(k.method);
      const master = evpBytesToKey(k.secret, m.keySize);
      const client = dgram.createSocket('udp4');
      t.after(() => new Promise<void>((r) => client.close(() => r())));
      const reply = new Promise<Buffer>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no UDP reply within 10 s')), 10_000);
        client.once('message', (msg) => {
          clearTimeout(timer);
          resolve(msg);
        });
      });
      // Exactly one datagram: the first one itself must be relayed, not only start the workers.
      const payload = Buffer.from('first datagram');
      const dst = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.address().port };
      client.send(encodeUdp2017(m, master, dst, payload), p.address.port, '127.0.0.1');
      const back = decodeUdp2017(m, master, await reply);
      assert.equal(back.payload.toString(), payload.toString());
      assert.equal(p.started, true);
    });

    test('closed before any connection: the port is free again and no worker ever ran', async (t) => {
      const { p } = await plane(t, { udp: true });
      const port = p.address.port;
      await p.close();
      await p.whenStarted(); // resolves (nothing started) rather than hanging
      assert.equal(p.started, false);
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
    });

    test('startAtBoot: the workers run before the plane resolves', async (t) => {
      const { p } = await plane(t, { startAtBoot: true });
      assert.equal(p.started, true);
    });
  },
);
