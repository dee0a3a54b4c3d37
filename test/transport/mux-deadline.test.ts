/**
 * A server Mux.Cool carrier (the web front's, which bounds unauthenticated sessions) whose
 * sessions never authenticate is closed one idle timeout after it started, whatever the peer
 * sends meanwhile: KeepAlive frames, or a new garbage session now and then. Before, each of these
 * held the carrier (and its socket) for as long as the peer went on, where a raw stream gets the
 * server's fixed pre-relay deadline. A carrier with an authenticated session keeps the idle rule.
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { encodeMuxFrame, MuxNetwork, MuxStatus } from '../../src/protocol/muxcool.js';
import { MuxConnection, type MuxSession } from '../../src/transport/mux.js';
import { sleep } from '../helpers/wait.js';

class Carrier extends Duplex {
  ended = false;
  constructor() {
    super({ allowHalfOpen: true });
  }
  override _read(): void {}
  override _write(_c: Buffer, _e: BufferEncoding, cb: () => void): void {
    cb();
  }
  override _final(cb: () => void): void {
    this.ended = true;
    cb();
  }
}

const IDLE_MS = 400;
const keepAlive = (): Buffer => encodeMuxFrame({ sessionId: 0, status: MuxStatus.KeepAlive, option: 0 });
const newSession = (id: number): Buffer =>
  encodeMuxFrame({
    sessionId: id,
    status: MuxStatus.New,
    option: 0,
    target: { network: MuxNetwork.Tcp, host: '127.0.0.1', port: 80 },
  });

function serverCarrier(onSession: (s: MuxSession, mux: MuxConnection) => void): {
  carrier: Carrier;
  mux: MuxConnection;
} {
  const carrier = new Carrier();
  const mux: MuxConnection = new MuxConnection(carrier, {
    role: 'server',
    idleMs: IDLE_MS,
    maxUnauthenticated: 32,
    onSession: (s) => {
      s.on('error', () => {});
      s.resume();
      onSession(s, mux);
    },
  });
  return { carrier, mux };
}

/** Feed `frame()` every 100 ms for `ms`, and say whether the carrier was ended meanwhile. */
async function trickle(
  carrier: Carrier,
  frame: (i: number) => Buffer,
  ms: number,
): Promise<number | undefined> {
  const t0 = Date.now();
  for (let i = 0; Date.now() - t0 < ms; i++) {
    if (carrier.ended || carrier.destroyed) return Date.now() - t0;
    carrier.push(frame(i));
    await sleep(100);
  }
  return carrier.ended || carrier.destroyed ? Date.now() - t0 : undefined;
}

for (const [name, frame] of [
  ['KeepAlive frames', keepAlive],
  ['a new garbage session now and then', (i: number) => (i % 3 === 0 ? newSession(1 + i) : keepAlive())],
] as const) {
  test(`a carrier whose sessions never authenticate, fed ${name}, closes one idle timeout after its start`, async () => {
    const { carrier, mux } = serverCarrier(() => {});
    try {
      const at = await trickle(carrier, frame, 4 * IDLE_MS);
      assert.ok(at !== undefined, 'closed');
      assert.ok(at >= IDLE_MS - 50 && at < 2 * IDLE_MS, `closed after ${at} ms`);
    } finally {
      mux.destroy();
    }
  });
}

test('negative control: a carrier with an authenticated session stays open while KeepAlives come', async () => {
  const { carrier, mux } = serverCarrier((s, m) => {
    m.authenticated(s);
    s.on('end', () => s.end());
  });
  try {
    carrier.push(newSession(1));
    carrier.push(encodeMuxFrame({ sessionId: 1, status: MuxStatus.End, option: 0 }));
    assert.equal(await trickle(carrier, keepAlive, 4 * IDLE_MS), undefined);
  } finally {
    mux.destroy();
  }
});
