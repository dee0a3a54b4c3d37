// The gRPC transport through Debian's nginx as the "CDN": nginx terminates TLS (http2, a
// certificate from a test CA) and passes the secret service's calls to Ladder's plain web front
// with `grpc_pass grpc://` — HTTP/2 with prior knowledge (h2c) — from 127.0.0.3, which the front
// trusts for X-Forwarded-For. Ladder's client (gRPC over TLS to nginx) → nginx → Ladder's front:
// 8 MiB each way hashed with a SIP004 and a 2022 key, 20 concurrent calls on one connection to
// nginx, the front saw each client as 127.0.0.1 (nginx's header), and a path nginx does not pass
// gets nginx's own answer. The plain front still serves HTTP/1.1 and WebSocket on the same port
// (the h2c dispatch puts non-preface bytes back). No Debian package speaks the gRPC transport
// for Shadowsocks (Debian's v2ray is 4.34; gRPC came in 4.36): the client is Ladder's.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { grpcServiceName } from '../../src/server/web/grpc.js';
import { grpcNextHop } from '../../src/transport/grpc-dialer.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { echoThrough } from '../helpers/grpc-echo.js';
import { startLadderClient } from '../helpers/peers.js';
import { echoVia } from '../helpers/transfer.js';
import { sha256 } from '../helpers/hash.js';
import { startEcho, type TestServer } from '../helpers/net.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';
import {
  exchange,
  makeCa,
  nginxSkip,
  opensslSkip,
  startNginx,
  type Nginx,
  type TestCa,
} from '../web/fixtures.js';

const HOST = 'cdn.test';
const MiB = 1024 * 1024;
const missing = nginxSkip() || opensslSkip();

/** The nginx server block the docs give (docs/web-front.md, "gRPC"), on a test port and CA. */
export function grpcPassBlock(
  ca: { certPath: string; keyPath: string },
  servicePath: string,
  upstreamPort: number,
): string {
  return `
    listen 127.0.0.1:{{PORT}} ssl http2;
    ssl_certificate ${ca.certPath};
    ssl_certificate_key ${ca.keyPath};
    location ${servicePath}/Tun {
      grpc_pass grpc://127.0.0.1:${upstreamPort};
      grpc_bind 127.0.0.3;
      grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      grpc_read_timeout 1h;
      grpc_send_timeout 1h;
      client_body_timeout 1h;
      client_max_body_size 0;
    }
    location / {
      return 404;
    }`;
}

