// Shadowsocks over gRPC ("gun") on the web front's TLS port, Ladder's client to Ladder's server on
// loopback: 8 MiB each way through an echo (hashes compared) with a SIP004 and a 2022 key, 20
// concurrent calls on one HTTP/2 connection, a half-close answered, and the negative controls
// (another service name, another content type, a GET: the decoy, byte for byte as for a path that
// was never secret). No Debian package speaks the gRPC transport for Shadowsocks (Debian's v2ray
// is 4.34; gRPC came in 4.36), so both ends are Ladder's; the bytes are pinned in
// test/transport/grpc-frame.test.ts.
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { grpcServiceName } from '../../src/server/web/grpc.js';
import { grpcNextHop, type GrpcTransportOptions } from '../../src/transport/grpc-dialer.js';
import { GRPC_STREAM_WINDOW } from '../../src/transport/grpc-stream.js';
import { waitFor } from '../helpers/wait.js';
import type { Socket } from 'node:net';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';

import { echoThrough } from '../helpers/grpc-echo.js';
import { sha256 } from '../helpers/hash.js';
import { readExactly, startEcho, type TestServer } from '../helpers/net.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';
import { makeCert, opensslSkip, tempDir } from './fixtures.js';

const MiB = 1024 * 1024;
const HOST = 'front.test';
const skip = opensslSkip();

const KEYS = [
  { id: 'sip004', method: 'aes-256-gcm', secret: `grpc-${randomBytes(6).toString('hex')}` },
  { id: 'k2022', method: '2022-blake3-aes-256-gcm', secret: randomBytes(32).toString('base64') },
];

