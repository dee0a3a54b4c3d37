/**
 * The SOCKS5 front hands the application's socket to a relay started inside its call without it
 * leaving the thread's epoll set (socks5_front.cc handoff, thread_poll.cc PollPark/PollAdopting,
 * client_tunnel.cc atOnce): LADDER_FRONT_HANDOFF. Each case runs on and off (the socket leaves the
 * set before the call and joins it again with the relay, as before); pollLive()'s third element
 * counts the registrations a relay took as they were. The addon's own part: a parked socket the
 * call closed, whose number a new socket reuses in the same call, must not take the new socket
 * out of the set when the call returns (a socket given to something else within the call:
 * test/client/native-app-socket.test.ts, a Mux.Cool session opened in the call's microtasks).
 */
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startClient, type ClientOptions, type LocalClient } from '../../src/client/index.js';
import { parseRuleList } from '../../src/client/routing/rules.js';
import { createLogger } from '../../src/shared/logger.js';
import { nativeRelay, nativeSocksFront } from '../../src/transport/native-sockets.js';
import { startUpstream, type Upstream } from '../helpers/client-upstream.js';
import { serve, type TestServer } from '../helpers/net.js';
import { peerSkip } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { socks5Connect, socks5FirstAnswer } from '../helpers/socks5.js';
import { sleep, waitFor } from '../helpers/wait.js';

const PASSWORD = 'client-front-handoff-pw';
type Addon = NonNullable<ReturnType<typeof nativeSocksFront>> & {
  tunnelConnect?: unknown;
  pollLive?: () => [number, number, number?];
};
const addon = nativeSocksFront() as Addon | undefined;
const skip = skipUnless(
  addon !== undefined && typeof addon.tunnelConnect === 'function' && typeof addon.pollLive === 'function',
  'the native addon with tunnelConnect (Linux; npm run build:native)',
);
const REQUEST = 'ping-0123456789-0123456789-abcd';
const live = (): number => nativeRelay()?.relayLive() ?? 0;
/** [watches, sockets in the set] of this thread's epoll set. */
const polled = (): [number, number] =>
  (addon?.pollLive?.().slice(0, 2) as [number, number] | undefined) ?? [0, 0];
/** Parked registrations a relay took as they were, so far on this thread. */
const adopted = (): number => addon?.pollLive?.()[2] ?? 0;
const fds = (): number => readdirSync('/proc/self/fd').length;
const MODES = [
  ['handed over in the set', true],
  ['out of the set and in again (control)', false],
] as const;

/** A client with LADDER_FRONT_HANDOFF as given (read when its SOCKS5 front starts). */
async function client(
  url: string,
  handoff: boolean,
  extra: Partial<ClientOptions> = {},
): Promise<LocalClient> {
  const saved = process.env.LADDER_FRONT_HANDOFF;
  process.env.LADDER_FRONT_HANDOFF = handoff ? '1' : '0';
  try {
    return await startClient({
      key: url,
      socks: '127.0.0.1:0',
      nativeSocks: true,
      nativeTunnel: true,
      firstDataWaitMs: 10_000, // the first data goes with the request even on a loaded machine
      log: createLogger({ level: 'silent' }),
      ...extra,
    });
  } finally {
    if (saved === undefined) delete process.env.LADDER_FRONT_HANDOFF;
    else process.env.LADDER_FRONT_HANDOFF = saved;
  }
}

/** Nothing left of the client's connections: no relay, socket, descriptor or watch beyond the start's. */
async function settled(c: LocalClient, fd0: number, poll0: [number, number]): Promise<void> {
  await waitFor(
    () => live() === 0 && c.openSockets === 0 && fds() <= fd0 && polled().join() === poll0.join(),
    { timeoutMs: 10_000 },
  );
}

/** Everything the connection receives until the peer closes (or `ms`). */
async function drain(s: net.Socket, ms = 5000): Promise<Buffer> {
  const got: Buffer[] = [];
  s.on('data', (b: Buffer) => got.push(b));
  s.on('error', () => {});
  s.resume();
  await Promise.race([new Promise((r) => s.once('close', r)), sleep(ms)]);
  return Buffer.concat(got);
}

