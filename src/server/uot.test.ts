import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { encodeUotDatagram } from '../protocol/uot.js';
import { systemClock } from '../shared/clock.js';
import { startUot } from './uot.js';

test('an association ended while the client reads nothing is destroyed one idle period later', async () => {
  // A UDP echo on loopback answers the datagram; the reply is written to a stream whose writes
  // never complete (a client that stopped reading), so the FIN after the idle timeout can never
  // be flushed. Before the fix the stream stayed open for good.
  const echo = dgram.createSocket('udp4');
  echo.on('message', (m, r) => echo.send(m, r.port, r.address));
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
  let written = 0;
  const stream = new Duplex({
    read() {},
    write(_chunk, _enc, _cb) {
      written++; // never calls back
    },
  });
  const idleMs = 200;
  const assoc = startUot(
    1,
    Buffer.alloc(0),
    {
      stream,
      decode: (c) => [c],
      encode: (c) => c,
      count: () => undefined,
      refused: () => undefined,
    },
    { clock: systemClock, idleMs, allowPrivateDestinations: true, lookup: undefined },
  );
  try {
    const port = (echo.address() as { port: number }).port;
    stream.push(encodeUotDatagram({ type: 'ipv4', host: '127.0.0.1', port }, Buffer.from('hi')));
    const t0 = Date.now();
    while (written === 0 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(written, 1, 'the reply reached the stream');
    assert.equal(stream.destroyed, false, 'open while the association is live');
    while (!stream.destroyed && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(stream.destroyed, true, 'destroyed after the idle timeout and one more idle period');
    assert.ok(Date.now() - t0 >= idleMs, 'not before the idle timeout');
  } finally {
    assoc.close();
    stream.destroy();
    echo.close();
  }
});
