import dgram from 'node:dgram';
import net from 'node:net';
import { encodeUdpHeader, parseUdpDatagram } from '../protocol/socks5/socks5.js';
import { decodeAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { BatchUdpSocket } from './batch-udp.js';

/**
 * A minimal SOCKS5 UDP ASSOCIATE client (no authentication) for tests, benchmarks and the lab:
 * opens the control connection, learns the relay address, and sends/receives SOCKS5 UDP
 * datagrams from one local UDP socket.
 */
export interface Socks5UdpAssociation {
  readonly relay: { host: string; port: number };
  send(to: SocksAddress, payload: Uint8Array): void;
  onMessage: ((from: SocksAddress, payload: Buffer) => void) | undefined;
  close(): void;
}

/** Reads exact byte counts from a socket during a handshake (one data listener, own buffer). */
class HandshakeReader {
  #buf = Buffer.alloc(0);
  #wake: (() => void) | undefined;
  #closed = false;
  readonly #s: net.Socket;
  readonly #onData = (d: Buffer): void => {
    this.#buf = Buffer.concat([this.#buf, d]);
    this.#wake?.();
  };
  readonly #onClose = (): void => {
    this.#closed = true;
    this.#wake?.();
  };

  constructor(s: net.Socket) {
    this.#s = s;
    s.on('data', this.#onData);
    s.on('close', this.#onClose);
  }

  async take(n: number, timeoutMs: number): Promise<Buffer> {
    const end = Date.now() + timeoutMs;
    while (this.#buf.length < n) {
      if (this.#closed) throw new Error('socks5 control connection closed');
      if (Date.now() > end) throw new Error('socks5 handshake timed out');
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  stop(): void {
    this.#s.off('data', this.#onData);
    this.#s.off('close', this.#onClose);
  }
}

export async function socks5UdpAssociate(
  socksPort: number,
  socksHost = '127.0.0.1',
  timeoutMs = 10_000,
): Promise<Socks5UdpAssociation> {
  const control = net.connect({ port: socksPort, host: socksHost });
  await new Promise<void>((resolve, reject) => {
    control.once('connect', resolve);
    control.once('error', reject);
  });
  control.on('error', () => control.destroy());
  const reader = new HandshakeReader(control);
  const readSome = (_s: net.Socket, n: number, ms: number): Promise<Buffer> => reader.take(n, ms);
  control.write(Buffer.from([5, 1, 0]));
  const sel = await readSome(control, 2, timeoutMs);
  if (sel[0] !== 5 || sel[1] !== 0) throw new Error('socks5: no-auth refused');
  control.write(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
  const head = await readSome(control, 4, timeoutMs);
  if (head[1] !== 0) throw new Error(`socks5 UDP ASSOCIATE refused (REP ${head[1]})`);
  const atyp = head[3];
  const rest = await readSome(control, atyp === 1 ? 6 : atyp === 4 ? 18 : 1, timeoutMs);
  let addrBuf = Buffer.concat([Buffer.from([atyp!]), rest]);
  if (atyp === 3) addrBuf = Buffer.concat([addrBuf, await readSome(control, rest[0]! + 2, timeoutMs)]);
  reader.stop();
  control.resume();
  const bound = decodeAddress(addrBuf, 0)!.address;
  let host = bound.host;
  if (host === '0.0.0.0' || host === '::') host = socksHost;
  let target: Socks5UdpAssociation | undefined;
  const deliver = (msg: Buffer): void => {
    let d: ReturnType<typeof parseUdpDatagram>;
    try {
      d = parseUdpDatagram(msg);
    } catch {
      return; // not a SOCKS5 UDP datagram
    }
    // A copy: on a batched socket msg is a view of a shared area the next batch overwrites.
    target?.onMessage?.(d.address, Buffer.from(d.data));
  };
  const local = net.isIP(host) === 6 ? '::1' : '127.0.0.1';
  if (BatchUdpSocket.available()) {
    // The addon's batched socket: a lighter driver for benchmarks (same bytes on the wire).
    const b = BatchUdpSocket.bind(net.isIP(host) === 6 ? 6 : 4, local, 0, (msg) => deliver(msg));
    const assoc: Socks5UdpAssociation = {
      relay: { host, port: bound.port },
      send: (to, payload) => {
        b.sendTo(Buffer.concat([encodeUdpHeader(to), payload]), bound.port, host);
      },
      onMessage: undefined,
      close: () => {
        control.destroy();
        b.close();
      },
    };
    target = assoc;
    return assoc;
  }
  const sock = dgram.createSocket(net.isIP(host) === 6 ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => sock.bind(0, local, () => resolve()));
  const assoc: Socks5UdpAssociation = {
    relay: { host, port: bound.port },
    send: (to, payload) => {
      sock.send(Buffer.concat([encodeUdpHeader(to), payload]), bound.port, host);
    },
    onMessage: undefined,
    close: () => {
      control.destroy();
      sock.close();
    },
  };
  target = assoc;
  sock.on('message', (msg) => deliver(msg));
  return assoc;
}

export interface UdpEchoRunResult {
  sent: number;
  received: number;
  /** Replies whose bytes differ from what was sent with that sequence number. */
  corrupted: number;
  elapsedMs: number;
}

/**
 * Send `count` datagrams of `size` bytes (8-byte sequence number + pattern) to a UDP echo
 * `target` through `assoc`, at most `window` unanswered at a time, and check every reply byte for
 * byte. A datagram unanswered for `lossTimeoutMs` counts as lost and frees its window slot.
 */
export function udpEchoRun(
  assoc: Pick<Socks5UdpAssociation, 'send' | 'onMessage'>,
  target: SocksAddress,
  count: number,
  size: number,
  opts: { window?: number; lossTimeoutMs?: number; deadlineMs?: number } = {},
): Promise<UdpEchoRunResult> {
  const window = opts.window ?? 16;
  const lossTimeoutMs = opts.lossTimeoutMs ?? 1_000;
  const start = Date.now();
  const deadline = start + (opts.deadlineMs ?? 30_000);
  // Sequence number and size, then a pattern that shifts with the sequence number (cut from
  // one precomputed buffer, so the driver spends its time on datagrams, not on filling them).
  const len = Math.max(8, size);
  const pattern = Buffer.alloc(len + 256);
  for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 31 + 7) & 0xff;
  const payload = (seq: number): Buffer => {
    const b = Buffer.allocUnsafe(len);
    b.writeUInt32BE(seq, 0);
    b.writeUInt32BE(size, 4);
    pattern.copy(b, 8, seq & 0xff, (seq & 0xff) + len - 8);
    return b;
  };
  return new Promise((resolve) => {
    let next = 0;
    let received = 0;
    let corrupted = 0;
    const pending = new Map<number, number>();
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      assoc.onMessage = undefined;
      resolve({ sent: next, received, corrupted, elapsedMs: Date.now() - start });
    };
    const pump = (): void => {
      while (pending.size < window && next < count) {
        const seq = next++;
        pending.set(seq, Date.now());
        assoc.send(target, payload(seq));
      }
      if (next >= count && pending.size === 0) finish();
    };
    assoc.onMessage = (_from, data) => {
      if (data.length < 8) {
        corrupted++;
        return;
      }
      const seq = data.readUInt32BE(0);
      if (!pending.has(seq)) return; // late reply of a datagram already counted lost
      pending.delete(seq);
      received++;
      if (!data.equals(payload(seq))) corrupted++;
      pump();
    };
    const timer = setInterval(() => {
      const now = Date.now();
      for (const [seq, at] of pending) if (now - at > lossTimeoutMs) pending.delete(seq);
      if (now > deadline) finish();
      else pump();
    }, 50);
    pump();
  });
}

/** A UDP echo server on loopback (tests, benchmarks); on the addon's batched socket when available. */
export async function startUdpEcho(host = '127.0.0.1'): Promise<{ port: number; close(): Promise<void> }> {
  if (BatchUdpSocket.available()) {
    const b: BatchUdpSocket = BatchUdpSocket.bind(net.isIP(host) === 6 ? 6 : 4, host, 0, (msg, addrs, off) =>
      b.send(msg, addrs, off),
    );
    return {
      port: b.port,
      close: async () => {
        b.close();
        await new Promise((r) => setTimeout(r, 0));
      },
    };
  }
  const s = dgram.createSocket(net.isIP(host) === 6 ? 'udp6' : 'udp4');
  s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
  s.on('error', () => undefined);
  await new Promise<void>((resolve) => s.bind(0, host, () => resolve()));
  return { port: s.address().port, close: () => new Promise((resolve) => s.close(() => resolve())) };
}
