/**
 * relayConnect's connect completed inside connect(2) (LADDER_CONNECT_AT_ONCE, on by default): on
 * loopback the kernel runs the handshake inside the call, so the relay takes the client and
 * sends the first bytes before relayConnect returns, with no wake-up for the writable event.
 * The addon case shows which path ran (the client leaves the accept table inside the call, or a
 * loop turn later); the server cases run both ways and must give the same bytes, statuses and
 * usage, a refused dial included.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { connectAtOnceFromEnv } from '../../src/server/native-relay.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { silentLogger } from '../../src/shared/logger.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { nativeAccept, nativeAcceptLive } from '../../src/transport/native-stream.js';
import { usageTotals } from '../helpers/data-plane.js';
import { fdOf, freePort, readExactly, startEcho, type TestServer } from '../helpers/net.js';
import { relayConnectRandom } from '../helpers/relay-connect.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep, waitFor } from '../helpers/wait.js';

const fns = nativeRelay();
const available = nativeAccept()?.acceptPending !== undefined && typeof fns?.relayConnect === 'function';
const M = getAeadMethod('aes-256-gcm');
const KEY = { id: 'k1', method: M.name, secret: 'at-once-pw' };
const MASTER = evpBytesToKey(KEY.secret, M.keySize);

/** A client's first bytes for 127.0.0.1:port with `data`. */
const request = (port: number, data: Buffer): Buffer =>
  new AeadEncoder(M, MASTER).encode(
    Buffer.concat([Buffer.from([1, 127, 0, 0, 1, port >> 8, port & 0xff]), data]),
  );

describe(
  'relayConnect at once',
  { skip: skipUnless(available, 'the native addon with relayConnect (Linux)') },
  () => {
    let echo: TestServer;
    before(async () => {
      echo = await startEcho();
    });
    after(async () => {
      await echo.close();
    });

    it('LADDER_CONNECT_AT_ONCE: on by default, 0 turns it off', () => {
      assert.equal(connectAtOnceFromEnv({}), true);
      assert.equal(connectAtOnceFromEnv({ LADDER_CONNECT_AT_ONCE: '0' }), false);
    });

    it('the addon: with atOnce the client is taken inside the call; without, a loop turn later', async () => {
      const acc = nativeAccept()!;
      const srv = net.createServer();
      await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
      const port = (srv.address() as net.AddressInfo).port;
      const fd = fdOf(srv);
      const seen: { atOnce: boolean; ip: string; before: number; after: number }[] = [];
      const ends: number[] = [];
      let atOnce = true;
      let ip = '127.0.0.1';
      const listener = acc.acceptListen(
        fd,
        (id) => {
          acc.connRead(id, false); // JS keeps it paused while dialling, as connection.ts does
          const before = nativeAcceptLive();
          relayConnectRandom(fns!, id, ip, echo.port, (reason) => ends.push(reason), atOnce);
          seen.push({ atOnce, ip, before, after: nativeAcceptLive() });
        },
        () => {},
      );
      srv.close();
      try {
        // The loopback as an IPv4-mapped IPv6 literal is a local destination too (TCP_INFO is
        // asked only for those: tcp_connect.cc Established).
        const modes: [boolean, string][] = [
          [true, '127.0.0.1'],
          [false, '127.0.0.1'],
          [true, '::ffff:127.0.0.1'],
        ];
        for (const [mode, dest] of modes) {
          atOnce = mode;
          ip = dest;
          const c = net.connect(port, '127.0.0.1');
          c.on('error', () => {});
          c.write('first bytes');
          const n = seen.length + 1;
          await waitFor(() => seen.length === n, { timeoutMs: 2000 });
          await sleep(20);
          c.destroy();
        }
        assert.deepEqual(seen, [
          { atOnce: true, ip: '127.0.0.1', before: 1, after: 0 },
          { atOnce: false, ip: '127.0.0.1', before: 1, after: 1 },
          { atOnce: true, ip: '::ffff:127.0.0.1', before: 1, after: 0 },
        ]);
        await waitFor(() => ends.length === 3 && nativeAcceptLive() === 0 && fns!.relayLive() === 0, {
          timeoutMs: 3000,
        });
      } finally {
        acc.acceptClose(listener);
      }
    });

    it('the addon: a master key as the encoder needs the decoder’s key length and a salt as long', () => {
      const addon = fns as unknown as { create(m: number, k: Uint8Array, enc: boolean): object };
      const dec = addon.create(1, randomBytes(32), false);
      for (const [key, salt] of [
        [randomBytes(16), randomBytes(32)],
        [randomBytes(32), randomBytes(16)],
        [randomBytes(32), undefined],
      ] as const) {
        assert.throws(
          () =>
            fns!.relayConnect!(
              1,
              '127.0.0.1',
              echo.port,
              1000,
              dec,
              key,
              [salt, undefined, undefined],
              1000,
              () => {},
            ),
          TypeError,
        );
      }
      assert.equal(fns!.relayLive(), 0);
    });

    for (const atOnce of [true, false]) {
      const which = atOnce ? 'at once' : 'on the writable event (control)';

      it(`${which}: echo, usage and statuses; a refused dial is ERR_CONNECT with a FIN`, async () => {
        const closed: ConnectionClosedEvent[] = [];
        const { sink, usage } = usageTotals();
        const server = new ShadowsocksServer({
          keys: [KEY],
          allowPrivateDestinations: true,
          connectAtOnce: atOnce,
          timeouts: { idleMs: 2000, connectMs: 2000 },
          usage: sink,
          logger: silentLogger,
          hooks: { onConnectionClosed: (e) => closed.push(e) },
        });
        const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
        try {
          const data = randomBytes(64);
          const wire = request(echo.port, data);
          const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
          s.write(wire);
          const reply = await readExactly(s, M.saltSize + 18 + data.length + 16, 5000);
          assert.deepEqual(Buffer.concat(new AeadDecoder(M, MASTER).push(reply)), data);
          s.end();
          await new Promise((res) => s.once('close', res));

          const dead = await freePort(); // nothing listens: refused
          const r = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
          const back: Buffer[] = [];
          r.on('data', (b: Buffer) => back.push(b));
          r.write(request(dead, data));
          await new Promise((res) => r.once('end', res));
          r.destroy();
          assert.equal(Buffer.concat(back).length, 0);

          await waitFor(() => closed.length === 2, { timeoutMs: 3000 });
          assert.deepEqual(
            closed.map((e) => [e.status, e.keyId, e.errno]),
            [
              ['OK', 'k1', undefined],
              ['ERR_CONNECT', 'k1', 'ECONNREFUSED'],
            ],
          );
          assert.equal(closed[0]!.bytesUp, wire.length);
          assert.equal(closed[0]!.bytesDown, reply.length);
          server.flushUsage();
          assert.deepEqual(usage.get('k1'), { up: wire.length * 2, down: reply.length });
          assert.equal(fns!.relayLive(), 0);
        } finally {
          await server.close();
        }
      });
    }
  },
);
