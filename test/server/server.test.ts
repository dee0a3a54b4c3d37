import { describe, it } from 'node:test';
import { waitFor } from '../helpers/wait.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { ManualClock } from '../../src/shared/clock.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { ShadowsocksServer } from '../../src/server/server.js';

const IDLE = 60_000;
const settle = (ms = 60): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Probe {
  sock: net.Socket;
  received: number;
  kind: 'open' | 'fin' | 'rst' | 'other';
}

function probe(port: number, payload: Buffer): Promise<Probe> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const p: Probe = { sock, received: 0, kind: 'open' };
    sock.on('data', (d: Buffer) => (p.received += d.length));
    sock.on('end', () => {
      if (p.kind === 'open') p.kind = 'fin';
      sock.end();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => (p.kind = e.code === 'ECONNRESET' ? 'rst' : 'other'));
    sock.on('connect', () => {
      sock.write(payload);
      resolve(p);
    });
  });
}

describe('ShadowsocksServer failure reaction (manual clock)', () => {
  it('every garbage length closes with FIN exactly one idle period after the accept, never earlier, never with data', async () => {
    const clock = new ManualClock();
    const closed: ConnectionClosedEvent[] = [];
    const server = new ShadowsocksServer({
      clock,
      keys: [
        { id: 'a', method: 'aes-128-gcm', secret: 'one' },
        { id: 'b', method: 'chacha20-ietf-poly1305', secret: 'two' },
      ],
      timeouts: { idleMs: IDLE },
      hooks: { onConnectionClosed: (e) => closed.push(e) },
    });
    const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
    try {
      const lengths = [1, 15, 16, 33, 34, 35, 49, 50, 51, 52, 100, 221, 5000];
      const probes = await Promise.all(lengths.map((n) => probe(port, randomBytes(n))));
      await waitFor(() => !(server.connectionCount < lengths.length), { timeoutMs: 2000 });
      assert.equal(server.connectionCount, lengths.length);
      await settle(400); // let the server read everything before the clock moves
      clock.advance(IDLE - 1);
      await settle();
      for (const [i, p] of probes.entries())
        assert.equal(p.kind, 'open', `length ${lengths[i]} closed early`);
      // More bytes on one probe do not push its deadline back (trickling cannot hold it open).
      probes[0]!.sock.write(randomBytes(10));
      await settle(400);
      clock.advance(1);
      await waitFor(() => !probes.some((p) => p.kind === 'open'), { timeoutMs: 3000 });
      for (const [i, p] of probes.entries()) {
        assert.equal(p.received, 0, `length ${lengths[i]} got data`);
        assert.equal(p.kind, 'fin', `length ${lengths[i]}`);
      }
      await waitFor(() => !(closed.length < lengths.length), { timeoutMs: 2000 });
      const statuses = new Set(closed.map((e) => e.status));
      assert.ok(
        [...statuses].every((s) => s === 'ERR_SHORT_HEADER' || s === 'ERR_CIPHER'),
        [...statuses].join(),
      );
      // Short ones could not test the 32-byte-salt key; 50+ bytes tested both keys.
      assert.equal(closed.length, lengths.length);
    } finally {
      await server.close();
    }
  });

  it('a peer that closes first gets FIN back at once, for any length', async () => {
    const server = new ShadowsocksServer({
      keys: [{ id: 'a', method: 'aes-256-gcm', secret: 's' }],
      timeouts: { idleMs: IDLE },
    });
    const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
    try {
      for (const n of [0, 1, 49, 50, 51, 221, 3000]) {
        const kind = await new Promise<string>((resolve) => {
          const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
          let k = 'none';
          s.on('connect', () => s.end(randomBytes(n)));
          s.on('data', () => (k = 'data'));
          s.on('end', () => (k = k === 'none' ? 'fin' : k));
          s.on('error', (e: NodeJS.ErrnoException) => (k = e.code ?? 'error'));
          s.on('close', () => resolve(k));
        });
        assert.equal(kind, 'fin', `length ${n}`);
      }
    } finally {
      await server.close();
    }
  });

  it('close() ends probes and relays at once, flushes usage and reports ERR_CLOSED', async () => {
    const echo = net.createServer({ allowHalfOpen: true }, (c) => c.pipe(c));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const usage: [string, number, number][] = [];
    const closed: ConnectionClosedEvent[] = [];
    const server = new ShadowsocksServer({
      keys: [{ id: 'k', method: 'aes-128-gcm', secret: 's' }],
      allowPrivateDestinations: true,
      timeouts: { idleMs: IDLE },
      usage: { addBytes: (id, up, down) => usage.push([id, up, down]) },
      hooks: { onConnectionClosed: (e) => closed.push(e) },
    });
    const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
    const { openTestTunnel } = await import('../helpers/test-client.js');
    const t = await openTestTunnel({
      port,
      method: 'aes-128-gcm',
      password: 's',
      target: { host: '127.0.0.1', port: echoPort },
      initial: Buffer.from('hi'),
    });
    await t.read(2);
    const p = await probe(port, randomBytes(30));
    await waitFor(() => !(server.connectionCount < 2), { timeoutMs: 2000 });
    const started = Date.now();
    await server.close();
    assert.ok(Date.now() - started < 2000);
    await t.closed;
    await waitFor(() => !(p.kind === 'open'), { timeoutMs: 2000 });
    assert.notEqual(p.kind, 'open');
    assert.equal(p.received, 0);
    assert.deepEqual(closed.map((e) => e.status).sort(), ['ERR_CLOSED', 'ERR_CLOSED']);
    assert.ok(
      usage.some(([id, up, down]) => id === 'k' && up > 0 && down > 0),
      JSON.stringify(usage),
    );
    await new Promise<void>((r) => echo.close(() => r()));
  });

  it('setKeys skips a key it cannot serve and keeps the others', () => {
    const server = new ShadowsocksServer({ keys: [{ id: 'a', method: 'aes-256-gcm', secret: 's' }] });
    server.setKeys([
      { id: 'a', method: 'aes-256-gcm', secret: 's' },
      { id: 'b', method: 'rc4-md5', secret: 'x' },
    ]);
    assert.deepEqual(
      server.rejectedKeys.map((r) => r.id),
      ['b'],
    );
    assert.match(server.rejectedKeys[0]!.reason, /stream cipher/);
    assert.throws(() => new ShadowsocksServer({ timeouts: { idleMs: 0 } }), /positive/);
  });
});
