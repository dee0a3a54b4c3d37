/**
 * Loopback TCP fixtures for integration tests and the benchmark: echo, hashing sink, source,
 * free ports and "wait until a port accepts".
 *
 * Wire conventions (all integers big-endian):
 *   sink:   client sends u64 length N, then N bytes; the sink answers with sha256(bytes) (32 bytes)
 *           or, with `hash: false`, with a single byte 0x06, then ends.
 *   source: client sends u64 length N; the source sends N bytes followed by sha256 of them (32
 *           bytes; omitted with `hash: false`), then ends.
 *   echo:   every byte read is written back; FIN is answered with FIN.
 * Neither sink nor source needs TCP half-close, so they work through peers that lack it.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { waitFor } from './wait.js';

export interface TestServer {
  readonly port: number;
  readonly host: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

export interface ServeOptions {
  host?: string;
  /** Keep the socket writable after the peer's FIN (net's allowHalfOpen). */
  allowHalfOpen?: boolean;
}

/** A TCP server on 127.0.0.1 (or opts.host), port 0, that hands each connection to `handler`. */
export async function serve(handler: (s: net.Socket) => void, opts: ServeOptions = {}): Promise<TestServer> {
  const host = opts.host ?? '127.0.0.1';
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer({ allowHalfOpen: opts.allowHalfOpen ?? false }, (s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    handler(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    host,
    get accepted() {
      return accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A TCP echo server on 127.0.0.1, port 0. */
export function startEcho(opts: ServeOptions = {}): Promise<TestServer> {
  return serve((s) => {
    s.pipe(s);
  }, opts);
}

/** Reads a u64 BE length prefix from `s`, then hands over the remainder of the stream. */
function readLengthPrefix(s: net.Socket, cb: (n: number, rest: Buffer) => void): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    if (head.length < 8) return;
    s.off('data', onData);
    s.pause();
    const n = Number(head.readBigUInt64BE(0));
    cb(n, head.subarray(8));
  };
  s.on('data', onData);
}

export interface SinkOptions extends ServeOptions {
  /** Hash the body and answer with the digest (default true); otherwise answer one byte. */
  hash?: boolean;
}

/** A sink: reads u64 N then N bytes, answers with sha256 of them (or 0x06), then ends. */
export function startSink(opts: SinkOptions = {}): Promise<TestServer> {
  const doHash = opts.hash ?? true;
  return serve((s) => {
    readLengthPrefix(s, (n, rest) => {
      const h = doHash ? createHash('sha256') : undefined;
      let got = 0;
      const take = (chunk: Buffer): void => {
        const part = chunk.length > n - got ? chunk.subarray(0, n - got) : chunk;
        h?.update(part);
        got += part.length;
        if (got === n) {
          s.off('data', take);
          s.end(h ? h.digest() : Buffer.from([6]));
        }
      };
      if (n === 0) {
        s.end(h ? h.digest() : Buffer.from([6]));
        return;
      }
      s.on('data', take);
      if (rest.length > 0) take(rest);
      s.resume();
    });
  }, opts);
}

export interface SourceOptions extends ServeOptions {
  /** Append sha256 of the body (default true). */
  hash?: boolean;
  /** Fresh random bytes for every block (default true); otherwise one random block repeated. */
  fresh?: boolean;
}

const BLOCK = 64 * 1024;

/** A source: reads u64 N, sends N bytes (random) and then their sha256, then ends. */
export function startSource(opts: SourceOptions = {}): Promise<TestServer> {
  const doHash = opts.hash ?? true;
  const fresh = opts.fresh ?? true;
  const fixed = randomBytes(BLOCK);
  return serve((s) => {
    readLengthPrefix(s, (n) => {
      s.resume(); // keep reading (and discarding) so a FIN is seen
      const h = doHash ? createHash('sha256') : undefined;
      let sent = 0;
      const pump = (): void => {
        while (sent < n) {
          const len = Math.min(BLOCK, n - sent);
          const block = fresh ? randomBytes(len) : fixed.subarray(0, len);
          h?.update(block);
          sent += len;
          if (!s.write(block)) {
            s.once('drain', pump);
            return;
          }
        }
        if (h) s.end(h.digest());
        else s.end();
      };
      pump();
    });
  }, opts);
}

/**
 * The descriptor under a Node socket or server (its libuv handle's), for tests that hand it to the
 * native addon.
 */
export function fdOf(s: net.Socket | net.Server): number {
  return (s as unknown as { _handle: { fd: number } })._handle.fd;
}

/**
 * The block freePort() walks: the 10,000 ports below the kernel's ephemeral range
 * (net.ipv4.ip_local_port_range, 32768-60999 by default), or undefined when there is no room.
 */
function portBlock(): { lo: number; span: number } | undefined {
  let ephemeralLo = 32768;
  try {
    ephemeralLo = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0],
    );
  } catch {
    // not Linux: the usual default
  }
  const lo = Math.max(10_000, ephemeralLo - 10_000);
  return Number.isInteger(ephemeralLo) && ephemeralLo - lo >= 2000
    ? { lo, span: ephemeralLo - lo }
    : undefined;
}

const block = portBlock();
/** This process's next candidate: each test file starts at its own random point of the block. */
let nextFree = block ? block.lo + randomInt(block.span) : 0;

/** Whether `port` on `host` can be bound now, for TCP (listen) and UDP alike. */
async function bindable(port: number, host: string): Promise<boolean> {
  const srv = net.createServer();
  const tcp = await new Promise<boolean>((resolve) => {
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => resolve(true));
  });
  if (!tcp) return false;
  const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const ok = await new Promise<boolean>((resolve) => {
    udp.once('error', () => resolve(false));
    udp.bind(port, host, () => resolve(true));
  });
  await new Promise<void>((resolve) => udp.close(() => resolve()));
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return ok;
}

