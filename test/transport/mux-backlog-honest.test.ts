/**
 * The other side of mux-backlog.test.ts: a peer that reads our answers, slowly, is not stopped.
 * Our reading stops only for the answers that wait for no drain (End frames, the refusals) piling
 * up; a full carrier whose last write happened to be a session's End (a reply that just fitted,
 * then its End) must not stop the peer's uploads on the other sessions: an application that
 * sends its whole request before it reads (the peer reads our carrier only as its local side
 * reads) would otherwise wait for ever.
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { encodeMuxFrame, MuxNetwork, MuxStatus } from '../../src/protocol/muxcool.js';
import { MuxConnection, type MuxSession } from '../../src/transport/mux.js';
import { waitFor } from '../helpers/wait.js';

/** A carrier whose peer reads nothing for now: writes are held (their callbacks kept). */
class SlowCarrier extends Duplex {
  readonly held: Array<() => void> = [];
  constructor() {
    super({ allowHalfOpen: true });
  }
  override _read(): void {}
  override _write(_chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.held.push(cb);
  }
  override _writev(_chunks: Array<{ chunk: Buffer }>, cb: () => void): void {
    this.held.push(cb);
  }
}

const target = { network: MuxNetwork.Tcp, host: '127.0.0.1', port: 80 };
const keep = (id: number, data: Buffer): Buffer =>
  encodeMuxFrame({ sessionId: id, status: MuxStatus.Keep, option: 0 }, data);

test('a full carrier whose last write was an End does not stop the uploads of live sessions', async () => {
  const carrier = new SlowCarrier();
  const sessions = new Map<number, { s: MuxSession; got: number }>();
  const mux: MuxConnection = new MuxConnection(carrier, {
    role: 'server',
    maxUnauthenticated: 32,
    onSession: (s: MuxSession) => {
      mux.authenticated(s);
      const e = { s, got: 0 };
      sessions.set(s.id, e);
      s.on('error', () => {});
      s.on('data', (d: Buffer) => (e.got += d.length));
    },
  });
  try {
    carrier.push(
      Buffer.concat([
        encodeMuxFrame({ sessionId: 1, status: MuxStatus.New, option: 0, target }, Buffer.from('a')),
        encodeMuxFrame({ sessionId: 2, status: MuxStatus.New, option: 0, target }, Buffer.from('b')),
      ]),
    );
    await waitFor(() => sessions.size === 2);
    // Session 1's reply fills the carrier to one byte below its high-water mark (a Keep frame is
    // the data plus 8 bytes), then its End (6 bytes) crosses it: full, and nothing waits for drain.
    const hwm = carrier.writableHighWaterMark;
    const s1 = sessions.get(1)!.s;
    s1.end(Buffer.alloc(hwm - 1 - 8));
    await waitFor(() => carrier.writableNeedDrain);
    // The peer uploads on session 2 and reads our carrier only once that is through.
    const chunk = Buffer.alloc(4000, 1);
    for (let i = 0; i < 4; i++) {
      carrier.push(keep(2, chunk));
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => sessions.get(2)!.got === 1 + 4 * chunk.length, { timeoutMs: 2000 });
    assert.equal(carrier.isPaused(), false);
  } finally {
    mux.destroy();
  }
});
