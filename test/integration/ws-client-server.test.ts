/**
 * Ladder client → Ladder server over WebSocket (stand-in web front): keys with
 * `plugin=v2ray-plugin;…` through startClient's SOCKS5 inbound, raw and Mux.Cool, a SIP004 and a
 * 2022 method; 200 short connections over one Mux.Cool WebSocket.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { startEcho, startSink, startSource, type TestServer } from '../helpers/net.js';
import { downloadVia, echoVia, uploadVia } from '../helpers/transfer.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const MiB = 1024 * 1024;
const KEYS = [
  { id: 'sip004', method: 'chacha20-ietf-poly1305', secret: `pw-${randomBytes(6).toString('hex')}` },
  { id: 'sip022', method: '2022-blake3-aes-256-gcm', secret: randomBytes(32).toString('base64') },
];

let srv: WsTestServer;
let echo: TestServer;
let sink: TestServer;
let source: TestServer;
before(async () => {
  srv = await startWsTestServer({ keys: KEYS });
  [echo, sink, source] = await Promise.all([startEcho(), startSink(), startSource()]);
});
after(async () => {
  await Promise.all([srv.close(), echo.close(), sink.close(), source.close()]);
});

function key(k: (typeof KEYS)[number], mux: boolean, path = srv.secretPath): string {
  return formatSsUrl({
    method: k.method,
    password: k.secret,
    host: '127.0.0.1',
    port: srv.webPort,
    plugin: 'v2ray-plugin',
    pluginOptions: `mode=websocket;host=cdn.example.com;path=${path}${mux ? '' : ';mux=0'}`,
  });
}

for (const k of KEYS) {
  for (const mux of [true, false]) {
    describe(`ladder client → ladder server over WebSocket, ${k.method}, ${mux ? 'Mux.Cool' : 'raw'}`, () => {
      let client: LocalClient;
      before(async () => {
        client = await startClient({
          key: key(k, mux, mux ? srv.secretPath : `${srv.secretPath}/tcp`),
          socks: '127.0.0.1:0',
        });
      });
      after(async () => {
        await client.close();
      });
      const via = (): { proxyPort: number } => ({ proxyPort: client.socksAddress!.port });

      test('2 MiB up, 2 MiB down, 2 MiB full-duplex echo, byte-identical', async () => {
        const body = randomBytes(2 * MiB);
        const up = await uploadVia(via(), { host: '127.0.0.1', port: sink.port }, body);
        assert.equal(up.reply.toString('hex'), up.sentSha.toString('hex'));
        const down = await downloadVia(via(), { host: '127.0.0.1', port: source.port }, 2 * MiB);
        assert.equal(down.gotSha.toString('hex'), down.sourceSha.toString('hex'));
        const e = await echoVia(via(), { host: '127.0.0.1', port: echo.port }, body);
        assert.equal(e.gotSha.toString('hex'), e.sentSha.toString('hex'));
      });

      if (mux) {
        test('200 short connections in a row share one WebSocket', async () => {
          const before = srv.upgrades;
          for (let i = 0; i < 200; i++) {
            const b = randomBytes(64);
            const r = await echoVia(via(), { host: '127.0.0.1', port: echo.port }, b, 10_000);
            assert.equal(r.gotSha.toString('hex'), r.sentSha.toString('hex'));
          }
          assert.ok(srv.upgrades - before <= 1, `${srv.upgrades - before} WebSockets opened`);
        });

        test('20 concurrent connections on the pooled WebSockets', async () => {
          const bodies = Array.from({ length: 20 }, () => randomBytes(256 * 1024));
          const rs = await Promise.all(
            bodies.map((b) => echoVia(via(), { host: '127.0.0.1', port: echo.port }, b)),
          );
          for (const r of rs) assert.equal(r.gotSha.toString('hex'), r.sentSha.toString('hex'));
        });
      }
    });
  }
}

test('a wrong password over WebSocket gets no bytes back', async () => {
  const bad = formatSsUrl({
    method: 'chacha20-ietf-poly1305',
    password: 'not-the-password',
    host: '127.0.0.1',
    port: srv.webPort,
    plugin: 'v2ray-plugin',
    pluginOptions: `path=${srv.secretPath};mux=0`,
  });
  const client = await startClient({ key: bad, socks: '127.0.0.1:0' });
  try {
    await assert.rejects(
      echoVia(
        { proxyPort: client.socksAddress!.port },
        { host: '127.0.0.1', port: echo.port },
        Buffer.from('x'),
        1500,
      ),
      /timed out/,
    );
  } finally {
    await client.close();
  }
});
