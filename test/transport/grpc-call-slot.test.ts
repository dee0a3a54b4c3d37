/**
 * The gRPC client's call slots (src/transport/grpc-dialer.ts GrpcSessionPool): a session whose
 * `request` throws (closing under us) is forgotten and one new connection is tried; when that one's
 * `request` throws too, the slot counted for the call that was never made goes back. Before, it
 * stayed counted for the connection's life: each such failure took one of its 100 calls for good.
 * The sessions are real (h2c to a loopback HTTP/2 server); their `request` is made to throw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { GrpcSessionPool } from '../../src/transport/grpc-dialer.js';
import { waitFor } from '../helpers/wait.js';

test('request throwing twice in a row: the open fails and no call slot stays counted', async (t) => {
  const server = http2.createServer();
  server.on('stream', (s) => s.respond({ ':status': 200, 'content-type': 'application/grpc' }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const pool = new GrpcSessionPool({
    address: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    tls: false,
    serviceName: 's',
  });
  t.after(() => pool.close());

  const first = await pool.open();
  assert.equal(pool.calls, 1);
  first.destroy();
  await waitFor(() => pool.calls === 0, { timeoutMs: 3000 });

  const proto = Object.getPrototypeOf(pool.session!) as { request: (...a: unknown[]) => unknown };
  const request = proto.request;
  let throws = 0;
  proto.request = () => {
    throws++;
    throw Object.assign(new Error('the session is closing'), { code: 'ERR_HTTP2_INVALID_SESSION' });
  };
  try {
    await assert.rejects(pool.open(), /the session is closing/);
  } finally {
    proto.request = request;
  }
  assert.equal(throws, 2, 'one new connection was tried after the first throw');
  assert.equal(pool.calls, 0, 'no slot kept for a call that was never made');
  // The pool still works: the next call takes one slot.
  const next = await pool.open();
  assert.equal(pool.calls, 1);
  next.destroy();
});
