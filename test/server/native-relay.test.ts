/**
 * The native TCP relay (native/relay_pair.cc, src/server/native-relay.ts): a raw SIP004
 * connection is handed to it after the handshake, and must behave as relay.ts does - bytes both
 * ways, half-close, idle timeout, a tampered chunk ends it, an operator close ends it, usage
 * counted exactly as the JS path counts it, nothing left running. Each case runs the server with
 * the native relay and, as the control, without it (relayLive() says which one carried it).
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ShadowsocksServer } from '../../src/server/server.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import type { Lookup } from '../../src/server/destination.js';
import { nativeRelayFromEnv } from '../../src/transport/native-handoff.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { openTestTunnel, type TestTunnel } from '../helpers/test-client.js';
import { fdOf, serve, startEcho, type TestServer } from '../helpers/net.js';
import { usageTotals } from '../helpers/data-plane.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep, waitFor } from '../helpers/wait.js';

const relayFns = nativeRelay();
const NEED = 'the native addon with relayPair (Linux; npm run build:native)';
const KEY = { id: 'k1', method: 'aes-256-gcm', secret: 'native-relay-pw' };
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

type Dest = Pick<TestServer, 'port' | 'close'>;

/** A destination server that keeps each socket half-open after the client's FIN. */
const startDest = (handler: (s: net.Socket) => void): Promise<TestServer> =>
  serve(handler, { allowHalfOpen: true });

interface Running {
  server: ShadowsocksServer;
  port: number;
  closed: ConnectionClosedEvent[];
  usage: Map<string, { up: number; down: number }>;
}

async function startServer(native: boolean, idleMs = 5_000, lookup?: Lookup): Promise<Running> {
  const closed: ConnectionClosedEvent[] = [];
  const { sink, usage } = usageTotals();
  const server = new ShadowsocksServer({
    keys: [KEY],
    allowPrivateDestinations: true,
    nativeRelay: native,
    timeouts: { idleMs },
    ...(lookup ? { lookup } : {}),
    usageFlushMs: 50,
    usage: sink,
    hooks: { onConnectionClosed: (e) => closed.push(e) },
  });
  const addr = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port: addr.port, closed, usage };
}

const live = (): number => relayFns?.relayLive() ?? 0;

