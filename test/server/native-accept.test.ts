/**
 * The native accept (native/tcp_accept.cc, src/transport/native-stream.ts): raw TCP connections
 * accepted and read in the addon until the hand-off to the native relay, no net.Socket each.
 * Every case runs against a server with it and, as the control, one without it (the JS
 * listener); acceptLive() says which one held the connection. The failure reaction must be the
 * same byte for byte and close for close: nothing written, FIN only after the peer's FIN or the
 * idle timeout, never RST.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Aead2022RequestEncoder, Aead2022ResponseDecoder } from '../../src/protocol/shadowsocks/aead2022.js';
import { getAead2022Method } from '../../src/protocol/shadowsocks/methods2022.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import type { Lookup } from '../../src/server/destination.js';
import { startWorkerPlane } from '../../src/server/index.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { reusePortAvailable } from '../../src/server/workers/reuseport.js';
import { silentLogger } from '../../src/shared/logger.js';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { nativeAccept, nativeAcceptFromEnv, nativeAcceptLive } from '../../src/transport/native-stream.js';
import { fdOf, startEcho, type TestServer } from '../helpers/net.js';
import { usageTotals } from '../helpers/data-plane.js';
import { startLowFdChild } from '../helpers/low-fd-child.js';
import { skipUnless } from '../helpers/prereq.js';
import { openTestTunnel, type TestTunnel } from '../helpers/test-client.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { probeOnce, type ProbeResult } from '../probing/prober.js';

const NEED = 'the native addon with acceptListen and relayPair (Linux; npm run build:native)';
const available = nativeAccept() !== undefined && nativeRelay() !== undefined;
const KEY = { id: 'k1', method: 'aes-256-gcm', secret: 'native-accept-pw' };
const KEY2022 = {
  id: 'k2022',
  method: '2022-blake3-aes-128-gcm',
  secret: randomBytes(16).toString('base64'),
};
const IDLE_MS = 600;

interface Running {
  server: ShadowsocksServer;
  port: number;
  closed: ConnectionClosedEvent[];
  usage: Map<string, { up: number; down: number }>;
}

async function startServer(native: boolean, lookup?: Lookup, idleMs = IDLE_MS): Promise<Running> {
  const closed: ConnectionClosedEvent[] = [];
  const { sink, usage } = usageTotals();
  const server = new ShadowsocksServer({
    keys: [KEY, KEY2022],
    allowPrivateDestinations: true,
    nativeRelay: true,
    nativeAccept: native,
    timeouts: { idleMs },
    ...(lookup ? { lookup } : {}),
    usage: sink,
    hooks: { onConnectionClosed: (e) => closed.push(e) },
  });
  const addr = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port: addr.port, closed, usage };
}

const relayLive = (): number => nativeRelay()?.relayLive() ?? 0;
const openFds = (): number => readdirSync('/proc/self/fd').length;

function tunnel(r: { port: number }, dest: { port: number }, initial?: Buffer): Promise<TestTunnel> {
  return openTestTunnel({
    port: r.port,
    method: KEY.method,
    password: KEY.secret,
    target: { host: '127.0.0.1', port: dest.port },
    ...(initial ? { initial } : {}),
  });
}

/** What a probe's result must match between the two paths: bytes, close kind, timing class. */
function shape(p: ProbeResult): { bytesBack: number; reaction: string; when: string } {
  const when = p.reaction !== 'FIN' ? 'none' : p.ms < IDLE_MS / 2 ? 'at once' : 'at the idle timeout';
  return { bytesBack: p.bytesBack, reaction: p.reaction, when };
}

