/**
 * C7 against a ShadowTLS v3 port (transports.md §4; ihciah/shadow-tls#69): what a prober learns
 * from a genuine client's ClientHello, which it saw on the path.
 *
 * - **Replay.** The prober sends the genuine hello again from its own address, to the port and to
 *   the site the port claims to be (the SNI's real server), and compares the record headers of
 *   the two answers (type and length, which is all it can read without the client's key). A
 *   server that accepted the replay as its client's would tag the site's records (4 bytes more
 *   each) and be told apart; one that relays a replay to the site answers as the site does.
 * - **The 4-byte tell** (passive + active). The genuine session's server flight, as the path saw
 *   it, against the port's answer to the prober's own hello: ShadowTLS v3 adds a 4-byte tag to
 *   every encrypted handshake record it relays to an authenticated client, so the genuine flight's
 *   records are 4 bytes longer than the same site's records to anyone else. Every v3 server has
 *   this (it is the protocol's, not an implementation's); the lab shows its detection, it does
 *   not fix it.
 *
 * Record lengths are compared with a tolerance of 2 bytes: an ECDSA signature's DER encoding
 * (the site's CertificateVerify) varies by up to 2 bytes from one handshake to the next.
 */
import net from 'node:net';
import type { Endpoint } from './censor.js';
import { assertLoopback } from './world.js';

const HANDSHAKE = 0x16;
const APPLICATION_DATA = 0x17;
/** ECDSA P-256 signatures are 70-72 bytes in DER. */
const TOLERANCE = 2;

/** One TLS record header as the path sees it. */
export type RecordHead = readonly [type: number, length: number];

/** Record headers from a byte stream (whole records only; a trailing part is ignored). */
export function recordHeads(bytes: Buffer, max = 16): RecordHead[] {
  const out: RecordHead[] = [];
  for (let o = 0; o + 5 <= bytes.length && out.length < max;) {
    const len = bytes.readUInt16BE(o + 3);
    out.push([bytes[o]!, len]);
    o += 5 + len;
  }
  return out;
}

/** The lengths of the application-data (encrypted) records, in order. */
function appLengths(heads: readonly RecordHead[]): number[] {
  return heads.filter(([t]) => t === APPLICATION_DATA).map(([, l]) => l);
}

/**
 * A tap in front of a server (standing in for the path's capture of one session): it forwards
 * every connection unchanged and keeps the first connection's first client chunk (a TLS
 * client's ClientHello) and that connection's server bytes (the first 64 KB).
 */
export async function startHelloTap(backend: Endpoint): Promise<{
  readonly address: Endpoint;
  /** The first session's ClientHello and server flight, once one was seen. */
  readonly captured: () => { hello: Buffer; serverHeads: RecordHead[] } | undefined;
  close(): Promise<void>;
}> {
  let hello: Buffer | undefined;
  const s2c: Buffer[] = [];
  let s2cBytes = 0;
  let first = true;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    const mine = first;
    first = false;
    const b = net.connect({ host: backend.host, port: backend.port, allowHalfOpen: true });
    for (const s of [c, b]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => (s === c ? b : c).destroy());
      s.on('close', () => (s === c ? b : c).destroy());
    }
    if (mine) {
      c.once('data', (d: Buffer) => (hello = Buffer.from(d)));
      b.on('data', (d: Buffer) => {
        if (s2cBytes < 65_536) s2c.push(Buffer.from(d));
        s2cBytes += d.length;
      });
    }
    c.pipe(b);
    b.pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port },
    captured: () =>
      hello && hello[0] === HANDSHAKE
        ? { hello, serverHeads: recordHeads(Buffer.concat(s2c), 64) }
        : undefined,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Send `hello` to `to` and read record headers until the server goes quiet (it waits for our Finished). */
export function sendHello(
  to: Endpoint,
  hello: Buffer,
  opts: { quietMs?: number; maxMs?: number; localAddress?: string } = {},
): Promise<RecordHead[]> {
  assertLoopback(to.host);
  const quietMs = opts.quietMs ?? 400;
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const s = net.connect({
      host: to.host,
      port: to.port,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    let quiet: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(quiet);
      clearTimeout(cap);
      s.destroy();
      resolve(recordHeads(Buffer.concat(got)));
    };
    const cap = setTimeout(done, opts.maxMs ?? 5_000);
    s.on('connect', () => s.write(hello));
    s.on('data', (d: Buffer) => {
      got.push(d);
      clearTimeout(quiet);
      quiet = setTimeout(done, quietMs);
    });
    s.on('error', done);
    s.on('close', done);
  });
}

export interface ReplayVerdict {
  /** The replayed genuine hello: answered as the site answers it, or not. */
  readonly replay: 'same as the site' | 'differs from the site';
  /** The genuine session's encrypted handshake records against the port's answer to the prober. */
  readonly tell: 'records 4 bytes longer (ShadowTLS v3)' | 'none' | 'not compared';
  /** Per encrypted record: length in the port's answer minus the site's (replay). */
  readonly replayDeltas: readonly number[];
  /** Per encrypted record: genuine session's length minus the port's answer to the prober. */
  readonly tellDeltas: readonly number[];
}

const near = (d: number): boolean => Math.abs(d) <= TOLERANCE;

/** Replay the genuine hello to `port` and to `site`, and hold the genuine flight against the answers. */
export async function probeShadowTlsPort(
  port: Endpoint,
  site: Endpoint,
  genuine: { hello: Buffer; serverHeads: readonly RecordHead[] },
  opts: { localAddress?: string; quietMs?: number } = {},
): Promise<ReplayVerdict> {
  const atPort = await sendHello(port, genuine.hello, opts);
  const atSite = await sendHello(site, genuine.hello, opts);
  const p = appLengths(atPort);
  const s = appLengths(atSite);
  const replayDeltas = p.map((l, i) => l - (s[i] ?? 0));
  const sameTypes =
    atPort.length === atSite.length && atPort.every(([t], i) => t === atSite[i]![0]) && p.length > 0;
  const replay = sameTypes && replayDeltas.every(near) ? 'same as the site' : 'differs from the site';
  // The genuine flight: its first as many encrypted records as the port's answer has.
  const g = appLengths(genuine.serverHeads).slice(0, p.length);
  const tellDeltas = g.map((l, i) => l - p[i]!);
  const tell =
    g.length < p.length || p.length === 0
      ? 'not compared'
      : tellDeltas.every((d) => near(d - 4)) && !tellDeltas.every(near)
        ? 'records 4 bytes longer (ShadowTLS v3)'
        : 'none';
  return { replay, tell, replayDeltas, tellDeltas };
}
