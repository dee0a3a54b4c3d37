// The TLS 1.3 client's failures before any TLS: a server that answers with something else, one
// that closes at once, one that never answers. Each is one line, and the connection is closed.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { connectTls13 } from '../../src/transport/tls13/client.js';

const servers: net.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

async function serve(onConnection: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    onConnection(s);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return (srv.address() as net.AddressInfo).port;
}

const dial = (port: number, timeoutMs?: number): Promise<unknown> =>
  connectTls13(net.connect(port, '127.0.0.1'), {
    serverName: 'site.test',
    certificate: {},
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });

test('an HTTP answer: "the server did not answer with TLS"', async () => {
  const port = await serve((s) =>
    s.once('data', () => s.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')),
  );
  await assert.rejects(dial(port), (err: Error) => err.message === 'the server did not answer with TLS');
});

test('a server that closes at once', async () => {
  const port = await serve((s) => s.once('data', () => s.end()));
  await assert.rejects(dial(port), /the server closed the connection during the TLS handshake$/);
});

test('a server that never answers: the handshake times out', async () => {
  const port = await serve(() => {});
  await assert.rejects(dial(port, 300), /TLS handshake timed out after 300 ms$/);
});
