/**
 * A Mux.Cool peer that sends frames we must answer (Keep for an unknown session, a New we
 * refuse, a session it opens and ends at once) and never reads the answers: our reading stops
 * while the carrier is full, so the answers do not pile up without end. Before, one such
 * WebSocket on the web front's secret path took the server from 83 MB to 900 MB with 32 MiB of
 * 6-byte Keep frames (each answered by an End that waited for nothing).
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { encodeMuxFrame, MuxNetwork, MuxStatus } from '../../src/protocol/muxcool.js';
import { MuxConnection, type MuxSession } from '../../src/transport/mux.js';
import { waitFor } from '../helpers/wait.js';

/** A carrier whose peer never reads: writes are held (their callbacks kept) until `release`. */
class UnreadCarrier extends Duplex {
  readonly held: Array<() => void> = [];
  written = 0;
  constructor() {
    super({ allowHalfOpen: true });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.written += chunk.length;
    this.held.push(cb);
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: () => void): void {
    for (const c of chunks) this.written += c.chunk.length;
    this.held.push(cb);
  }
  /** The peer reads everything written so far. */
  release(): void {
    for (const cb of this.held.splice(0)) cb();
  }
}

/** `n` Keep frames (no data) for sessions that do not exist: each is answered with an End. */
function unknownKeeps(n: number): Buffer {
  return Buffer.concat(
    Array.from({ length: n }, (_, i) =>
      encodeMuxFrame({ sessionId: 1000 + i, status: MuxStatus.Keep, option: 0 }),
    ),
  );
}

/** `n` sessions opened and ended at once (New + End each). */
function openAndEnd(n: number): Buffer {
  const target = { network: MuxNetwork.Tcp, host: '127.0.0.1', port: 80 };
  return Buffer.concat(
    Array.from({ length: n }, (_, i) =>
      Buffer.concat([
        encodeMuxFrame({ sessionId: 1 + i, status: MuxStatus.New, option: 0, target }),
        encodeMuxFrame({ sessionId: 1 + i, status: MuxStatus.End, option: 0 }),
      ]),
    ),
  );
}

for (const [name, chunk] of [
  ['Keep frames for unknown sessions', unknownKeeps(4000)],
  ['sessions opened and ended at once', openAndEnd(2000)],
] as const) {
  test(`a peer that sends ${name} and never reads: reading stops while the answers wait`, async () => {
    const carrier = new UnreadCarrier();
    const mux = new MuxConnection(carrier, {
      role: 'server',
      maxUnauthenticated: 32,
      // The server's session owner: ends its side when the peer ends (as a failed stream does).
      onSession: (s: MuxSession) => {
        s.on('error', () => {});
        s.on('end', () => s.end());
        s.resume();
      },
    });
    try {
      // 100 chunks of thousands of frames, each answered by one End or more.
      for (let i = 0; i < 100; i++) carrier.push(chunk);
      await new Promise((r) => setTimeout(r, 200));
      const backlog = carrier.writableLength;
      assert.ok(carrier.isPaused(), 'reading stopped');
      // At most a few chunks were read (answers to one chunk, plus ends that came after).
      assert.ok(backlog < 4 * chunk.length, `${backlog} bytes of answers wait (chunk ${chunk.length})`);
      const written = carrier.written;
      assert.ok(carrier.readableLength > 50 * chunk.length, 'the rest waits unread');
      // The peer reads: reading goes on, and stops again at the next backlog.
      carrier.release();
      await waitFor(() => carrier.written > written);
      // Reading everything as it comes lets every chunk through.
      const reader = setInterval(() => carrier.release(), 1);
      await waitFor(() => carrier.readableLength === 0, { timeoutMs: 10_000 });
      clearInterval(reader);
    } finally {
      mux.destroy();
    }
  });
}