describe('native accept', { skip: skipUnless(available, NEED) }, () => {
  let echo: TestServer;
  before(async () => {
    echo = await startEcho();
  });
  after(async () => {
    await echo.close();
  });

  it('LADDER_NATIVE_ACCEPT: on by default, 0 turns it off', () => {
    assert.equal(nativeAcceptFromEnv({}), true);
    assert.equal(nativeAcceptFromEnv({ LADDER_NATIVE_ACCEPT: '0' }), false);
    assert.equal(nativeAcceptFromEnv({ LADDER_NATIVE_ACCEPT: '1' }), true);
  });

  it('the addon: close or release inside either callback, stale ids ignored, nothing left', async () => {
    const fns = nativeAccept()!;
    const srv = net.createServer();
    await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
    const port = (srv.address() as net.AddressInfo).port;
    const fd = fdOf(srv);
    const peers: string[] = [];
    const done: number[] = []; // ids closed or released from inside a callback
    const late: string[] = []; // events for an id after that: must stay empty
    const act = (id: number, chunk: Buffer | undefined, code: number): void => {
      if (done.includes(id)) late.push(`${id} ${chunk?.toString()} ${code}`);
      const what = chunk?.toString();
      if (what === 'release') nativeRelay()!.fdClose(fns.connRelease(id));
      else if (what === 'close' || code !== 0) {
        fns.connClose(id);
        fns.connClose(id); // twice: the second names a stale id
      } else return;
      done.push(id);
    };
    const listener = fns.acceptListen(
      fd,
      (id, first, code, peer) => {
        peers.push(peer);
        act(id, first, code);
      },
      act,
    );
    srv.close(); // the listener holds its own duplicate
    const send = async (data: string): Promise<void> => {
      const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true, noDelay: true });
      c.on('error', () => {});
      const closed = new Promise((res) => c.on('close', res));
      c.on('end', () => c.end());
      await new Promise((res) => c.on('connect', res));
      c.write(data);
      await sleep(50);
      c.end();
      await closed;
    };
    await send('close'); // closed inside onConn or onEvent, whichever saw it
    await send('release'); // released inside a callback, its fd closed by us
    await send('x'); // read, then EOF (code 1): closed inside onEvent
    await waitFor(() => done.length === 3 && fns.acceptLive() === 0, { timeoutMs: 2000 });
    assert.deepEqual(late, [], 'no event after a close or release');
    assert.deepEqual(peers, ['127.0.0.1', '127.0.0.1', '127.0.0.1']);
    for (const id of done) {
      fns.connRead(id, true);
      fns.connEnd(id);
      fns.connClose(id);
      assert.equal(fns.connRelease(id), -1, 'a stale id names nothing');
    }
    fns.acceptClose(listener);
    fns.acceptClose(listener); // idempotent
    assert.equal(fns.acceptLive(), 0);
    await assert.rejects(
      new Promise((res, rej) => {
        const c = net.connect(port, '127.0.0.1');
        c.on('connect', () => res(c.destroy()));
        c.on('error', rej);
      }),
      /ECONNREFUSED/,
      'the listening socket is closed',
    );
  });

  for (const native of [true, false]) {
    const which = native ? 'native' : 'JS listener (control)';

    it(`${which}: relays a round trip with exact usage; only the native server holds it in the addon`, async () => {
      const r = await startServer(native);
      try {
        const probe = net.connect(r.port, '127.0.0.1');
        probe.on('error', () => {});
        await waitFor(() => r.server.connectionCount === 1, { timeoutMs: 2000 });
        assert.equal(nativeAcceptLive(), native ? 1 : 0, 'the pre-relay connection is held natively');
        probe.destroy();
        await waitFor(() => r.closed.length === 1, { timeoutMs: 2000 });
        const first = randomBytes(2000);
        const t = await tunnel(r, echo, first);
        assert.deepEqual(await t.read(first.length), first);
        const more = randomBytes(300_000);
        t.send(more);
        assert.equal((await t.read(first.length + more.length, 10_000)).length, first.length + more.length);
        assert.equal(nativeAcceptLive(), 0, 'handed off: nothing left in the accept table');
        assert.equal(relayLive(), 1, 'the native relay carries it either way');
        t.end();
        assert.equal((await t.closed).kind, 'fin');
        await waitFor(() => r.closed.length === 2, { timeoutMs: 2000 });
        const e = r.closed[1]!;
        assert.equal(e.status, 'OK');
        const up = t.sentWire.reduce((n, b) => n + b.length, 0);
        const down = t.receivedWire.reduce((n, b) => n + b.length, 0);
        assert.deepEqual([e.bytesUp, e.bytesDown], [up, down]);
        r.server.flushUsage();
        assert.deepEqual(r.usage.get(KEY.id), { up, down }, 'usage counted once, exactly');
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: a 2022 key (no native relay) still relays: the stream becomes a net.Socket`, async () => {
      const r = await startServer(native);
      try {
        const method = getAead2022Method(KEY2022.method);
        const key = Buffer.from(KEY2022.secret, 'base64');
        const enc = new Aead2022RequestEncoder(method, key, { identityKeys: [] });
        const dec = new Aead2022ResponseDecoder(method, key, enc.salt);
        const s = net.connect({ port: r.port, host: '127.0.0.1' });
        const got: Buffer[] = [];
        s.on('data', (d: Buffer) => got.push(...dec.push(d, Date.now())));
        const hello = randomBytes(100);
        s.write(enc.encodeHeader({ type: 'ipv4', host: '127.0.0.1', port: echo.port }, hello, Date.now()));
        await waitFor(() => Buffer.concat(got).length >= 100, { timeoutMs: 5000 });
        const more = randomBytes(5000);
        s.write(enc.encode(more));
        await waitFor(() => Buffer.concat(got).length >= 5100, { timeoutMs: 5000 });
        assert.deepEqual(Buffer.concat(got), Buffer.concat([hello, more]));
        assert.equal(nativeAcceptLive(), 0);
        s.end();
        await waitFor(() => r.closed.length === 1, { timeoutMs: 3000 });
        assert.equal(r.closed[0]!.status, 'OK');
        assert.equal(r.closed[0]!.keyId, KEY2022.id);
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: unauthenticated bytes get nothing back, FIN after the peer's FIN or the idle timeout`, async () => {
      const r = await startServer(native);
      try {
        const garbage = randomBytes(200);
        const cases = [
          { label: 'garbage then FIN', payload: garbage, halfClose: true },
          { label: 'garbage, held open', payload: garbage, halfClose: false },
          { label: 'a short header then FIN', payload: garbage.subarray(0, 20), halfClose: true },
          { label: 'a short header, held open', payload: garbage.subarray(0, 20), halfClose: false },
        ];
        const got = await Promise.all(
          cases.map((c) => probeOnce(r.port, c, { halfClose: c.halfClose, giveUpMs: IDLE_MS * 4 })),
        );
        const shapes = got.map(shape);
        assert.deepEqual(shapes, [
          { bytesBack: 0, reaction: 'FIN', when: 'at once' },
          { bytesBack: 0, reaction: 'FIN', when: 'at the idle timeout' },
          { bytesBack: 0, reaction: 'FIN', when: 'at once' },
          { bytesBack: 0, reaction: 'FIN', when: 'at the idle timeout' },
        ]);
        await waitFor(() => r.closed.length === 4, { timeoutMs: 2000 });
        assert.deepEqual(r.closed.map((e) => e.status).sort(), [
          'ERR_CIPHER',
          'ERR_CIPHER',
          'ERR_SHORT_HEADER',
          'ERR_SHORT_HEADER',
        ]);
        assert.equal(nativeAcceptLive(), 0);
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: operator close before the hand-off (dialling) and after it (relaying)`, async () => {
      let release: (() => void) | undefined;
      const lookup: Lookup = async (host) => {
        if (host === 'slow.example') await new Promise<void>((r) => (release = r));
        return [{ address: '127.0.0.1', family: 4 }];
      };
      const r = await startServer(native, lookup);
      try {
        const slow = await openTestTunnel({
          port: r.port,
          method: KEY.method,
          password: KEY.secret,
          target: { host: 'slow.example', port: echo.port },
          initial: Buffer.from('x'),
        });
        await waitFor(() => release !== undefined, { timeoutMs: 2000 });
        assert.equal(nativeAcceptLive(), native ? 1 : 0, 'paused while dialling, still held natively');
        const fast = await tunnel(r, echo, Buffer.from('ping'));
        assert.equal((await fast.read(4)).toString(), 'ping');
        assert.equal(r.server.closeKeyConnections(KEY.id), 2);
        const [a, b] = await Promise.all([slow.closed, fast.closed]);
        assert.notEqual(a.kind, undefined);
        assert.notEqual(b.kind, undefined);
        release?.();
        await waitFor(() => r.closed.length === 2, { timeoutMs: 2000 });
        assert.deepEqual(
          r.closed.map((e) => e.status),
          ['ERR_CLOSED', 'ERR_CLOSED'],
        );
        await sleep(20);
        assert.equal(nativeAcceptLive(), 0);
        assert.equal(relayLive(), 0);
      } finally {
        await r.server.close();
      }
    });

    it(`${which}: close() ends the connections it holds, before and after the hand-off`, async () => {
      const r = await startServer(native);
      const probe = net.connect(r.port, '127.0.0.1');
      probe.on('error', () => {});
      probe.write(randomBytes(10));
      const t = await tunnel(r, echo, Buffer.from('ping'));
      assert.equal((await t.read(4)).toString(), 'ping');
      await waitFor(() => r.server.connectionCount === 2, { timeoutMs: 2000 });
      await r.server.close();
      // The JS listener's close() may resolve a turn before its last socket reports.
      if (!native) await waitFor(() => r.closed.length === 2, { timeoutMs: 2000 });
      assert.deepEqual(
        r.closed.map((e) => e.status),
        ['ERR_CLOSED', 'ERR_CLOSED'],
        'both reported by the time close() resolves',
      );
      assert.equal(nativeAcceptLive(), 0);
      assert.equal(relayLive(), 0);
      await new Promise((res) => (probe.destroyed ? res(undefined) : probe.on('close', res)));
      await t.closed;
    });

    it(`${which}: 300 connections (64 at a time) leave no handle and no descriptor`, async () => {
      // A long idle timeout: 64 round trips at once on a loaded machine can take longer than
      // IDLE_MS, and a tunnel idled out before its echo would fail the count, not a leak.
      const r = await startServer(native, undefined, 30_000);
      try {
        const before = openFds();
        const one = async (i: number): Promise<void> => {
          if (i % 3 === 0) {
            const p = await probeOnce(
              r.port,
              { label: 'g', payload: randomBytes(60) },
              {
                halfClose: true,
                giveUpMs: 5000,
              },
            );
            assert.equal(p.reaction, 'FIN');
            return;
          }
          const t = await tunnel(r, echo, Buffer.from(`n${i}`));
          await t.read(String(i).length + 1);
          t.end();
          await t.closed;
        };
        for (let i = 0; i < 300; i += 64) {
          await Promise.all(Array.from({ length: Math.min(64, 300 - i) }, (_, j) => one(i + j)));
        }
        await waitFor(() => r.closed.length === 300, { timeoutMs: 10_000 });
        await waitFor(() => nativeAcceptLive() === 0 && relayLive() === 0 && openFds() <= before, {
          timeoutMs: 5000,
        });
      } finally {
        await r.server.close();
      }
    });
  }
});

describe(
  'native accept in data-plane workers',
  { skip: skipUnless(available && reusePortAvailable(), NEED) },
  () => {
    for (const native of [true, false]) {
      const which = native ? 'native' : 'JS listener (control)';
      it(`${which}: workers that exit holding connections (before and after the hand-off) close them; the process lives on`, async () => {
        const prev = process.env.LADDER_NATIVE_ACCEPT;
        process.env.LADDER_NATIVE_ACCEPT = native ? '1' : '0'; // read by each worker at its start
        const echo = await startEcho();
        const p = await startWorkerPlane({
          workers: 2,
          keys: [KEY],
          port: 0,
          host: '127.0.0.1',
          logger: silentLogger,
          logLevel: 'silent',
          allowPrivateDestinations: true,
          timeouts: { idleMs: 30_000 },
          startAtBoot: true,
          testHooks: true,
          restart: { backoffMs: 50 },
          reportMs: 50,
        });
        try {
          const port = p.address.port;
          const probes = Array.from({ length: 6 }, () => {
            const s = net.connect(port, '127.0.0.1');
            s.on('error', () => {});
            s.write(randomBytes(40));
            return new Promise<void>((res) => s.on('close', () => res()));
          });
          const tunnels = [];
          for (let i = 0; i < 6; i++) {
            const t = await tunnel(p.address, echo, Buffer.from('ping'));
            assert.equal((await t.read(4)).toString(), 'ping');
            tunnels.push(t);
          }
          p.crashWorker!(0);
          p.crashWorker!(1);
          await waitFor(() => p.workerStats().every((w) => w.restarts === 1), { timeoutMs: 20_000 });
          // Every connection was on one of the two: all are closed, none hangs.
          await Promise.all([...probes, ...tunnels.map((t) => t.closed)]);
          const t = await tunnel(p.address, echo, Buffer.from('again'));
          assert.equal((await t.read(5)).toString(), 'again', 'the restarted workers serve');
          t.end();
          await t.closed;
        } finally {
          await p.close();
          await echo.close();
          if (prev === undefined) delete process.env.LADDER_NATIVE_ACCEPT;
          else process.env.LADDER_NATIVE_ACCEPT = prev;
        }
      });
    }
  },
);

describe('native accept out of descriptors', { skip: skipUnless(available, NEED) }, () => {
  it('EMFILE: the listener backs off instead of spinning, and accepts the backlog once descriptors free', async () => {
    // A child under `ulimit -n 128` (this process keeps its own limit); 200 connections wait.
    const kid = await startLowFdChild('test/helpers/emfile-server.ts', 128);
    const ask = (ms: number): Promise<{ conns: number; elu: number }> => kid.ask(String(ms));
    const socks: net.Socket[] = [];
    try {
      const port = kid.port;
      for (let i = 0; i < 200; i++) {
        const c = net.connect(port, '127.0.0.1');
        c.on('error', () => {});
        socks.push(c);
      }
      // Accepted until out of descriptors (the rest wait in the backlog).
      let held = 0;
      await waitFor(
        async () => {
          const { conns } = await ask(100);
          const steady = conns === held && conns > 0;
          held = conns;
          return steady;
        },
        { timeoutMs: 10_000 },
      );
      assert.ok(held < 200, `EMFILE reached (${held} accepted)`);
      const { elu } = await ask(1000);
      assert.ok(elu < 0.5, `the loop waits while out of descriptors (utilisation ${elu.toFixed(3)})`);
      for (const c of socks.slice(0, held)) c.destroy(); // frees the child's descriptors
      await waitFor(async () => (await ask(0)).conns === 200 - held, { timeoutMs: 10_000 });
    } finally {
      for (const c of socks) c.destroy();
      await kid.stop();
    }
  });
});
