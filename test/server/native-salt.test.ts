/**
 * The response salt drawn and filed by the addon (LADDER_NATIVE_SALT, relay_pair.cc relayConnect's
 * serverSalts): with the port's SIP004 filters shared, relayConnect draws the salt of the server's
 * response stream and adds it to the server-salt filter itself, under the filter's try-lock, only
 * once the connect was not refused at once; with the lock busy it hands the salt back in
 * pending[0] for JS to add. A server's response salt is in the filter either way, so the client
 * that reflects it is refused on both settings.
 */
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { createSharedReplay, sharedReplayFilters } from '../../src/server/workers/shared-salts.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { silentLogger } from '../../src/shared/logger.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { nativeAccept } from '../../src/transport/native-stream.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';
import { probeOnce } from '../probing/prober.js';

const fns = nativeRelay();
const addon = fns as unknown as { create(m: number, k: Uint8Array, enc: boolean): object } | undefined;
const available = nativeAccept()?.acceptKeys !== undefined && typeof fns?.relayConnect === 'function';
const KEY: RuntimeKey = { id: 'k1', method: 'aes-256-gcm', secret: 'native-salt-pw' };
const IDLE_MS = 300;

describe(
  'the response salt drawn and filed by the addon',
  { skip: skipUnless(available, 'the native addon with acceptKeys and relayConnect (Linux)') },
  () => {
    let echo: TestServer;
    before(async () => void (echo = await startEcho()));
    after(() => echo.close());

    /** relayConnect for an id no accept holds (the relay ends once connected), with the filter. */
    function connect(
      ip: string,
      port: number,
      filter: Uint8Array,
      ends: number[],
    ): [Uint8Array | undefined, unknown] {
      const pending: [Uint8Array | undefined, undefined, Uint8Array | undefined] = [
        undefined,
        undefined,
        undefined,
      ];
      try {
        fns!.relayConnect!(
          2 ** 30,
          ip,
          port,
          2000,
          addon!.create(1, randomBytes(32), false),
          randomBytes(32), // the master key: the relay derives its encoder from it and the salt
          pending,
          2000,
          (reason) => ends.push(reason),
          false,
          filter,
        );
      } catch (err) {
        return [pending[0], err];
      }
      return [pending[0], undefined];
    }

    it('added in the addon when its lock is free, handed back when JS holds it, not added when refused at once', async () => {
      const bufs = createSharedReplay(1000);
      const view = sharedReplayFilters(bufs);
      const filter = view.sip004Bytes![1];
      const lock = new Int32Array(bufs.server, 0, 1);
      const ends: number[] = [];

      // Free: one salt more in the filter, none handed back.
      let [back, err] = connect('127.0.0.1', echo.port, filter, ends);
      assert.deepEqual([back, err, view.serverSalts.size], [undefined, undefined, 1]);

      // Held by JS (state 1): nothing added; the salt comes back for the caller to add.
      Atomics.store(lock, 0, 1);
      [back, err] = connect('127.0.0.1', echo.port, filter, ends);
      Atomics.store(lock, 0, 0);
      assert.equal(err, undefined);
      assert.ok(back instanceof Uint8Array && back.length === 32, 'the salt handed back');
      assert.equal(view.serverSalts.size, 1);
      assert.equal(view.serverSalts.has(back), false);
      view.serverSalts.add(back);
      assert.deepEqual([view.serverSalts.size, view.serverSalts.has(back)], [2, true]);

      // Refused at once (the broadcast address, no SO_BROADCAST): thrown with its errno, nothing added.
      [back, err] = connect('255.255.255.255', 80, filter, ends);
      assert.equal(typeof (err as { errno?: unknown } | undefined)?.errno, 'number', 'refused at once');
      assert.deepEqual([back, view.serverSalts.size], [undefined, 2]);

      // Not a filter's buffer: refused before anything starts.
      [, err] = connect('127.0.0.1', echo.port, new Uint8Array(64), ends);
      assert.match((err as Error).message, /serverSalts must be a shared salt filter/);
      await waitFor(() => ends.length === 2 && fns!.relayLive() === 0, { timeoutMs: 3000 });
    });

    it('a server’s response salt is in the shared filter and its reflection refused, on both settings', async () => {
      const m = getAeadMethod('aes-256-gcm');
      const master = evpBytesToKey(KEY.secret, m.keySize);
      const request = (salt?: Buffer): Buffer =>
        new AeadEncoder(m, master, salt).encode(
          Buffer.concat([encodeAddress(toSocksAddress('127.0.0.1', echo.port)), randomBytes(16)]),
        );
      const outcomes: string[] = [];
      for (const nativeSalt of [true, false]) {
        const bufs = createSharedReplay(1000);
        const view = sharedReplayFilters(bufs);
        const closed: ConnectionClosedEvent[] = [];
        const server = new ShadowsocksServer({
          keys: [KEY],
          allowPrivateDestinations: true,
          nativeSalt,
          replayFilters: sharedReplayFilters(bufs),
          timeouts: { idleMs: IDLE_MS, connectMs: 2000 },
          logger: silentLogger,
          hooks: { onConnectionClosed: (e) => closed.push(e) },
        });
        const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
        try {
          const data = randomBytes(64);
          const t = await openTestTunnel({
            port,
            method: KEY.method,
            password: KEY.secret,
            target: { host: '127.0.0.1', port: echo.port },
            initial: data,
          });
          assert.deepEqual(await t.read(data.length), data);
          t.end();
          await t.closed;
          await waitFor(() => closed.length === 1, { timeoutMs: 2000 });
          const salt = Buffer.concat(t.receivedWire).subarray(0, m.saltSize);
          const give = { halfClose: false, giveUpMs: IDLE_MS * 4 };
          const reflected = await probeOnce(port, { label: 'reflected', payload: request(salt) }, give);
          await waitFor(() => closed.length === 2, { timeoutMs: 2000 });
          outcomes.push(
            `${closed[0]!.status} ${view.serverSalts.has(salt)} ${view.serverSalts.size} ` +
              `${reflected.bytesBack} ${closed[1]!.status}`,
          );
        } finally {
          await server.close();
        }
      }
      assert.deepEqual(outcomes, ['OK true 1 0 ERR_REPLAY_SERVER', 'OK true 1 0 ERR_REPLAY_SERVER']);
    });
  },
);
