// WsStream over real WebSockets on loopback: message framing, Outline's half-close, back-pressure,
// abrupt closes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { WsStream } from '../../src/transport/ws-stream.js';
import { sha256Hex } from '../helpers/hash.js';
import { sleep, waitFor } from '../helpers/wait.js';

let server: http.Server;
let wss: WebSocketServer;
let port = 0;
let accepted: ((ws: WebSocket) => void) | undefined;

before(async () => {
  server = http.createServer();
  wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => accepted?.(ws));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  for (const c of wss.clients) c.terminate();
  wss.close();
  await new Promise((r) => server.close(r));
});

/** A connected pair: the raw client WebSocket and the server's accepted one. */
async function pair(opts: WebSocket.ClientOptions = {}): Promise<{ client: WebSocket; srv: WebSocket }> {
  const got = new Promise<WebSocket>((resolve) => (accepted = resolve));
  const client = new WebSocket(`ws://127.0.0.1:${port}/x`, { perMessageDeflate: false, ...opts });
  await once(client, 'open');
  return { client, srv: await got };
}

/** Resolves once `s` emitted 'close' (at once if it already did). */
async function closed(s: WsStream): Promise<void> {
  if (!s.closed) await once(s, 'close');
}

function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (b: Buffer) => parts.push(b));
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

test('each write is one binary message; messages concatenate on read', async () => {
  const { client, srv } = await pair();
  const seen: number[] = [];
  client.on('message', (d: Buffer, bin: boolean) => {
    assert.equal(bin, true);
    seen.push(d.length);
  });
  const s = new WsStream(srv);
  await new Promise<void>((r) => s.write(Buffer.alloc(3), () => r()));
  await new Promise<void>((r) => s.write(Buffer.alloc(70_000), () => r()));
  await waitFor(() => seen.length === 2);
  assert.deepEqual(seen, [3, 70_000]);
  const reading = readAll(s);
  client.send(Buffer.from('ab'));
  client.send(Buffer.from('cde'));
  client.close(1000);
  assert.equal((await reading).toString(), 'abcde');
  s.end();
  await closed(s);
});

test('half-close both ways: 1000 ends one direction, the other keeps flowing (4 MiB each)', async () => {
  const { client, srv } = await pair();
  const a = new WsStream(client);
  const b = new WsStream(srv);
  const up = randomBytes(4 << 20);
  const down = randomBytes(4 << 20);
  const gotAtB = readAll(b);
  const gotAtA = readAll(a);
  a.end(up);
  // b only starts answering after a's end arrived.
  assert.equal(sha256Hex(await gotAtB), sha256Hex(up));
  for (let off = 0; off < down.length; off += 65536) {
    if (!b.write(down.subarray(off, off + 65536))) await once(b, 'drain');
  }
  b.end();
  assert.equal(sha256Hex(await gotAtA), sha256Hex(down));
  await Promise.all([closed(a), closed(b)]);
  assert.equal(a.errored, null);
  assert.equal(b.errored, null);
});

test('a plain ws peer that closes with 1000 still receives what we send after it', async () => {
  const { client, srv } = await pair();
  const s = new WsStream(srv);
  const reading = readAll(s);
  const got: Buffer[] = [];
  client.on('message', (d: Buffer) => got.push(d));
  client.send(Buffer.from('bye'));
  client.close(1000);
  assert.equal((await reading).toString(), 'bye');
  s.end(Buffer.from('late answer'));
  const [code] = (await once(client, 'close')) as [number];
  assert.equal(code, 1000);
  assert.equal(Buffer.concat(got).toString(), 'late answer');
  await closed(s);
  assert.equal(s.errored, null);
});

test('an abrupt close destroys the stream', async () => {
  const { client, srv } = await pair();
  const s = new WsStream(srv);
  s.resume();
  const err = once(s, 'error');
  client.terminate();
  await err;
  assert.equal(s.destroyed, true);
});

test('any close code ends the peer side like 1000, and text messages are bytes (one reaction to every input, D6)', async () => {
  // A close code or a frame type a prober picks must not change what it sees of us.
  {
    const { client, srv } = await pair();
    const s = new WsStream(srv);
    const reading = readAll(s);
    client.send(Buffer.from('x'));
    client.close(4000);
    assert.equal((await reading).toString(), 'x');
    assert.equal(s.destroyed, false, 'still writable after the peer closed with 4000');
    s.end(Buffer.from('after'));
    await once(client, 'close');
    await closed(s);
    assert.equal(s.errored, null);
  }
  {
    const { client, srv } = await pair();
    const s = new WsStream(srv);
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    client.send('text');
    client.send(Buffer.from('+bin'));
    await waitFor(() => Buffer.concat(parts).length === 8);
    assert.equal(Buffer.concat(parts).toString(), 'text+bin');
    assert.equal(s.destroyed, false);
    s.destroy();
    client.terminate();
  }
});

