// The client's WebSocket next hop (loaded lazily) closes its pooled Mux.Cool WebSockets when the
// client closes it: before, close() never reached the pool and a stopped client kept its
// WebSockets (and its process) until their idle close.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { lazyWebSocketNextHop } from '../../src/client/key.js';
import { sleep, waitFor } from '../helpers/wait.js';

async function wsServer(): Promise<{ url: string; sockets: WebSocket[]; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const sockets: WebSocket[] = [];
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    sockets.push(ws);
  });
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/p`;
  return {
    url,
    sockets,
    close: async () => {
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

const closed = (ws: WebSocket): boolean => ws.readyState === ws.CLOSED || ws.readyState === ws.CLOSING;

/** A lazy Mux.Cool hop to `url` with one session open (so its pool holds one WebSocket). */
async function hopWithSession(
  srv: Awaited<ReturnType<typeof wsServer>>,
): Promise<ReturnType<typeof lazyWebSocketNextHop>> {
  const hop = lazyWebSocketNextHop({ url: srv.url, mux: true, cover: false });
  const session = await hop();
  session.on('error', () => {});
  await waitFor(() => srv.sockets.length === 1, { message: 'the pool opened its WebSocket' });
  return hop;
}

test('lazy WebSocket next hop: close() closes the pooled WebSocket, and later dials are refused', async () => {
  const srv = await wsServer();
  try {
    const hop = await hopWithSession(srv);
    hop.close();
    await waitFor(() => closed(srv.sockets[0]!), { message: 'the pooled WebSocket closed' });
    await assert.rejects(hop(), /client closed/);
    assert.equal(srv.sockets.length, 1, 'no WebSocket opened after close()');
  } finally {
    await srv.close();
  }
});

test('lazy WebSocket next hop (negative control): without close() the pooled WebSocket stays open', async () => {
  const srv = await wsServer();
  try {
    const hop = await hopWithSession(srv);
    await sleep(300);
    assert.equal(closed(srv.sockets[0]!), false);
    hop.close();
  } finally {
    await srv.close();
  }
});
