/**
 * The client's tunnel setup in the addon (native/client_tunnel.cc, native-socks.ts #plan) at its
 * edges: a server given as a scoped IPv6 literal connects as Node's net.connect would (the zone
 * sets the scope id; both the addon path and, as the control, the dial path), an N-API failure
 * after the connect closes the application's descriptor and reports it (onFail why 2), and a
 * connect the addon refuses by a throw without an errno is logged with the addon's words, not as
 * EPERM.
 */
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startClient } from '../../src/client/index.js';
import { NativeSocks } from '../../src/client/native-socks.js';
import { createLogger } from '../../src/shared/logger.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { createTunnelDialer } from '../../src/client/index.js';
import { nativeRelay, nativeSocksFront } from '../../src/transport/native-sockets.js';
import { serve, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { socks5Connect } from '../helpers/socks5.js';
import { sleep, waitFor } from '../helpers/wait.js';

const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'client-native-tunnel-fixes-pw';
type Fn = (...x: unknown[]) => unknown;
const addon = nativeRelay() as unknown as Record<string, Fn> | undefined;
const skip = skipUnless(
  nativeSocksFront() !== undefined && typeof addon?.tunnelConnect === 'function',
  'the native addon with tunnelConnect (Linux; npm run build:native)',
);

/** Sends 'ping', returns what comes back before 4 bytes came, the peer closed, or 3 s passed. */
async function roundTrip(proxyPort: number, port: number, host = '127.0.0.1'): Promise<string> {
  const s = await socks5Connect({ proxyPort, host, port });
  const got: Buffer[] = [];
  s.on('error', () => {});
  await new Promise<void>((done) => {
    const timer = setTimeout(done, 3000);
    const end = (): void => {
      clearTimeout(timer);
      done();
    };
    s.on('data', (b: Buffer) => {
      got.push(b);
      if (Buffer.concat(got).length >= 4) end();
    });
    s.once('close', end);
    s.resume();
    s.write('ping');
  });
  s.destroy();
  return Buffer.concat(got).toString();
}

describe('native tunnel setup: edges', { skip, timeout: 60_000 }, () => {
  let echo: TestServer;
  before(async () => {
    echo = await serve((s) => s.pipe(s));
  });
  after(async () => {
    await echo.close();
  });

  for (const tunnel of [true, false]) {
    it(`a server at a scoped IPv6 literal (::1%lo) connects (${tunnel ? 'addon setup' : 'dial path'})`, async () => {
      const server = new ShadowsocksServer({
        keys: [{ id: 'k', method: METHOD, secret: PASSWORD }],
        allowPrivateDestinations: true,
        nativeRelay: false,
      });
      const addr = await server.listen({ port: 0, host: '::1' });
      const out = new PassThrough();
      let text = '';
      out.on('data', (d: Buffer) => (text += d.toString()));
      const c = await startClient({
        key: { host: '::1%lo', port: addr.port, method: METHOD, password: PASSWORD },
        socks: '127.0.0.1:0',
        nativeSocks: true,
        nativeTunnel: tunnel,
        log: createLogger({ level: 'info', destination: out }),
      });
      try {
        assert.equal(await roundTrip(c.socksAddress!.port, echo.port), 'ping', text);
        assert.equal(c.nativeTunnels, tunnel ? 1 : 0, 'the path taken');
        assert.doesNotMatch(text, /tunnel dial failed/);
      } finally {
        await c.close();
        await server.close();
      }
    });
  }

  it('an N-API failure once connected closes the application descriptor and says why 2', async () => {
    const a = addon!;
    // The application's side: a connection to a local server, made by the addon (a bare fd).
    const appSrv = net.createServer();
    await new Promise<void>((r) => appSrv.listen(0, '127.0.0.1', r));
    const peer = new Promise<net.Socket>((r) => appSrv.once('connection', r));
    const fd = await new Promise<number>((r) => {
      a.tcpConnect!('127.0.0.1', (appSrv.address() as net.AddressInfo).port, (f: unknown) => r(f as number));
    });
    const appPeer = await peer;
    const appClosed = new Promise<void>((r) => appPeer.once('end', () => r()).resume());
    // The server's side: anything that accepts.
    const target = net.createServer((s) => s.on('error', () => {}));
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const args: unknown[] = [
      -1,
      fd,
      null,
      {},
      [undefined, Buffer.from('x'), undefined],
      60_000,
      () => {},
      3,
      () => undefined,
    ];
    // Element 7 throws when the addon reads it to call relayPair: an N-API call that fails.
    Object.defineProperty(args, 7, {
      get() {
        throw new Error('no');
      },
    });
    const why = new Promise<number[]>((r) => {
      a.tunnelConnect!(
        '127.0.0.1',
        (target.address() as net.AddressInfo).port,
        5000,
        a.relayPair,
        args,
        (errno: unknown, w: unknown) => r([errno as number, w as number]),
      );
    });
    try {
      const got = await Promise.race([why, sleep(3000).then(() => undefined)]);
      assert.deepEqual(got, [0, 2], 'onFail(0, 2)');
      await Promise.race([
        appClosed,
        sleep(3000).then(() => assert.fail('the application descriptor stayed open')),
      ]);
    } finally {
      appPeer.destroy();
      target.close();
      appSrv.close();
    }
  });

  it("a connect refused by a throw without an errno is logged in the addon's words, not EPERM", async () => {
    const fns = { ...nativeSocksFront()! } as unknown as Record<string, Fn>;
    fns.tunnelConnect = () => {
      throw new Error('cannot poll the socket');
    };
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const front = new NativeSocks(
      fns as never,
      {
        dialer: createTunnelDialer({ host: '127.0.0.1', port: 9, method: METHOD, password: PASSWORD }),
        firstDataWaitMs: 5000, // the first data goes with the request even on a loaded machine
        idleTimeoutMs: 60_000,
        log: createLogger({ level: 'info', destination: out }),
        track: () => {},
        host: '127.0.0.1',
        port,
      },
      true,
    );
    assert.ok(front.adopt(srv));
    try {
      assert.equal(await roundTrip(port, echo.port), '', 'the application is closed');
      await waitFor(() => text.includes('tunnel dial failed'), { timeoutMs: 3000 });
      const line = text
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === 'tunnel dial failed')!;
      assert.equal(line.code, 'ERR_CONNECT');
      assert.equal(line.errno, undefined, `no errno the addon did not give: ${JSON.stringify(line)}`);
      assert.equal(front.size, 0);
    } finally {
      front.close();
    }
  });
});