/**
 * A port that was free a moment ago on `host`, TCP and UDP, for a peer that must be told its port
 * (ss-server, nginx, a managed server's second port). Taken from below the kernel's ephemeral
 * range: a port from listen(0) is free for the kernel to hand to any listen(0), bind(0), UDP
 * socket or (past the even ports) outgoing connection of the test files running alongside until
 * the peer binds it, which may be seconds later; below the range only another freePort() can
 * pick it, and each file walks the block from its own random start.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; block && i < 100; i++) {
    const port = nextFree;
    nextFree = nextFree + 1 >= block.lo + block.span ? block.lo : nextFree + 1;
    if (await bindable(port, host)) return port;
  }
  // No block, or 100 ports in a row taken: the kernel's choice.
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, host, () => resolve());
  });
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Resolve once a TCP connect to host:port succeeds; reject after `timeoutMs`. */
export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 15_000): Promise<void> {
  let lastErr: unknown;
  const s = await waitFor(
    () =>
      connect(port, host).catch((err: unknown) => {
        lastErr = err;
        return undefined;
      }),
    { timeoutMs, intervalMs: 50, message: () => `port ${host}:${port} accepting (${String(lastErr)})` },
  );
  s.destroy();
}

/** Connect and resolve with the socket once connected. */
export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Encode a u64 BE length prefix. */
export function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/**
 * Read exactly `n` bytes from `s` (which must be flowing or paused with no other data
 * listeners), then resolve. Rejects on error, on early end, or after `timeoutMs`.
 */
export function readExactly(s: net.Socket, n: number, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const done = (err?: Error, value?: Buffer): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('error', onError);
      s.off('close', onEnd);
      if (err) reject(err);
      else resolve(value!);
    };
    const onData = (chunk: Buffer): void => {
      const need = n - got;
      if (chunk.length < need) {
        parts.push(chunk);
        got += chunk.length;
        return;
      }
      parts.push(chunk.subarray(0, need));
      got = n;
      s.pause();
      done(undefined, Buffer.concat(parts, n));
      // Give back what belongs to the next reader (after our listener is gone).
      if (chunk.length > need) s.unshift(chunk.subarray(need));
    };
    const onEnd = (): void => done(new Error(`stream ended after ${got} of ${n} bytes`));
    const onError = (e: Error): void => done(e);
    const timer = setTimeout(() => done(new Error(`timed out after ${got} of ${n} bytes`)), timeoutMs);
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('close', onEnd);
    s.once('error', onError);
    s.resume();
  });
}

/** Read until the peer ends; resolve with everything read. */
export function readAll(s: net.Socket, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error('readAll timed out')), timeoutMs);
    s.on('data', (c: Buffer) => parts.push(c));
    s.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts));
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.resume();
  });
}

/** Open a raw TCP connection, send bytes, and report what came back and how it closed. */
export function rawProbe(
  port: number,
  payload: Buffer,
  waitMs: number,
): Promise<{ received: number; kind: string; afterMs: number }> {
  return new Promise((resolve) => {
    const start = Date.now();
    let received = 0;
    let kind = 'open';
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ received, kind: 'open', afterMs: Date.now() - start });
    }, waitMs);
    s.on('connect', () => s.write(payload));
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('end', () => {
      kind = 'fin';
      s.end();
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      kind = err.code === 'ECONNRESET' ? 'rst' : `error:${err.code}`;
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ received, kind, afterMs: Date.now() - start });
    });
  });
}

/** True when some socket in this network namespace listens on 127.0.0.1:port (or any address). */
export function listening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(`:${hex}`) && cols[3] === '0A') return true;
    }
  }
  return false;
}

/**
 * Wait until `child` listens on `port` (seen in /proc/net/tcp*, so no connection is made to it: a
 * server whose workers start at the first connection stays idle).
 */
export async function waitListening(child: ChildProcess, port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!listening(port)) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before listening`);
    if (Date.now() > deadline) throw new Error(`not listening on ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A loopback port whose accept queue is full: a connect to it hangs (its SYNs are dropped). The
 * addon (`native-sockets.ts` nativeRelay()) makes the listener with a backlog of 1; four
 * connects fill it. close() ends the fillers and the listener.
 */
export async function blackholePort(addon: {
  fdClose(fd: number): void;
}): Promise<{ port: number; close(): void }> {
  const a = addon as typeof addon & {
    tcpListenReusePort(f: 4, ip: string, port: number, backlog: number): number;
    fdLocalPort(fd: number): number;
  };
  const fd = a.tcpListenReusePort(4, '127.0.0.1', 0, 1);
  const port = a.fdLocalPort(fd);
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise((res) => setTimeout(res, 100));
  return {
    port,
    close: () => {
      for (const s of fillers) s.destroy();
      a.fdClose(fd);
    },
  };
}