test('back-pressure: an unread stream pauses the socket and stalls the writer', async () => {
  const { client, srv } = await pair();
  const a = new WsStream(client);
  const b = new WsStream(srv, { readableHighWaterMark: 64 * 1024 });
  const body = randomBytes(32 << 20);
  let written = 0;
  const writing = (async () => {
    for (let off = 0; off < body.length; off += 65536) {
      if (!a.write(body.subarray(off, off + 65536))) await once(a, 'drain');
      written = off + 65536;
    }
    a.end();
  })();
  await sleep(500);
  // Kernel buffers and ws's own queue take some, but nowhere near 32 MiB.
  assert.ok(written < 24 << 20, `writer got ${written} bytes out with nobody reading`);
  assert.ok(b.readableLength <= 2 << 20, `readable side holds ${b.readableLength}`);
  a.resume(); // a's readable side must be consumed to reach 'end' and close
  const got = await readAll(b);
  await writing;
  assert.equal(sha256Hex(got), sha256Hex(body));
  b.end();
  await Promise.all([closed(a), closed(b)]);
});

test('destroy() terminates the WebSocket', async () => {
  const { client, srv } = await pair();
  const s = new WsStream(srv);
  s.destroy();
  const [code] = (await once(client, 'close')) as [number];
  assert.equal(code, 1006);
});

/** Count the writes ws's socket takes (the socket is internal to ws). */
function countWrites(ws: WebSocket): () => number {
  const sock = (ws as unknown as { _socket: { write: (...a: unknown[]) => boolean } })._socket;
  const write = sock.write.bind(sock);
  let n = 0;
  sock.write = (...a: unknown[]) => {
    n++;
    return write(...a);
  };
  return () => n;
}

/** Messages as the peer WebSocket receives them (binary only). */
function messages(ws: WebSocket): Buffer[] {
  const got: Buffer[] = [];
  ws.on('message', (d: Buffer, bin: boolean) => {
    assert.equal(bin, true);
    got.push(d);
  });
  return got;
}

async function writeAll(s: WsStream, bufs: Buffer[]): Promise<void> {
  for (const b of bufs) await new Promise<void>((r, j) => s.write(b, (e) => (e ? j(e) : r())));
}

test('framing: small messages leave in one socket write each, as valid frames both ways; large ones through ws', async () => {
  // A zero masking key, as ws-dialer.ts opens wss:// WebSockets.
  const { client, srv } = await pair({ generateMask: (m: Buffer) => void m.fill(0) });
  const sizes = [1, 125, 126, 4000, 16 * 1024, 16 * 1024 + 1, 70_000];
  const bufs = sizes.map((n) => randomBytes(n));
  const small = sizes.filter((n) => n <= 16 * 1024).length;
  const fromServer = messages(client);
  const fromClient = messages(srv);
  const srvWrites = countWrites(srv);
  const cliWrites = countWrites(client);
  const a = new WsStream(srv, { framing: 'server' });
  const b = new WsStream(client, { framing: 'zero-mask' });
  await writeAll(a, bufs);
  await writeAll(b, bufs);
  // The peers' ws parsers accept them: unmasked from the server, masked (key 0) from the client.
  await waitFor(() => fromServer.length === sizes.length && fromClient.length === sizes.length);
  assert.deepEqual(fromServer, bufs);
  assert.deepEqual(fromClient, bufs);
  // One write per small message; ws writes header and payload apart (two, corked) for the rest.
  const large = sizes.length - small;
  assert.equal(srvWrites(), small + 2 * large);
  assert.equal(cliWrites(), small + 2 * large);
  a.destroy();
  b.destroy();
});

test('framing, negative control: without it every message is ws.send (two writes each)', async () => {
  const { client, srv } = await pair();
  const got = messages(client);
  const writes = countWrites(srv);
  const a = new WsStream(srv);
  await writeAll(a, [randomBytes(10), randomBytes(300)]);
  await waitFor(() => got.length === 2);
  assert.equal(writes(), 4);
  a.destroy();
});
