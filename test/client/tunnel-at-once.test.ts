/**
 * A tunnel whose connect(2) returns connected (loopback: the kernel runs the handshake inside the
 * call) relays inside tunnelConnect (native/client_tunnel.cc atOnce, LADDER_TUNNEL_AT_ONCE): the
 * first write leaves with the connect, with no EPOLLOUT watch, timer or wake-up. In the addon:
 * the relay exists when tunnelConnect returns (the control, atOnce false, starts it from the
 * loop), a relayPair failure is reported (onFail why 2) before it returns and the application's
 * descriptor is closed. Through the client, on and off: the exchange, the half-close (the
 * application ends its writes and still gets the answer) and no tunnel or watch left behind.
 */
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { createLogger } from '../../src/shared/logger.js';
import { nativeRelay, nativeSocksFront } from '../../src/transport/native-sockets.js';
import { startUpstream, type Upstream } from '../helpers/client-upstream.js';
import { serve, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { socks5Connect } from '../helpers/socks5.js';
import { sleep, waitFor } from '../helpers/wait.js';

type Fn = (...x: unknown[]) => unknown;
const addon = nativeRelay() as unknown as Record<string, Fn> | undefined;
const skip = skipUnless(
  nativeSocksFront() !== undefined && typeof addon?.tunnelConnect === 'function',
  'the native addon with tunnelConnect (Linux; npm run build:native)',
);
const PASSWORD = 'client-tunnel-at-once-pw';

/** A listener on loopback, what it read from its connections, and its port. */
async function listener(): Promise<{
  srv: net.Server;
  port: number;
  got: () => string;
  peers: net.Socket[];
}> {
  let text = '';
  const peers: net.Socket[] = [];
  const srv = net.createServer((s) => {
    peers.push(s);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => (text += d.toString()));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { srv, port: (srv.address() as net.AddressInfo).port, got: () => text, peers };
}

/** A bare descriptor connected to a loopback listener (the application's side of a tunnel). */
async function appFd(a: Record<string, Fn>): Promise<{ fd: number; peer: net.Socket; close: () => void }> {
  const app = await listener();
  const peer = new Promise<net.Socket>((r) => app.srv.once('connection', r));
  const fd = await new Promise<number>((r) =>
    a.tcpConnect!('127.0.0.1', app.port, (f: unknown) => r(f as number)),
  );
  const p = await peer;
  return { fd, peer: p, close: () => (p.destroy(), app.srv.close()) };
}

/** tunnelConnect to 127.0.0.1:port with a 5 s budget; returns what onFail was called with, if it was. */
function tunnel(
  a: Record<string, Fn>,
  port: number,
  args: unknown[],
  atOnce: boolean,
): () => unknown[] | undefined {
  let failed: unknown[] | undefined;
  a.tunnelConnect!('127.0.0.1', port, 5000, a.relayPair, args, (...w: unknown[]) => (failed = w), atOnce);
  return () => failed;
}

describe(
  'tunnelConnect atOnce: the relay starts inside the call when connect(2) returned connected',
  { skip },
  () => {
    for (const atOnce of [true, false]) {
      it(`atOnce ${atOnce}: relay ${atOnce ? 'before tunnelConnect returns' : 'from the loop (control)'}; the first write arrives`, async () => {
        const a = addon!;
        const app = await appFd(a);
        const target = await listener();
        let closed = false;
        const args: unknown[] = [
          -1,
          app.fd,
          null,
          null,
          [undefined, Buffer.from('first'), undefined],
          60_000,
          () => (closed = true),
          3,
        ];
        const failed = tunnel(a, target.port, args, atOnce);
        try {
          assert.equal(args[9] !== undefined, atOnce, 'the relay exists when tunnelConnect returns');
          await waitFor(() => args[9] !== undefined && target.got() === 'first', { timeoutMs: 3000 });
          assert.equal(failed(), undefined);
          // Relayed both ways once started: the application's bytes reach the server unchanged.
          app.peer.write('more');
          await waitFor(() => target.got() === 'firstmore', { timeoutMs: 3000 });
        } finally {
          if (args[9] !== undefined) a.relayClose!(args[9]);
          assert.ok(closed, 'onClose');
          app.close();
          target.srv.close();
        }
      });
    }

    it('atOnce: a relayPair failure says why 2 before tunnelConnect returns, the application descriptor closed', async () => {
      const a = addon!;
      const app = await appFd(a);
      const ended = new Promise<void>((r) => app.peer.once('end', () => r()).resume());
      const target = await listener();
      const args: unknown[] = [
        -1,
        app.fd,
        null,
        null,
        [undefined, undefined, undefined],
        60_000,
        () => {},
        3,
      ];
      Object.defineProperty(args, 7, {
        get() {
          throw new Error('no'); // an N-API call that fails when the addon reads relayPair's arguments
        },
      });
      const failed = tunnel(a, target.port, args, true);
      try {
        assert.deepEqual(failed(), [0, 2], 'onFail(0, 2) inside the call');
        await Promise.race([
          ended,
          sleep(3000).then(() => assert.fail('the application descriptor stayed open')),
        ]);
      } finally {
        app.close();
        target.srv.close();
      }
    });
  },
);

describe('the client with LADDER_TUNNEL_AT_ONCE on and off', { skip, timeout: 60_000 }, () => {
  let upstream: Upstream;
  let echo: TestServer;
  before(async () => {
    upstream = await startUpstream('ladder', PASSWORD);
    echo = await serve(
      (s) => {
        s.on('data', (d: Buffer) => s.write(Buffer.concat([Buffer.from('echo:'), d])));
        s.on('end', () => s.end('bye')); // after the FIN: needs the half-close relayed
      },
      { allowHalfOpen: true },
    );
  });
  after(async () => {
    await echo.close();
    await upstream.close();
  });

  for (const on of ['1', '0']) {
    it(`LADDER_TUNNEL_AT_ONCE=${on}: exchanges with a half-close, nothing left behind`, async () => {
      const saved = process.env.LADDER_TUNNEL_AT_ONCE;
      process.env.LADDER_TUNNEL_AT_ONCE = on; // read when the client's front is made
      let c: LocalClient | undefined;
      try {
        c = await startClient({
          key: upstream.url,
          socks: '127.0.0.1:0',
          nativeSocks: true,
          nativeTunnel: true,
          log: createLogger({ level: 'silent' }),
        });
        for (let i = 0; i < 5; i++) {
          const s = await socks5Connect({
            proxyPort: c.socksAddress!.port,
            host: '127.0.0.1',
            port: echo.port,
          });
          const parts: Buffer[] = [];
          const ended = new Promise<void>((resolve, reject) => {
            s.on('data', (d: Buffer) => parts.push(d));
            s.on('end', resolve);
            s.on('error', reject);
          });
          s.resume();
          s.write(`request ${i}`);
          await waitFor(() => Buffer.concat(parts).toString() === `echo:request ${i}`, { timeoutMs: 5000 });
          s.end(); // FIN: the echo answers it, and its own FIN follows
          await ended;
          assert.equal(Buffer.concat(parts).toString(), `echo:request ${i}bye`);
          s.destroy();
        }
        assert.ok(c.nativeTunnels > 0, 'connections set up in the addon');
        const client = c;
        await waitFor(() => (nativeRelay()?.relayLive() ?? 0) === 0 && client.openSockets === 0, {
          timeoutMs: 5000,
        });
      } finally {
        await c?.close();
        if (saved === undefined) delete process.env.LADDER_TUNNEL_AT_ONCE;
        else process.env.LADDER_TUNNEL_AT_ONCE = saved;
      }
    });
  }
});
