/**
 * A recording TCP forwarder: listens on 127.0.0.1:0, forwards every connection to a target, and
 * records the first flight in each direction (the bytes of the first 'data' event, plus up to
 * `keep` bytes of the whole stream) so tests can replay a real client's first packet or a
 * server's first response.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface RecordedConnection {
  /** Bytes of the first read from the client (its first packet as seen by us). */
  clientFirst: Buffer | undefined;
  /** Bytes of the first read from the server. */
  serverFirst: Buffer | undefined;
  /** Up to `keep` bytes of each direction. */
  clientBytes: Buffer;
  serverBytes: Buffer;
}

export interface Recorder {
  readonly port: number;
  readonly connections: RecordedConnection[];
  close(): Promise<void>;
}

export async function startRecorder(
  targetPort: number,
  targetHost = '127.0.0.1',
  keep = 64 * 1024,
): Promise<Recorder> {
  const connections: RecordedConnection[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const rec: RecordedConnection = {
      clientFirst: undefined,
      serverFirst: undefined,
      clientBytes: Buffer.alloc(0),
      serverBytes: Buffer.alloc(0),
    };
    connections.push(rec);
    const s = net.connect({ port: targetPort, host: targetHost });
    for (const x of [c, s]) {
      sockets.add(x);
      x.on('close', () => sockets.delete(x));
    }
    c.setNoDelay(true);
    s.setNoDelay(true);
    c.on('data', (d: Buffer) => {
      rec.clientFirst ??= Buffer.from(d);
      if (rec.clientBytes.length < keep)
        rec.clientBytes = Buffer.concat([rec.clientBytes, d]).subarray(0, keep);
      if (!s.write(d)) {
        c.pause();
        s.once('drain', () => c.resume());
      }
    });
    s.on('data', (d: Buffer) => {
      rec.serverFirst ??= Buffer.from(d);
      if (rec.serverBytes.length < keep)
        rec.serverBytes = Buffer.concat([rec.serverBytes, d]).subarray(0, keep);
      if (!c.write(d)) {
        s.pause();
        c.once('drain', () => s.resume());
      }
    });
    c.on('end', () => s.end());
    s.on('end', () => c.end());
    c.on('error', () => s.destroy());
    s.on('error', () => c.destroy());
    c.on('close', () => s.destroy());
    s.on('close', () => c.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
