/** Shared fixtures for the censor-lab behaviour tests. */
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { LabWorld } from '../../src/lab/world.js';
import { profile, type CensorOverrides } from '../../src/lab/profiles.js';
import { fragmentRecord, splitRecords } from '../../src/lab/tls-clienthello.js';
import type { Endpoint } from '../../src/lab/censor.js';

export const RATE = 100;

export function startWorld(name: string, overrides: CensorOverrides = {}, seed = 1): Promise<LabWorld> {
  return LabWorld.start({
    config: profile(name, overrides),
    seed,
    clockRate: RATE,
    proberMinRealWaitMs: 400,
  });
}

export interface TestServer {
  readonly address: Endpoint;
  /** Bytes received per connection, in order of connection. */
  readonly received: Buffer[];
  close(): Promise<void>;
}

/** A TCP server with a per-connection behaviour. */
export async function startServer(
  onConn: (s: net.Socket, record: (d: Buffer) => void) => void,
): Promise<TestServer> {
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const i = received.push(Buffer.alloc(0)) - 1;
    onConn(s, (d) => {
      received[i] = Buffer.concat([received[i]!, d]);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port },
    received,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Echo every byte back at once: the deliberately naive server. */
export const echoServer = (): Promise<TestServer> =>
  startServer((s, rec) =>
    s.on('data', (d: Buffer) => {
      rec(d);
      s.write(d);
    }),
  );

/** Read everything and never answer or close (the "drain forever" discipline). */
export const drainServer = (): Promise<TestServer> => startServer((s, rec) => s.on('data', rec));

/** Connect, write `payload`, and report what happened within `waitMs` real ms. */
export function exchange(
  to: Endpoint,
  payload: Buffer,
  opts: { localAddress?: string; waitMs?: number; then?: Buffer } = {},
): Promise<{ reaction: 'DATA' | 'RST' | 'FIN' | 'TIMEOUT'; data: Buffer }> {
  return new Promise((resolve) => {
    const s = net.connect({
      host: to.host,
      port: to.port,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    let data = Buffer.alloc(0);
    let done = false;
    const finish = (reaction: 'DATA' | 'RST' | 'FIN' | 'TIMEOUT'): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      resolve({ reaction, data });
    };
    const t = setTimeout(() => finish(data.length ? 'DATA' : 'TIMEOUT'), opts.waitMs ?? 300);
    s.on('connect', () => {
      s.write(payload);
      if (opts.then) {
        const more = opts.then;
        setTimeout(() => s.write(more), 30);
      }
    });
    s.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      finish('DATA');
    });
    s.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNRESET' ? 'RST' : 'TIMEOUT'));
    s.on('end', () => finish(data.length ? 'DATA' : 'FIN'));
  });
}

/**
 * A Duplex around a TCP socket that rewrites the first TLS record written through it (the
 * ClientHello) into two records split at `cut`, so tls.connect({socket}) sends a fragmented
 * ClientHello (the D8 technique), all in one write.
 */
export function recordSplittingSocket(raw: net.Socket, cut: number): Duplex {
  let first = true;
  let pending = Buffer.alloc(0);
  const d = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      if (!first) return void raw.write(chunk, cb);
      pending = Buffer.concat([pending, chunk]);
      const { records } = splitRecords(pending);
      if (records.length === 0) return cb();
      first = false;
      const len = 5 + records[0]!.fragment.length;
      raw.write(Buffer.concat([fragmentRecord(pending.subarray(0, len), [cut]), pending.subarray(len)]), cb);
    },
    read() {
      raw.resume();
    },
    final(cb) {
      raw.end(cb);
    },
    destroy(err, cb) {
      raw.destroy();
      cb(err);
    },
  });
  raw.on('data', (c: Buffer) => {
    if (!d.push(c)) raw.pause();
  });
  raw.on('end', () => d.push(null));
  raw.on('error', (e) => d.destroy(e));
  return d;
}

/** HTTPS GET through a record-splitting socket; resolves 'OK' or the failure class. */
export function fragmentedHttpsGet(
  to: Endpoint,
  servername: string,
  ca: Buffer,
  cut: number,
  localAddress: string,
): Promise<string> {
  return new Promise((resolve) => {
    const raw = net.connect({ host: to.host, port: to.port, localAddress });
    let done = false;
    const finish = (r: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      raw.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish('TIMEOUT'), 3000);
    raw.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNRESET' ? 'RST' : String(e.code)));
    raw.on('connect', () => {
      const t = tls.connect({ socket: recordSplittingSocket(raw, cut), servername, ca });
      let body = '';
      t.on('secureConnect', () =>
        t.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`),
      );
      t.on('data', (c: Buffer) => (body += c.toString()));
      t.on('end', () => finish(body.startsWith('HTTP/1.1 200') ? 'OK' : 'BAD'));
      t.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNRESET' ? 'RST' : String(e.code)));
    });
  });
}

export const sleepReal = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Bytes failing every C6 exemption: popcount exactly 4 per byte, nothing printable. */
export function fetEligible(n: number): Buffer {
  return Buffer.from(
    Array.from({ length: n }, (_, i) => [0x0f, 0xf0, 0x1b, 0xcc, 0x99, 0x96, 0x8e, 0x17][i % 8]!),
  );
}