function tunnel(r: Running, dest: Dest, initial?: Buffer, host = '127.0.0.1'): Promise<TestTunnel> {
  return openTestTunnel({
    port: r.port,
    method: KEY.method,
    password: KEY.secret,
    target: { host, port: dest.port },
    ...(initial ? { initial } : {}),
  });
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

describe('native TCP relay', { skip: skipUnless(relayFns !== undefined, NEED) }, () => {
  let echo: Dest;
  before(async () => {
    echo = await startEcho();
  });
  after(async () => {
    await echo.close();
  });

  for (const native of [true, false]) {
    const which = native ? 'native' : 'JS (control)';

    it(`${which}: relays both ways, counts usage, and only the native server uses relayPair`, async () => {
      const r = await startServer(native);
      try {
        const first = randomBytes(3000);
        const t = await tunnel(r, echo, first);
        assert.deepEqual(await t.read(first.length), first);
        await waitFor(() => r.closed.length === 0 && live() === (native ? 1 : 0), { timeoutMs: 2000 });
        const big = randomBytes(3 * 1024 * 1024 + 17);
        t.send(big);
        const got = await t.read(first.length + big.length, 20_000);
        assert.equal(sha(got.subarray(first.length)), sha(big));
        r.server.flushUsage();
        const mid = r.usage.get(KEY.id);
        assert.ok(mid && mid.up > big.length && mid.down > big.length, 'usage counted while relaying');
        t.end();
        const how = await t.closed;
        assert.equal(how.kind, 'fin');
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        const e = r.closed[0]!;
        assert.equal(e.status, 'OK');
        const wireUp = t.sentWire.reduce((n, b) => n + b.length, 0);
        const wireDown = t.receivedWire.reduce((n, b) => n + b.length, 0);
        assert.equal(e.bytesUp, wireUp, 'bytes up = the wire bytes the client sent');
        assert.equal(e.bytesDown, wireDown, 'bytes down = the wire bytes the client received');
        r.server.flushUsage();
        assert.deepEqual(r.usage.get(KEY.id), { up: wireUp, down: wireDown }, 'usage counted once, exactly');
        assert.equal(live(), 0);
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: bytes the client sent while the destination was dialled are counted once`, async () => {
      // The name resolves only when released: what the client sends meanwhile waits in the
      // paused socket's buffer, and reaches the relay at the hand-off (takeBuffered).
      let resolveName!: () => void;
      const named = new Promise<void>((res) => (resolveName = res));
      let asked = false;
      const r = await startServer(native, 5_000, async () => {
        asked = true;
        await named;
        return [{ address: '127.0.0.1', family: 4 }];
      });
      try {
        const t = await tunnel(r, echo, Buffer.from('first'), 'slow.test');
        await waitFor(() => asked, { timeoutMs: 2000 });
        const more = randomBytes(5000);
        t.send(more);
        await sleep(200); // read by Node into the paused socket's buffer
        resolveName();
        const got = await t.read(5 + more.length);
        assert.equal(sha(got.subarray(5)), sha(more));
        assert.equal(live(), native ? 1 : 0);
        t.end();
        await t.closed;
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        const wireUp = t.sentWire.reduce((n, b) => n + b.length, 0);
        const wireDown = t.receivedWire.reduce((n, b) => n + b.length, 0);
        assert.equal(r.closed[0]!.bytesUp, wireUp, 'bytes up = the wire bytes the client sent, once');
        r.server.flushUsage();
        assert.deepEqual(r.usage.get(KEY.id), { up: wireUp, down: wireDown });
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: an idle timeout with a fraction of a millisecond still relays`, async () => {
      const r = await startServer(native, 5_000.5);
      try {
        const t = await tunnel(r, echo, Buffer.from('hello'));
        assert.equal((await t.read(5)).toString(), 'hello');
        assert.equal(live(), native ? 1 : 0);
        t.end();
        await t.closed;
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        assert.equal(r.closed[0]!.status, 'OK');
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: half-close - the destination answers after the client's FIN`, async () => {
      const replyAfterEnd = await startDest((s) => {
        const parts: Buffer[] = [];
        s.on('data', (d: Buffer) => parts.push(d));
        s.on('end', () => {
          const all = Buffer.concat(parts);
          s.end(Buffer.concat([Buffer.from('got:'), Buffer.from(sha(all))]));
        });
      });
      const r = await startServer(native);
      try {
        const body = randomBytes(200_000);
        const t = await tunnel(r, replyAfterEnd, body.subarray(0, 100));
        t.send(body.subarray(100));
        await waitFor(() => live() === (native ? 1 : 0), { timeoutMs: 2000 });
        t.end();
        const want = `got:${sha(body)}`;
        const got = await t.read(want.length);
        assert.equal(got.toString(), want);
        assert.equal((await t.closed).kind, 'fin');
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        assert.equal(r.closed[0]!.status, 'OK');
      } finally {
        await r.server.close();
        await replyAfterEnd.close();
      }
    });

    it(`${which}: the idle timeout closes a quiet relayed connection`, async () => {
      const r = await startServer(native, 300);
      try {
        const t = await tunnel(r, echo, Buffer.from('ping'));
        await t.read(4);
        const start = Date.now();
        await t.closed;
        const waited = Date.now() - start;
        assert.ok(waited >= 200, `closed after ${waited} ms, before the idle timeout`);
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        assert.equal(r.closed[0]!.status, 'OK');
        assert.equal(live(), 0);
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: a tampered chunk ends the relay as ERR_CIPHER; an intact one does not`, async () => {
      const r = await startServer(native);
      try {
        const t = await tunnel(r, echo, Buffer.from('hello'));
        await t.read(5);
        await waitFor(() => live() === (native ? 1 : 0), { timeoutMs: 2000 });
        // Control: an intact chunk still goes through.
        t.send(Buffer.from('again'));
        await t.read(10);
        assert.equal(r.closed.length, 0);
        // A chunk with one flipped bit: authentication fails, both sides close.
        const bad = Buffer.from(t.sentWire[0]!.subarray(0, 40)); // any 34+ bytes, wrong for this nonce
        bad[5]! ^= 1;
        t.socket.write(bad);
        await t.closed;
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        assert.equal(r.closed[0]!.status, 'ERR_CIPHER');
        assert.equal(live(), 0);
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: back-pressure - a client that does not read stops the relay reading the destination`, async () => {
      const total = 64 * 1024 * 1024;
      const block = randomBytes(1024 * 1024);
      let sent = 0;
      const flood = await startDest((s) => {
        const more = (): void => {
          while (sent < total) {
            sent += block.length;
            if (!s.write(block)) return void s.once('drain', more);
          }
          s.end();
        };
        s.once('data', more);
      });
      const r = await startServer(native);
      try {
        const t = await tunnel(r, flood, Buffer.from('go'));
        t.socket.pause(); // the client reads nothing for a while
        // The source gets ahead only by what the kernel buffers hold (a few MiB per socket):
        // then the relay stops reading it. Without back-pressure it would take all 64 MiB.
        let last = -1;
        await waitFor(
          async () => {
            const settled = sent > 0 && sent === last;
            last = sent;
            await new Promise((resolve) => setTimeout(resolve, 300));
            return settled;
          },
          { timeoutMs: 20_000 },
        );
        assert.ok(sent < total / 2, `the source got ${sent >> 20} MiB out while the client read nothing`);
        t.socket.resume();
        const got = await t.read(total, 60_000);
        assert.equal(sha(got), sha(Buffer.concat(Array.from({ length: total / block.length }, () => block))));
      } finally {
        await r.server.close();
        await flood.close();
      }
    });

    it(`${which}: a refused destination is ERR_CONNECT with its errno, and the client gets a FIN`, async () => {
      const closedPort = await startDest(() => {});
      const port = closedPort.port;
      await closedPort.close(); // nothing listens there now: connect is refused
      const r = await startServer(native);
      try {
        const t = await tunnel(r, { port, close: async () => {} }, Buffer.from('hello'));
        assert.equal((await t.closed).kind, 'fin');
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        assert.equal(r.closed[0]!.status, 'ERR_CONNECT');
        assert.equal(r.closed[0]!.errno, 'ECONNREFUSED');
        assert.equal(live(), 0);
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: closing the key's connections ends a relayed connection (ERR_CLOSED)`, async () => {
      const r = await startServer(native);
      try {
        const t = await tunnel(r, echo, Buffer.from('hello'));
        await t.read(5);
        await waitFor(() => live() === (native ? 1 : 0), { timeoutMs: 2000 });
        assert.equal(r.server.closeKeyConnections(KEY.id), 1);
        await t.closed;
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        assert.equal(r.closed[0]!.status, 'ERR_CLOSED');
        assert.equal(live(), 0);
      } finally {
        await r.server.close();
      }
    });
  }

  it('native: relayClose inside onClose, twice, and relayCounts after the end are safe', async () => {
    const fns = relayFns!;
    const dest = await startEcho();
    let ends = 0;
    const front = await serve((c) => {
      c.pause();
      const d = net.connect({ port: dest.port, host: '127.0.0.1' }, () => {
        const early = c.read() as Buffer | null; // what the front read before the hand-off
        const h: object = fns.relayPair(
          fdOf(c),
          fdOf(d),
          null,
          null,
          [undefined, undefined, early ?? undefined],
          5000,
          (reason) => {
            ends++;
            assert.equal(reason, 3);
            fns.relayClose(h); // re-entered: nothing happens
            fns.relayCounts(h, new Float64Array(2));
          },
        );
        handles.push(h);
        c.removeAllListeners()
          .on('error', () => {})
          .destroy();
        d.removeAllListeners()
          .on('error', () => {})
          .destroy();
      });
    });
    const handles: object[] = [];
    try {
      const s = net.connect({ port: front.port, host: '127.0.0.1' });
      const got: Buffer[] = [];
      s.on('data', (b: Buffer) => got.push(b));
      const closed = new Promise((resolve) => s.on('close', resolve));
      s.on('error', () => {});
      s.write('identity relay');
      await waitFor(() => Buffer.concat(got).toString() === 'identity relay', { timeoutMs: 5000 });
      assert.equal(live(), 1);
      fns.relayClose(handles[0]!);
      fns.relayClose(handles[0]!);
      const counts = new Float64Array(2);
      fns.relayCounts(handles[0]!, counts);
      // Up: the 14 bytes reached the relay as `toDest` (the caller counts those); down: the echo.
      assert.deepEqual([...counts], [0, 14]);
      assert.equal(ends, 1);
      assert.equal(live(), 0);
      await closed;
    } finally {
      await front.close();
      await dest.close();
    }
  });

  it('native: 300 connections (64 at a time) leave no relay and no descriptor behind', async () => {
    const r = await startServer(true);
    try {
      const fdsBefore = openFds();
      let next = 0;
      const one = async (): Promise<void> => {
        const t = await tunnel(r, echo, Buffer.from('x'.repeat(32)));
        await t.read(32);
        t.end();
        await t.closed;
      };
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next < 300) {
            next++;
            await one();
          }
        }),
      );
      await waitFor(() => r.closed.length === 300, { timeoutMs: 10_000 });
      assert.ok(
        r.closed.every((e) => e.status === 'OK'),
        'every connection OK',
      );
      await waitFor(() => live() === 0 && openFds() <= fdsBefore + 2, { timeoutMs: 5000 });
    } finally {
      await r.server.close();
    }
  });
});

it('LADDER_NATIVE_RELAY: the native relay is on by default, 0 turns it off', () => {
  assert.equal(nativeRelayFromEnv({}), true);
  assert.equal(nativeRelayFromEnv({ LADDER_NATIVE_RELAY: '1' }), true);
  assert.equal(nativeRelayFromEnv({ LADDER_NATIVE_RELAY: '0' }), false);
});
