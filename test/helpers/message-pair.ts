import { Duplex } from 'node:stream';

/**
 * Two streams joined in memory: each write (corked writes together) arrives whole at the other
 * end on a later turn, as a WebSocket message does. With `backPressure` a write's callback waits
 * for its delivery, as a socket's would; otherwise it is called at once.
 */
export function messagePair(opts: { backPressure?: boolean } = {}): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (other: () => Duplex): Duplex => {
    const send = (data: Buffer, cb: () => void): void => {
      setImmediate(() => {
        other().push(data);
        if (opts.backPressure) cb();
      });
      if (!opts.backPressure) cb();
    };
    return new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk: Buffer, _enc, cb) {
        send(chunk, cb);
      },
      writev(chunks: Array<{ chunk: Buffer }>, cb) {
        send(Buffer.concat(chunks.map((c) => c.chunk)), cb);
      },
    });
  };
  ends.push(
    make(() => ends[1]!),
    make(() => ends[0]!),
  );
  return [ends[0]!, ends[1]!];
}
