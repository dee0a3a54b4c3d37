// A session's End frame waits (endDelayMs) for the carrier's next write and leaves after the
// frames of that write, so a finished session's tail never goes before the next session's bytes;
// alone after the delay when nothing follows; before the carrier's end; before its own End with
// the error bit. Over a recording carrier (each carrier write kept apart); over loopback TCP in
// mux.test.ts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { encodeMuxFrame, MuxCoolDecoder, MuxStatus, MUX_OPTION_ERROR } from '../../src/protocol/muxcool.js';
import { MuxConnection, muxEndDelayMs, type MuxSession } from '../../src/transport/mux.js';
import { sleep, waitFor } from '../helpers/wait.js';

/** A carrier that keeps each write apart and reads nothing. */
class RecordingCarrier extends Duplex {
  readonly writes: Buffer[] = [];
  finalled = false;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.writes.push(chunk);
    cb();
  }
  override _final(cb: () => void): void {
    this.finalled = true;
    cb();
  }
  override _read(): void {}
}

/** Each write's frames as [session, status, option, data]. */
function framesOf(writes: Buffer[]): Array<Array<[number, MuxStatus, number, string]>> {
  return writes.map((w) =>
    new MuxCoolDecoder()
      .push(w)
      .map(
        (f) =>
          [f.sessionId, f.status, f.option, f.data ? f.data.toString() : ''] as [
            number,
            MuxStatus,
            number,
            string,
          ],
      ),
  );
}

const finished = (s: MuxSession): Promise<unknown> => once(s, 'finish');

/** A session whose destruction by the carrier's teardown is expected. */
function open(mux: MuxConnection): MuxSession {
  const s = mux.open();
  s.on('error', () => {});
  return s;
}

/** A client carrier with one session that wrote `data` (if any) and ended its side. */
async function oneEnded(
  endDelayMs: number,
  data?: string,
): Promise<{ carrier: RecordingCarrier; mux: MuxConnection; s: MuxSession }> {
  const carrier = new RecordingCarrier();
  const mux = new MuxConnection(carrier, { role: 'client', endDelayMs });
  const s = open(mux);
  if (data !== undefined) s.write(data);
  s.end();
  await finished(s);
  return { carrier, mux, s };
}

test('an End waits for the next session and leaves after its New, in the same carrier write', async () => {
  const { carrier, mux } = await oneEnded(200, 'a');
  assert.equal(carrier.writes.length, 1, 'the End has not left on its own');
  const s2 = open(mux);
  s2.write('b');
  assert.deepEqual(framesOf(carrier.writes), [
    [[1, MuxStatus.New, 0, 'a']],
    [
      [2, MuxStatus.New, 0, 'b'],
      [1, MuxStatus.End, 0, ''],
    ],
  ]);
  s2.end();
  await waitFor(() => carrier.writes.length === 3, { timeoutMs: 2000 });
  assert.deepEqual(framesOf(carrier.writes)[2], [[2, MuxStatus.End, 0, '']], 'alone after the delay');
  mux.destroy();
});

test('without a delay every End leaves at once (the switch off)', async () => {
  const { carrier, mux } = await oneEnded(0, 'a');
  assert.deepEqual(framesOf(carrier.writes), [[[1, MuxStatus.New, 0, 'a']], [[1, MuxStatus.End, 0, '']]]);
  mux.destroy();
});

test('an End with the error bit follows the clean End still waiting', async () => {
  const { carrier, mux, s } = await oneEnded(10_000, 'a');
  // Destroyed before the peer ended its side: End with the error bit, after the clean End.
  s.destroy();
  await once(s, 'close');
  assert.deepEqual(framesOf(carrier.writes)[1], [
    [1, MuxStatus.End, 0, ''],
    [1, MuxStatus.End, MUX_OPTION_ERROR, ''],
  ]);
  mux.destroy();
});

test('Ends still waiting leave before the carrier ends', async () => {
  const { carrier, mux, s } = await oneEnded(10_000, 'a');
  mux.end(); // no new sessions; the carrier ends once session 1 is done
  await sleep(20);
  assert.equal(carrier.finalled, false, 'session 1 waits for the peer');
  const closed = once(s, 'close');
  s.resume();
  carrier.push(encodeMuxFrame({ sessionId: 1, status: MuxStatus.End, option: 0 })); // the peer's End
  await closed;
  await waitFor(() => carrier.finalled, { timeoutMs: 2000 });
  assert.deepEqual(framesOf(carrier.writes), [[[1, MuxStatus.New, 0, 'a']], [[1, MuxStatus.End, 0, '']]]);
});

test('a session that ends before writing opens and ends at once (its New is not held)', async () => {
  const { carrier, mux } = await oneEnded(10_000);
  assert.deepEqual(framesOf(carrier.writes), [
    [
      [1, MuxStatus.New, 0, ''],
      [1, MuxStatus.End, 0, ''],
    ],
  ]);
  mux.destroy();
});

test('a carrier destroyed while an End waits: nothing is written after, the wait does not fire', async () => {
  const { carrier, mux } = await oneEnded(30, 'a');
  assert.equal(carrier.writes.length, 1, 'the End waits');
  const late: unknown[] = []; // writes tried on the destroyed carrier (_write never sees them)
  const write = carrier.write.bind(carrier) as (...a: unknown[]) => boolean;
  carrier.write = ((...a: unknown[]) => {
    if (carrier.destroyed) late.push(a[0]);
    return write(...a);
  }) as typeof carrier.write;
  carrier.on('error', () => {});
  mux.destroy();
  await sleep(80); // past the delay: a timer left running would try to write the End now
  assert.deepEqual(framesOf(carrier.writes), [[[1, MuxStatus.New, 0, 'a']]]);
  assert.equal(carrier.destroyed, true);
  assert.equal(late.length, 0, 'nothing tried after the destroy');
});

test('LADDER_MUX_END_DELAY_MS: default 2, 0 turns it off, nonsense gives the default', () => {
  assert.equal(muxEndDelayMs({}), 2);
  assert.equal(muxEndDelayMs({ LADDER_MUX_END_DELAY_MS: '0' }), 0);
  assert.equal(muxEndDelayMs({ LADDER_MUX_END_DELAY_MS: '5' }), 5);
  assert.equal(muxEndDelayMs({ LADDER_MUX_END_DELAY_MS: 'soon' }), 2);
  assert.equal(muxEndDelayMs({ LADDER_MUX_END_DELAY_MS: '-3' }), 2);
});