describe('gRPC transport on the TLS web front', { skip }, () => {
  const dir = skip ? undefined : tempDir('ladder-grpc-');
  let srv: WsTestServer;
  let echo: TestServer;
  let cert: { cert: string; key: string };
  const hops: Array<ReturnType<typeof grpcNextHop>> = [];
  const hopFor = (extra: Partial<GrpcTransportOptions> = {}): ReturnType<typeof grpcNextHop> => {
    const hop = grpcNextHop({
      address: '127.0.0.1',
      port: srv.webPort,
      tls: true,
      serviceName: grpcServiceName(srv.secretPath),
      host: HOST,
      ca: cert.cert,
      ...extra,
    });
    hops.push(hop);
    return hop;
  };

  before(async () => {
    cert = makeCert(dir!.path, HOST);
    echo = await startEcho();
    srv = await startWsTestServer({
      keys: KEYS,
      secretPath: `/${randomBytes(16).toString('base64url')}`,
      front: { tls: { cert: cert.cert, key: cert.key }, grpc: true },
    });
  });
  after(async () => {
    for (const h of hops) h.close();
    await srv?.close();
    await echo?.close();
    dir?.remove();
  });

  for (const key of KEYS) {
    test(`8 MiB each way through an echo, ${key.method}`, async () => {
      const hop = hopFor();
      const payload = randomBytes(8 * MiB);
      const back = await echoThrough(hop, key, echo.port, payload);
      assert.equal(back.length, payload.length);
      assert.deepEqual(sha256(back), sha256(payload));
    });
  }

  test('20 concurrent calls share one HTTP/2 connection, each its own Shadowsocks connection', async () => {
    const hop = hopFor();
    const before = srv.grpcCalls;
    const seenBefore = new Set(srv.grpcConnections);
    const payloads = Array.from({ length: 20 }, (_, i) => randomBytes(64 * 1024 + i * 1000));
    const backs = await Promise.all(payloads.map((p, i) => echoThrough(hop, KEYS[i % 2]!, echo.port, p)));
    for (let i = 0; i < payloads.length; i++)
      assert.deepEqual(sha256(backs[i]!), sha256(payloads[i]!), `call ${i}`);
    assert.equal(srv.grpcCalls - before, 20);
    const fresh = [...srv.grpcConnections].filter((c) => !seenBefore.has(c));
    assert.equal(fresh.length, 1, 'one HTTP/2 connection for all 20 calls');
    assert.equal(srv.clients.at(-1), '127.0.0.1');
  });

  test('the HTTP/2 windows of a tunnel do not throttle a long round trip: 4 MiB per call both ways', async () => {
    // Node's and nginx's 64 KiB let a call move 64 KiB per round trip: 1 MiB/s at 50 ms.
    const hop = hopFor();
    await echoThrough(hop, KEYS[0]!, echo.port, Buffer.from('w'));
    const s = hop.pool.session!;
    assert.equal(
      s.localSettings.initialWindowSize,
      GRPC_STREAM_WINDOW,
      'what the client may receive per call',
    );
    assert.ok(s.state.effectiveLocalWindowSize! >= 32 * MiB, 'and per connection');
    // The server widens a session's streams once it carries a tunnel (its own SETTINGS frame).
    await waitFor(() => s.remoteSettings.initialWindowSize === GRPC_STREAM_WINDOW, { timeoutMs: 5000 });
  });

  for (const apart of [true, false]) {
    test(`a call opened beside a bulk call ${apart ? 'goes to another HTTP/2 connection' : 'shares it (LADDER_MUX_BULK_APART=0)'}`, async () => {
      // With 4 MiB windows a download's call can put 4 MiB ahead of a page's answer.
      if (!apart) process.env.LADDER_MUX_BULK_APART = '0';
      const hop = hopFor();
      delete process.env.LADDER_MUX_BULK_APART;
      const key = KEYS[0]!;
      const ep = { host: '127.0.0.1', port: 1, method: key.method, password: key.secret, nextHop: hop };
      const download = new DialerStream(new ShadowsocksDialer(ep), {
        type: 'ipv4',
        host: '127.0.0.1',
        port: echo.port,
      });
      download.on('error', () => {});
      try {
        download.write(randomBytes(2 * MiB));
        await readExactly(download as unknown as Socket, 2 * MiB, 10_000);
        assert.equal((await echoThrough(hop, key, echo.port, Buffer.from('page'))).toString(), 'page');
        assert.equal(hop.pool.sessions, apart ? 2 : 1);
      } finally {
        download.destroy();
      }
    });
  }

  test('a closed HTTP/2 connection is replaced on the next dial', async () => {
    const hop = hopFor();
    const key = KEYS[0]!;
    assert.equal((await echoThrough(hop, key, echo.port, Buffer.from('one'))).toString(), 'one');
    const first = hop.pool.session;
    first?.destroy();
    assert.equal((await echoThrough(hop, key, echo.port, Buffer.from('two'))).toString(), 'two');
    assert.notEqual(hop.pool.session, first);
  });

  test('a wrong service name is refused by the decoy and the dial fails', async () => {
    const hop = hopFor({ serviceName: 'not-the-secret' });
    const before = srv.grpcCalls;
    await assert.rejects(
      echoThrough(hop, KEYS[0]!, echo.port, Buffer.from('x')),
      /gRPC call refused \(HTTP 404\)/,
    );
    assert.equal(srv.grpcCalls, before);
  });

  test('a certificate that does not match the pin fails the dial, and no call reaches the server', async () => {
    // Before, the pin check destroyed the socket under http2.connect's own 'secureConnect'
    // listener and node_http2.cc aborted the process (Assertion failed: args[0]->IsObject()).
    const before = srv.grpcCalls;
    const wrong = hopFor({ ca: undefined, pinSha256: 'ab'.repeat(32) });
    await assert.rejects(echoThrough(wrong, KEYS[0]!, echo.port, Buffer.from('x')), /does not match the pin/);
    assert.equal(srv.grpcCalls, before);
    const right = hopFor({ ca: undefined, pinSha256: new X509Certificate(cert.cert).fingerprint256 });
    assert.equal((await echoThrough(right, KEYS[0]!, echo.port, Buffer.from('pinned'))).toString(), 'pinned');
  });

  /** One HTTP/2 request on the front: status, content-type and body. */
  async function h2Request(
    path: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; type: string | undefined; body: string }> {
    const session = http2.connect(`https://${HOST}:${srv.webPort}`, {
      ca: cert.cert,
      servername: HOST,
      host: '127.0.0.1',
    } as http2.SecureClientSessionOptions);
    try {
      const req = session.request({ ':method': 'POST', ':path': path, ...headers });
      req.end(Buffer.from([0, 0, 0, 0, 0]));
      const [h] = (await new Promise((resolve, reject) => {
        req.once('response', (x) => resolve([x]));
        req.once('error', reject);
      })) as [http2.IncomingHttpHeaders];
      const parts: Buffer[] = [];
      for await (const c of req) parts.push(c as Buffer);
      return {
        status: Number(h[':status']),
        type: h['content-type'] as string | undefined,
        body: Buffer.concat(parts).toString(),
      };
    } finally {
      session.destroy();
    }
  }

  test('wrong content type, wrong name, wrong method: the decoy, as for a path never secret', async () => {
    const svc = grpcServiceName(srv.secretPath);
    const grpcType = { 'content-type': 'application/grpc' };
    const control = await h2Request('/some/Tun', grpcType);
    assert.equal(control.status, 404);
    assert.notEqual(control.type, 'application/grpc');
    for (const [path, headers] of [
      [`/${svc}/Tun`, { 'content-type': 'application/json' }],
      [`/${svc}/Tun`, {}],
      [`/${svc}x/Tun`, grpcType],
      [`/${svc}/Tunnel`, grpcType],
    ] as const) {
      const got = await h2Request(path, headers);
      assert.deepEqual(got, control, `${path} ${JSON.stringify(headers)}`);
    }
    const before = srv.grpcCalls;
    // The positive control: the same request with the right name and type is taken.
    const taken = await h2Request(`/${svc}/Tun`, grpcType);
    assert.equal(taken.status, 200);
    assert.equal(taken.type, 'application/grpc');
    assert.equal(srv.grpcCalls, before + 1);
  });
});