describe('Ladder client → nginx (TLS, grpc_pass grpc://) → Ladder plain web front', { skip: missing }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-grpc-nginx-'));
  const keys = [
    { id: 'sip004', method: 'chacha20-ietf-poly1305', secret: `cdn-${randomBytes(6).toString('hex')}` },
    { id: 'k2022', method: '2022-blake3-aes-128-gcm', secret: randomBytes(16).toString('base64') },
  ];
  let ca: TestCa;
  let srv: WsTestServer;
  let nginx: Nginx;
  let echo: TestServer;
  let hop: ReturnType<typeof grpcNextHop>;

  before(async () => {
    ca = makeCa(dir, HOST);
    echo = await startEcho();
    srv = await startWsTestServer({
      keys,
      secretPath: `/${randomBytes(16).toString('base64url')}`,
      front: { trustProxy: ['127.0.0.3/32'], grpc: true },
    });
    nginx = await startNginx(grpcPassBlock(ca, srv.secretPath, srv.webPort));
    hop = grpcNextHop({
      address: '127.0.0.1',
      port: nginx.port,
      tls: true,
      host: HOST,
      ca: ca.caPem,
      serviceName: grpcServiceName(srv.secretPath),
    });
  });
  after(async () => {
    hop?.close();
    await nginx?.stop();
    await srv?.close();
    await echo?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const i of [0, 1]) {
    test(`8 MiB each way through an echo, ${keys[i]!.method}`, async () => {
      const payload = randomBytes(8 * MiB);
      const back = await echoThrough(hop, keys[i]!, echo.port, payload);
      assert.equal(back.length, payload.length, nginx.output().slice(-2000));
      assert.deepEqual(sha256(back), sha256(payload));
    });
  }

  test('20 concurrent calls on one connection to nginx; the front saw the client, never nginx', async () => {
    const session = hop.pool.session;
    const payloads = Array.from({ length: 20 }, (_, i) => randomBytes(32 * 1024 + i));
    const backs = await Promise.all(payloads.map((p, i) => echoThrough(hop, keys[i % 2]!, echo.port, p)));
    for (let i = 0; i < 20; i++) assert.deepEqual(sha256(backs[i]!), sha256(payloads[i]!), `call ${i}`);
    assert.equal(hop.pool.session, session, 'the same HTTP/2 connection');
    assert.ok(srv.grpcCalls >= 22);
    assert.deepEqual([...new Set(srv.clients)], ['127.0.0.1']);
  });

  test('another service name: nginx does not pass it, the dial fails', async () => {
    const wrong = grpcNextHop({
      address: '127.0.0.1',
      port: nginx.port,
      tls: true,
      host: HOST,
      ca: ca.caPem,
      serviceName: 'other',
    });
    try {
      const before = srv.grpcCalls;
      await assert.rejects(echoThrough(wrong, keys[0]!, echo.port, Buffer.from('x')), /refused \(HTTP 404\)/);
      assert.equal(srv.grpcCalls, before);
    } finally {
      wrong.close();
    }
  });

  test('`ladder client` (CLI) with a type=grpc key → nginx → front: 8 MiB echoed, one HTTP/2 connection', async () => {
    const k = keys[1]!;
    const client = await startLadderClient({
      key: formatSsUrl({
        method: k.method,
        password: k.secret,
        host: '127.0.0.1',
        port: nginx.port,
        transport: { type: 'grpc', serviceName: grpcServiceName(srv.secretPath), tls: true, sni: HOST },
      }),
      env: { NODE_EXTRA_CA_CERTS: ca.caPath },
    });
    try {
      const before = srv.grpcCalls;
      const body = randomBytes(8 * MiB);
      const r = await echoVia({ proxyPort: client.socksPort }, { host: '127.0.0.1', port: echo.port }, body);
      assert.deepEqual(r.gotSha, r.sentSha, client.output().slice(-2000));
      assert.equal(r.bytes, body.length);
      assert.equal(srv.grpcCalls, before + 1);
    } finally {
      await client.stop();
    }
  });

  test('the plain front with h2c still answers HTTP/1.1 and takes WebSocket upgrades', async () => {
    const page = await exchange(srv.webPort, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(page.text, /^HTTP\/1\.1 200 OK\r\n/);
    const ws = new WebSocket(`ws://127.0.0.1:${srv.webPort}${srv.secretPath}`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.terminate();
  });
});

describe('h2c on the plain front only from the trusted proxies', { skip: missing }, () => {
  test("from an untrusted peer the preface gets the HTTP/1.1 answer (nginx's 400, as before); from the proxy, SETTINGS", async () => {
    const srv = await startWsTestServer({
      keys: [{ id: 'k', method: 'aes-128-gcm', secret: 'h2c-control' }],
      front: { trustProxy: ['127.0.0.3/32'], grpc: true },
    });
    try {
      const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
      const untrusted = await exchange(srv.webPort, preface);
      assert.match(untrusted.text, /^HTTP\/1\.1 400 Bad Request\r\nServer: nginx\r\n/);
      const fromProxy = await new Promise<Buffer>((resolve, reject) => {
        const s = net.connect({ port: srv.webPort, host: '127.0.0.1', localAddress: '127.0.0.3' });
        s.once('connect', () => s.write(preface));
        s.once('data', (b: Buffer) => {
          s.destroy();
          resolve(b);
        });
        s.once('error', reject);
      });
      // An HTTP/2 frame header: 3-byte length, type 4 (SETTINGS), flags 0, stream 0.
      assert.equal(fromProxy[3], 4);
      assert.equal(fromProxy.readUInt32BE(5), 0);
    } finally {
      await srv.close();
    }
  });
});