for (const kind of ['ladder', 'ss-server'] as const) {
  describe(
    `front hand-off in the epoll set <-> ${kind}`,
    { skip: skip || (kind === 'ss-server' && peerSkip('ss-server')), timeout: 120_000 },
    () => {
      let upstream: Upstream;
      let echo: TestServer;
      before(async () => {
        upstream = await startUpstream(kind, PASSWORD);
        echo = await serve((s) => s.pipe(s), { host: '0.0.0.0', allowHalfOpen: true }); // 127.0.0.2 too
      });
      after(async () => {
        await echo.close();
        await upstream.close();
      });

      /** A connection through the client to the echo, and all it will receive. */
      const opened = async (c: LocalClient): Promise<{ s: net.Socket; all: Promise<Buffer> }> => {
        const s = await socks5Connect({
          proxyPort: c.socksAddress!.port,
          host: '127.0.0.1',
          port: echo.port,
        });
        return { s, all: drain(s) };
      };
      const roundTrip = (c: LocalClient, host = '127.0.0.1'): Promise<string> =>
        socks5FirstAnswer(c.socksAddress!.port, echo.port, REQUEST, host);

      for (const [which, handoff] of MODES) {
        it(`${which}: 200 short connections echo, and leave no relay, watch or descriptor`, async () => {
          const c = await client(upstream.url, handoff);
          try {
            assert.equal(await roundTrip(c), REQUEST); // the epoll set and the lazy parts exist from here
            await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
            const [fd0, poll0, a0] = [fds(), polled(), adopted()];
            for (let i = 0; i < 200; i++) assert.equal(await roundTrip(c), REQUEST);
            assert.equal(c.nativeTunnels, 201, 'every one set up in the addon');
            assert.equal(adopted() - a0, handoff ? 200 : 0, 'the path taken');
            await settled(c, fd0, poll0);
          } finally {
            await c.close();
          }
        });

        // ss-server closes both directions at the first FIN: half-close is the Ladder server's.
        if (kind === 'ladder')
          it(`${which}: answered before and after the application's half-close`, async () => {
            const c = await client(upstream.url, handoff);
            try {
              const a0 = adopted();
              const { s, all } = await opened(c);
              s.write(REQUEST);
              await sleep(50);
              s.end('-after'); // FIN: the echo ends too (allowHalfOpen pipes the end back)
              assert.equal((await all).toString(), `${REQUEST}-after`);
              assert.equal(adopted() - a0, handoff ? 1 : 0, 'the path taken');
              await waitFor(() => live() === 0 && c.openSockets === 0, { timeoutMs: 5000 });
            } finally {
              await c.close();
            }
          });

        it(`${which}: routing still decides (direct by rule, proxy by default)`, async () => {
          const rules = parseRuleList('ip-cidr,127.0.0.2/32,direct\nfinal,proxy\n');
          const c = await client(upstream.url, handoff, { rules });
          try {
            const a0 = adopted();
            assert.equal(await roundTrip(c, '127.0.0.2'), REQUEST);
            assert.equal(c.nativeTunnels, 0, 'direct: not through the tunnel');
            assert.equal(adopted() - a0, 0, 'direct: no relay took the socket');
            assert.equal(await roundTrip(c, '127.0.0.1'), REQUEST);
            assert.equal(adopted() - a0, handoff ? 1 : 0, 'proxied, the path taken');
          } finally {
            await c.close();
          }
        });

        it(`${which}: relayPair throwing closes the application and leaves nothing`, async () => {
          // An idle time relayPair refuses (not a whole number of ms): it throws, closing both
          // sockets (they are its own), for every tunnel this client sets up.
          const c = await client(upstream.url, handoff, { idleTimeoutMs: Number.NaN });
          try {
            const [fd0, poll0, a0] = [fds(), polled(), adopted()];
            const { s, all } = await opened(c);
            s.write(REQUEST);
            assert.equal((await all).length, 0, 'closed without data');
            assert.equal(c.nativeTunnels, 1, 'set up in the addon');
            assert.equal(adopted() - a0, 0, 'no relay took the socket');
            await settled(c, fd0, poll0);
          } finally {
            await c.close();
          }
        });
      }
    },
  );
}

describe('the front parks a CONNECT during its call (socks5Front handoff)', { skip, timeout: 30_000 }, () => {
  it('a parked socket closed in the call, its number reused by a new watch: the new one keeps its events', async () => {
    const a = addon!;
    const echo = await serve((s) => s.pipe(s));
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const lfd = (srv as unknown as { _handle: { fd: number } })._handle.fd;
    const connected: Array<[closed: number, made: number]> = [];
    const front = a.socks5Front(
      lfd,
      1000,
      5000,
      (cfd, kind) => {
        assert.equal(kind, 2);
        a.fdClose(cfd); // the parked socket leaves the set with its close
        // The lowest free number: the one just closed. Its connect joins the set (ADD, EPOLLOUT).
        a.tcpConnect('127.0.0.1', echo.port, (nfd) => {
          connected.push([cfd, nfd]);
          if (nfd >= 0) a.fdClose(nfd);
        });
      },
      true,
      true,
    );
    srv.close();
    try {
      const poll0 = polled();
      for (let i = 0; i < 5; i++) {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.on('error', () => {});
        // Greeting, CONNECT 127.0.0.1:echo, first data: one write, so the call is kind 2 with data.
        const p = Buffer.alloc(2);
        p.writeUInt16BE(echo.port);
        s.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1]), p, Buffer.from('x')]));
        // Without the guard the unpark's DEL takes the connect out of the set: no onDone.
        await waitFor(() => connected.length === i + 1, { timeoutMs: 3000 });
        s.destroy();
      }
      assert.ok(
        connected.every(([, fd]) => fd >= 0),
        'every connect reported connected',
      );
      assert.ok(
        connected.some(([closed, made]) => closed === made),
        "the case is made: a new socket took the closed one's number",
      );
      await waitFor(() => polled().join() === poll0.join(), { timeoutMs: 3000 });
    } finally {
      a.socks5FrontClose(front);
      await echo.close();
    }
  });
});
