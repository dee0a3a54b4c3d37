// The pending-connection caps and an HTTP/2 connection that carried a gRPC call: exempt while a
// call is open (as an upgraded WebSocket), pending again once its last call has closed — before,
// one call on the secret path exempted the connection from the caps for its life.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { builtinDecoy } from '../../src/server/web/decoy.js';
import { startWebFront } from '../../src/server/web/front.js';

const SECRET = '/grpc-pending-0123456789abcdef';

test(
  'an h2c connection whose gRPC call closed counts against the per-address cap again',
  { timeout: 10_000 },
  async () => {
    const front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: SECRET,
      decoy: builtinDecoy({ seed: 'test' }),
      onUpgrade: () => false,
      // A call taken and answered at once (the tunnel's end: 200, then the stream closes).
      onH2Tunnel: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/grpc' });
        res.end();
        return true;
      },
      pending: { perAddress: 2, total: 0 },
    });
    const plain: net.Socket[] = [];
    const session = http2.connect(`http://127.0.0.1:${front.port}`);
    session.on('error', () => {});
    try {
      const call = session.request(
        { ':method': 'POST', ':path': `${SECRET}/Tun`, 'content-type': 'application/grpc' },
        { endStream: true },
      );
      const [headers] = (await once(call, 'response')) as [http2.IncomingHttpHeaders];
      assert.equal(headers[':status'], 200);
      call.resume();
      await once(call, 'close');
      await sleep(100);
      assert.equal(session.closed, false);
      const sessionClosed = once(session, 'close');
      // Two idle connections from the same address: with the cap at 2, the oldest pending goes.
      for (let i = 0; i < 2; i++) {
        const s = net.connect(front.port, '127.0.0.1');
        s.on('error', () => {});
        await once(s, 'connect');
        plain.push(s);
      }
      const winner = await Promise.race([
        sessionClosed.then(() => 'evicted'),
        sleep(2000).then(() => 'kept'),
      ]);
      assert.equal(winner, 'evicted', 'the HTTP/2 connection without calls is the oldest pending one');
      await sleep(50);
      assert.ok(
        plain.every((s) => !s.destroyed),
        'the newer plain connections stay',
      );
    } finally {
      for (const s of plain) s.destroy();
      session.destroy();
      await front.close();
    }
  },
);
