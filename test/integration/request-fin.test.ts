/**
 * A request and its FIN sent together (`s.end('request')`: an HTTP/1.0 client that shuts its
 * write side at once) keep their answer through `ladder client` -> `ladder server` -> the
 * destination on every server relay: the addon's (SIP004, natively or JS accepted), the JS relay (SIP004 with the native
 * relay off, 2022 keys accepted natively or not, the client's JS relay too) and the web front
 * (WebSocket raw and Mux.Cool), against a destination that answers at once and one that answers
 * only after reading EOF. The FIN reached the server while it dialled the destination: it was
 * taken for the client giving up, and the answer was lost.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { startDataPlane } from '../../src/server/index.js';
import { serve, startEcho, type TestServer } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';
import { startWsTestServer } from '../helpers/web-server.js';

/** Writes `text` and FIN in one call; resolves with all the answer up to the peer's FIN. */
async function requestThenFin(proxyPort: number, port: number, text: string): Promise<string> {
  const s = await socks5Connect({ proxyPort, host: '127.0.0.1', port });
  const got: Buffer[] = [];
  s.on('data', (b: Buffer) => got.push(b));
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no FIN within 5 s')), 5_000);
    s.once('end', () => (clearTimeout(timer), resolve()));
    s.once('error', (e) => (clearTimeout(timer), reject(e)));
  });
  s.resume();
  s.end(text);
  await done;
  s.destroy();
  return Buffer.concat(got).toString();
}

interface Started {
  /** The client's key for this server. */
  key: string;
  close(): Promise<void>;
}

const SIP004 = 'aes-256-gcm';
const SIP022 = '2022-blake3-aes-256-gcm';
const secretFor = (method: string): string =>
  method === SIP022 ? randomBytes(32).toString('base64') : `request-fin-${randomBytes(4).toString('hex')}`;

/** The TCP listener with or without the addon's relay (and its accept, on by default with it). */
async function tcpServer(method: string, nativeRelay: boolean, nativeAccept?: boolean): Promise<Started> {
  const secret = secretFor(method);
  const plane = await startDataPlane({
    keys: [{ id: 'k', method, secret }],
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    nativeRelay,
    ...(nativeAccept !== undefined ? { nativeAccept } : {}),
    timeouts: { idleMs: 5_000, connectMs: 2_000 },
  });
  const key = formatSsUrl({ method, password: secret, host: '127.0.0.1', port: plane.address.port });
  return { key, close: () => plane.close() };
}

/** The web front (stand-in), destinations dialled in JS. */
async function webServer(method: string, mux: boolean): Promise<Started> {
  const secret = secretFor(method);
  const srv = await startWsTestServer({ keys: [{ id: 'k', method, secret }], nativeDest: false });
  const path = mux ? srv.secretPath : `${srv.secretPath}/tcp`;
  const key = formatSsUrl({
    method,
    password: secret,
    host: '127.0.0.1',
    port: srv.webPort,
    plugin: 'v2ray-plugin',
    pluginOptions: `mode=websocket;host=cdn.example.com;path=${path}${mux ? '' : ';mux=0'}`,
  });
  return { key, close: () => srv.close() };
}

const CASES: { name: string; start: () => Promise<Started>; clientNativeRelay?: boolean }[] = [
  { name: 'SIP004, native relay', start: () => tcpServer(SIP004, true) },
  { name: 'SIP004, native relay from a JS accept', start: () => tcpServer(SIP004, true, false) },
  { name: 'SIP004, JS relay', start: () => tcpServer(SIP004, false) },
  { name: 'SIP004, JS relay on both ends', start: () => tcpServer(SIP004, false), clientNativeRelay: false },
  { name: '2022 key, native accept', start: () => tcpServer(SIP022, true) },
  { name: '2022 key, JS accept', start: () => tcpServer(SIP022, false) },
  { name: 'web front, SIP004, raw WebSocket', start: () => webServer(SIP004, false) },
  { name: 'web front, 2022 key, Mux.Cool', start: () => webServer(SIP022, true) },
];

describe('a request and its FIN together keep the answer', { timeout: 120_000 }, () => {
  let echo: TestServer;
  let atEof: TestServer;
  before(async () => {
    echo = await startEcho({ allowHalfOpen: true });
    // Answers only once the request is complete (EOF), as an HTTP/1.0-style server would.
    atEof = await serve(
      (s) => {
        const got: Buffer[] = [];
        s.on('data', (b: Buffer) => got.push(b));
        s.on('end', () => s.end(`seen: ${Buffer.concat(got).toString()}`));
      },
      { allowHalfOpen: true },
    );
  });
  after(async () => {
    await Promise.all([echo.close(), atEof.close()]);
  });

  for (const c of CASES) {
    describe(c.name, () => {
      let server: Started;
      let client: LocalClient;
      before(async () => {
        server = await c.start();
        client = await startClient({
          key: server.key,
          socks: '127.0.0.1:0',
          ...(c.clientNativeRelay !== undefined ? { nativeRelay: c.clientNativeRelay } : {}),
        });
      });
      after(async () => {
        await client.close();
        await server.close();
      });

      test('a destination that echoes at once', async () => {
        for (let i = 0; i < 5; i++)
          assert.equal(await requestThenFin(client.socksAddress!.port, echo.port, `ping ${i}`), `ping ${i}`);
      });
      test('a destination that answers after EOF', async () => {
        for (let i = 0; i < 5; i++)
          assert.equal(
            await requestThenFin(client.socksAddress!.port, atEof.port, `req ${i}`),
            `seen: req ${i}`,
          );
      });
    });
  }
});
