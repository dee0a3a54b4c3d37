// A gRPC tunnel's lifetime on the web front: half-close each way (the client's END_STREAM reaches
// the destination as EOF and the destination's answer still comes back, then the server's
// trailers), and a tunnel that sits idle longer than the front's HTTP/2 idle timeout and its
// request deadline is neither sent GOAWAY nor reset (the Shadowsocks idle timeout governs it; the
// decoy's streams keep both limits). Plain front, h2c (as nginx's grpc_pass connects).
// Checked to fail with either exemption in h2.ts removed (reset PROTOCOL_ERROR at the deadline;
// CANCEL when the idle session is destroyed after its grace).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { Duplex } from 'node:stream';
import { grpcServiceName } from '../../src/server/web/grpc.js';
import { DialerStream } from '../../src/transport/dialer-stream.js';
import { grpcNextHop } from '../../src/transport/grpc-dialer.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const KEY = { id: 'k', method: 'aes-128-gcm', secret: `life-${randomBytes(6).toString('hex')}` };
let srv: WsTestServer;
let hop: ReturnType<typeof grpcNextHop>;
/** Reads to EOF, then answers with what it read and "bye", then ends. */
let replier: net.Server;

before(async () => {
  srv = await startWsTestServer({
    keys: [KEY],
    front: { grpc: true, keepAliveTimeoutMs: 300, requestTimeoutMs: 600 },
  });
  hop = grpcNextHop({
    address: '127.0.0.1',
    port: srv.webPort,
    tls: false,
    serviceName: grpcServiceName(srv.secretPath),
  });
  replier = net.createServer({ allowHalfOpen: true }, (s) => {
    const got: Buffer[] = [];
    s.on('data', (b: Buffer) => got.push(b));
    s.on('end', () => s.end(Buffer.concat([...got, Buffer.from(' bye')])));
  });
  replier.listen(0, '127.0.0.1');
  await once(replier, 'listening');
});
after(async () => {
  hop?.close();
  replier?.close();
  await srv?.close();
});

function tunnel(port: number): Duplex {
  const dialer = new ShadowsocksDialer({
    host: '127.0.0.1',
    port: 1,
    method: KEY.method,
    password: KEY.secret,
    nextHop: hop,
  });
  return new DialerStream(dialer, { type: 'ipv4', host: '127.0.0.1', port });
}

function readAll(s: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    s.on('data', (b: Buffer) => got.push(b));
    s.once('end', () => resolve(Buffer.concat(got).toString()));
    s.once('error', reject);
  });
}

test('half-close: the client ends its side, the destination sees EOF and its answer still arrives', async () => {
  const s = tunnel((replier.address() as AddressInfo).port);
  const all = readAll(s);
  s.end('hello');
  assert.equal(await all, 'hello bye');
});

test('an idle tunnel outlives the h2 idle timeout (300 ms, then 5 s of GOAWAY grace) and the request deadline (600 ms)', async () => {
  const s = tunnel((replier.address() as AddressInfo).port);
  const all = readAll(s);
  s.write('before');
  await sleep(6000);
  s.end(' after');
  assert.equal(await all, 'before after bye');
});

test(
  '130 tunnels held open at once: a second HTTP/2 connection past 100 calls, none waits for a slot',
  { timeout: 20_000 },
  async () => {
    const echo = net.createServer((s) => s.pipe(s));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const own = grpcNextHop({
      address: '127.0.0.1',
      port: srv.webPort,
      tls: false,
      serviceName: grpcServiceName(srv.secretPath),
    });
    const dialer = new ShadowsocksDialer({
      host: '127.0.0.1',
      port: 1,
      method: KEY.method,
      password: KEY.secret,
      nextHop: own,
    });
    const port = (echo.address() as AddressInfo).port;
    const tunnels = Array.from(
      { length: 130 },
      () => new DialerStream(dialer, { type: 'ipv4', host: '127.0.0.1', port }),
    );
    try {
      // Every tunnel answers while all of them stay open (the server allows 128 streams a connection).
      await Promise.all(
        tunnels.map(
          (t, i) =>
            new Promise<void>((resolve, reject) => {
              t.once('data', (b: Buffer) =>
                b.toString() === `t${i}` ? resolve() : reject(new Error(`tunnel ${i}: ${b.toString()}`)),
              );
              t.once('error', reject);
              t.write(`t${i}`);
            }),
        ),
      );
      assert.equal(own.pool.sessions, 2);
    } finally {
      for (const t of tunnels) t.destroy();
      own.close();
      echo.close();
    }
  },
);
