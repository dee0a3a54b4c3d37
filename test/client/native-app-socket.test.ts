/**
 * The application's side of a tunnel JS carries, on the addon's descriptor calls
 * (src/client/native-app-socket.ts, native/app_conn.cc): a WebSocket key with Mux.Cool through
 * the native SOCKS5 front. Each case runs with it and, as the control, with LADDER_NATIVE_APP=0
 * (a net.Socket made from the descriptor, as before): the application must see the same bytes.
 * nativeAppLive() says which path carried a connection.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { nativeAppConn, nativeAppLive, nativeAppQueuedWrites } from '../../src/client/native-app-socket.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { nativeSocksFront } from '../../src/transport/native-sockets.js';
import { serve, startEcho, startSink, startSource, type TestServer } from '../helpers/net.js';
import { skipUnless } from '../helpers/prereq.js';
import { socks5Connect } from '../helpers/socks5.js';
import { downloadVia, echoVia, uploadVia } from '../helpers/transfer.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const MiB = 1024 * 1024;
const KEY = { id: 'k', method: 'chacha20-ietf-poly1305', secret: `pw-${randomBytes(6).toString('hex')}` };
const skip = skipUnless(
  nativeSocksFront() !== undefined && nativeAppConn() !== undefined,
  'the native addon with socks5Front and appConn (Linux; npm run build:native)',
);
const fds = (): number => readdirSync('/proc/self/fd').length;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let srv: WsTestServer;
let echo: TestServer;
let sink: TestServer;
let source: TestServer;
/** Writes 1 KiB, then resets the connection (RST) once it has read anything. */
let resetter: TestServer;
/** Server-side sockets of the accepted WebSockets (to cut a carrier). */
const carriers: Socket[] = [];

async function client(native: boolean): Promise<LocalClient> {
  const was = process.env.LADDER_NATIVE_APP;
  process.env.LADDER_NATIVE_APP = native ? '1' : '0';
  try {
    return await startClient({
      key: formatSsUrl({
        method: KEY.method,
        password: KEY.secret,
        host: '127.0.0.1',
        port: srv.webPort,
        plugin: 'v2ray-plugin',
        pluginOptions: `mode=websocket;host=cdn.example.com;path=${srv.secretPath}`,
      }),
      socks: '127.0.0.1:0',
    });
  } finally {
    if (was === undefined) delete process.env.LADDER_NATIVE_APP;
    else process.env.LADDER_NATIVE_APP = was;
  }
}

/** A connection through `c` to the echo server whose 'ping' came back (a session under way). */
async function pinged(c: LocalClient): Promise<Socket> {
  const s = await socks5Connect({ proxyPort: c.socksAddress!.port, host: '127.0.0.1', port: echo.port });
  s.on('error', () => {});
  const got: Buffer[] = [];
  s.on('data', (b: Buffer) => got.push(b));
  s.resume();
  s.write('ping');
  await waitFor(() => Buffer.concat(got).toString() === 'ping', { timeoutMs: 5000 });
  return s;
}

