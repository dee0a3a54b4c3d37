/**
 * Fuzzing the Mux.Cool connection (src/transport/mux.ts) in its server role, as the web front
 * runs it: mutated frame streams (New, Keep, End, KeepAlive; sessions opened twice, ended before
 * opening, past the session limit) written by a peer over an in-memory carrier, in pieces.
 * Contract: no throw escapes, never more live sessions than the limit, and when the peer closes
 * the carrier every session ends and onClose runs. Method and counts: test/fuzz/fuzz.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Duplex } from 'node:stream';
import { MuxConnection, type MuxSession } from '../../src/transport/mux.js';
import { encodeMuxFrame, MuxNetwork, MuxStatus, type MuxTarget } from '../../src/protocol/muxcool.js';
import { messagePair } from '../helpers/message-pair.js';
import { byteCases, rng, show } from './fuzz.js';

const target: MuxTarget = { network: MuxNetwork.Tcp, host: 'example.com', port: 443 };

test('fuzz: Mux.Cool server connection: no escape, bounded sessions, all closed with the carrier', async (t) => {
  const escaped: unknown[] = [];
  const onEscape = (err: unknown): void => void escaped.push(err);
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  t.after(() => {
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
  });
  const f = (id: number, status: number, data?: Buffer, tgt?: MuxTarget): Buffer =>
    encodeMuxFrame(
      { sessionId: id, status: status as MuxStatus, option: 0, ...(tgt ? { target: tgt } : {}) },
      data,
    );
  const sample = Buffer.concat([
    f(1, MuxStatus.New, Buffer.from('GET / HTTP/1.1\r\n\r\n'), target),
    f(2, MuxStatus.New, undefined, { network: MuxNetwork.Udp, host: '192.0.2.1', port: 53 }),
    f(1, MuxStatus.Keep, Buffer.alloc(100, 1)),
    f(3, MuxStatus.New, Buffer.from('x'), target),
    f(1, MuxStatus.End),
    f(0, MuxStatus.KeepAlive, Buffer.alloc(8)),
    f(3, MuxStatus.Keep, Buffer.from('y')),
    f(9, MuxStatus.Keep, Buffer.from('unknown session')),
    f(3, MuxStatus.End),
  ]);
  const r = rng('mux-connection');
  const MAX = 3;
  let n = 0;
  let opened = 0;
  for (const c of byteCases('mux-connection', [sample], 150)) {
    const [peer, carrier] = messagePair();
    const sessions = new Set<MuxSession>();
    let most = 0;
    let closed = false;
    const conn = new MuxConnection(carrier as Duplex, {
      role: 'server',
      maxSessions: MAX,
      onSession: (s) => {
        sessions.add(s);
        opened++;
        most = Math.max(most, [...sessions].filter((x) => !x.destroyed).length);
        s.on('error', () => {});
        s.on('data', () => {});
        s.on('close', () => sessions.delete(s));
      },
      onClose: () => (closed = true),
    });
    peer.on('data', () => {});
    peer.on('error', () => {});
    // The stream in a few writes (WebSocket messages), then the peer closes.
    for (let at = 0; at < c.length;) {
      const end = Math.min(c.length, at + r.range(1, 64));
      peer.write(c.subarray(at, end));
      at = end;
    }
    peer.end();
    for (let i = 0; i < 4; i++) await new Promise((res) => setImmediate(res));
    peer.destroy();
    carrier.destroy();
    await new Promise((res) => setImmediate(res));
    assert.ok(most <= MAX, `case ${n}: ${most} sessions live past the limit of ${MAX} for ${show(c)}`);
    assert.ok(closed, `case ${n}: onClose not called after the carrier closed for ${show(c)}`);
    assert.deepEqual(
      [...sessions].filter((s) => !s.destroyed).length,
      0,
      `case ${n}: sessions left open for ${show(c)}`,
    );
    void conn;
    n++;
  }
  assert.deepEqual(escaped.map(String), []);
  assert.ok(opened > 300, `only ${opened} sessions opened in ${n} cases`);
});