describe(
  'native application socket: WebSocket key with Mux.Cool through the native SOCKS5 front',
  { skip, timeout: 180_000 },
  () => {
    before(async () => {
      srv = await startWsTestServer({ keys: [KEY], onAccepted: (s) => carriers.push(s) });
      [echo, sink, source] = await Promise.all([startEcho(), startSink(), startSource()]);
      resetter = await serve((s) => {
        s.on('error', () => {});
        s.write(Buffer.alloc(1024, 1));
        s.once('data', () => s.resetAndDestroy());
      });
    });
    after(async () => {
      await Promise.all([srv.close(), echo.close(), sink.close(), source.close(), resetter.close()]);
    });

    for (const native of [true, false]) {
      const which = native ? 'addon socket' : 'net.Socket (control)';
      const via = (c: LocalClient): { proxyPort: number } => ({ proxyPort: c.socksAddress!.port });

      it(`${which}: 8 MiB up (half-close, then the sink's answer), 8 MiB down, 8 MiB echo, hashed`, async () => {
        const c = await client(native);
        try {
          const body = randomBytes(8 * MiB);
          const up = await uploadVia(via(c), { host: '127.0.0.1', port: sink.port }, body);
          assert.equal(up.reply.toString('hex'), up.sentSha.toString('hex'), 'upload');
          const down = await downloadVia(via(c), { host: '127.0.0.1', port: source.port }, 8 * MiB);
          assert.equal(down.gotSha.toString('hex'), down.sourceSha.toString('hex'), 'download');
          const e = await echoVia(via(c), { host: '127.0.0.1', port: echo.port }, body);
          assert.equal(e.gotSha.toString('hex'), e.sentSha.toString('hex'), 'echo');
          await waitFor(() => c.openSockets === 0 && nativeAppLive() === 0, { timeoutMs: 5000 });
        } finally {
          await c.close();
        }
      });

      it(`${which}: which path carries the connection, and a slow reader gets every byte (back-pressure)`, async () => {
        const c = await client(native);
        const body = randomBytes(24 * MiB); // before the CONNECT: its first bytes come at once
        try {
          const s = await socks5Connect({ proxyPort: via(c).proxyPort, host: '127.0.0.1', port: echo.port });
          s.on('error', () => {});
          const queued0 = nativeAppQueuedWrites();
          const got: Buffer[] = [];
          let n = 0;
          const all = new Promise<void>((r) =>
            s.on('data', (b: Buffer) => {
              got.push(b);
              if ((n += b.length) === body.length) r();
            }),
          );
          s.pause(); // the echo fills the application's socket: the client's writes must wait
          s.write(body);
          // The addon's path: a write the kernel does not take waits for the reader (the control: a while).
          if (native) await waitFor(() => nativeAppQueuedWrites() > queued0, { timeoutMs: 20_000 });
          else await sleep(500);
          assert.equal(nativeAppLive(), native ? 1 : 0, 'application sockets on the addon');
          s.resume();
          await all;
          assert.equal(sha(Buffer.concat(got)), sha(body));
          s.end();
          await new Promise((r) => s.once('close', r));
          await waitFor(() => c.openSockets === 0 && nativeAppLive() === 0, { timeoutMs: 5000 });
        } finally {
          await c.close();
        }
      });

      it(`${which}: 300 short sessions leave no socket, descriptor or addon connection`, async () => {
        const c = await client(native);
        try {
          await echoVia(via(c), { host: '127.0.0.1', port: echo.port }, randomBytes(64), 10_000); // WebSocket open
          const fd0 = fds();
          for (let i = 0; i < 300; i++) {
            const b = randomBytes(64);
            const r = await echoVia(via(c), { host: '127.0.0.1', port: echo.port }, b, 10_000);
            assert.equal(r.gotSha.toString('hex'), r.sentSha.toString('hex'));
          }
          await waitFor(() => c.openSockets === 0 && nativeAppLive() === 0 && fds() <= fd0, {
            timeoutMs: 5000,
          });
        } finally {
          await c.close();
        }
      });

      it(`${which}: the destination's reset mid-session closes the application's connection`, async () => {
        const c = await client(native);
        try {
          const s = await socks5Connect({
            proxyPort: via(c).proxyPort,
            host: '127.0.0.1',
            port: resetter.port,
          });
          s.on('error', () => {});
          const closed = new Promise((r) => s.once('close', r));
          s.resume();
          s.write('go');
          await closed;
          await waitFor(() => c.openSockets === 0 && nativeAppLive() === 0, { timeoutMs: 5000 });
        } finally {
          await c.close();
        }
      });

      it(`${which}: the application's reset mid-session ends the session; the WebSocket stays for the next`, async () => {
        const c = await client(native);
        try {
          const s = await pinged(c);
          const upgrades = srv.upgrades;
          s.resetAndDestroy();
          await waitFor(() => c.openSockets === 0 && nativeAppLive() === 0, { timeoutMs: 5000 });
          const r = await echoVia(via(c), { host: '127.0.0.1', port: echo.port }, randomBytes(64), 10_000);
          assert.equal(r.gotSha.toString('hex'), r.sentSha.toString('hex'));
          assert.equal(srv.upgrades, upgrades, 'the same WebSocket carried the next session');
        } finally {
          await c.close();
        }
      });

      it(`${which}: the WebSocket cut mid-session closes the application's connection; the next one works`, async () => {
        const c = await client(native);
        try {
          const s = await pinged(c);
          const closed = new Promise((r) => s.once('close', r));
          carriers.at(-1)!.resetAndDestroy();
          await closed;
          await waitFor(() => c.openSockets === 0 && nativeAppLive() === 0, { timeoutMs: 5000 }).catch(
            (e) => {
              throw new Error(`${(e as Error).message}: open ${c.openSockets}, addon ${nativeAppLive()}`);
            },
          );
          const r = await echoVia(via(c), { host: '127.0.0.1', port: echo.port }, randomBytes(64), 10_000);
          assert.equal(r.gotSha.toString('hex'), r.sentSha.toString('hex'));
        } finally {
          await c.close();
        }
      });
    }
  },
);
