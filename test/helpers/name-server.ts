/**
 * A real server whose destinations are names (names.ts), for test/server/name-*.test.ts: the
 * lookup injected where the answer matters, the system's otherwise; one connection's exchange.
 */
import net from 'node:net';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import type { Lookup } from '../../src/server/destination.js';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import type { NameCacheOptions } from '../../src/server/names.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { silentLogger } from '../../src/shared/logger.js';
import { waitFor } from './wait.js';

export const M = getAeadMethod('aes-256-gcm');
/** Two keys: the first is the one used unless told. */
export const KEYS = [
  { id: 'k1', method: M.name, secret: 'name-dial-pw' },
  { id: 'k2', method: M.name, secret: 'name-dial-pw-2' },
];
const masters = KEYS.map((k) => evpBytesToKey(k.secret, M.keySize));

/** A client's first bytes for name:port with `data`, under key `key` (an index in KEYS). */
export function request(name: string, port: number, data: Buffer, key = 0): Buffer {
  const host = Buffer.from(name);
  const addr = Buffer.concat([Buffer.from([3, host.length]), host, Buffer.from([port >> 8, port & 0xff])]);
  return new AeadEncoder(M, masters[key]!).encode(Buffer.concat([addr, data]));
}

export interface Run {
  server: ShadowsocksServer;
  port: number;
  closed: ConnectionClosedEvent[];
  lookups: string[];
}

export interface RunOptions {
  /** The answer for a name ([]: not found); a promise to answer later. */
  lookup?: (host: string) => string[] | Promise<string[]>;
  allowPrivate?: boolean;
  ttlMs?: number;
  connectMs?: number;
  /** More of the cache's options (on only). */
  cache?: Omit<NameCacheOptions, 'clock' | 'lookup'>;
  /** The server's lean path (lean-path.ts; default LADDER_LEAN_PATH's, on). */
  leanPath?: boolean;
}

/** A server with the name cache and addon dial on (`on`) or off (nameCache: false). */
export async function startServer(on: boolean, o: RunOptions = {}): Promise<Run> {
  const closed: ConnectionClosedEvent[] = [];
  const lookups: string[] = [];
  const answer = o.lookup;
  const lookup: Lookup | undefined = answer
    ? async (host) => {
        lookups.push(host);
        const found = await answer(host);
        if (found.length === 0) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
        return found.map((address) => ({ address, family: net.isIP(address) }));
      }
    : undefined;
  const server = new ShadowsocksServer({
    keys: KEYS,
    allowPrivateDestinations: o.allowPrivate ?? true,
    nameCache: on ? { ttlMs: o.ttlMs ?? 10_000, ...o.cache } : false,
    timeouts: { idleMs: 3000, connectMs: o.connectMs ?? 2000 },
    logger: silentLogger,
    ...(lookup ? { lookup } : {}),
    ...(o.leanPath !== undefined ? { leanPath: o.leanPath } : {}),
    hooks: { onConnectionClosed: (e) => closed.push(e) },
  });
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
  return { server, port, closed, lookups };
}

/** One connection to name:destPort: the echoed bytes ('' when the server only closed). */
export async function exchange(
  r: Run,
  name: string,
  destPort: number,
  data: Buffer,
  key = 0,
): Promise<Buffer> {
  const s = net.connect({ port: r.port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  const back: Buffer[] = [];
  s.on('data', (b: Buffer) => back.push(b));
  const ended = new Promise((res) => s.once('end', res));
  s.write(request(name, destPort, data, key));
  const want = M.saltSize + 18 + data.length + 16;
  await Promise.race([
    ended,
    waitFor(() => back.reduce((n, b) => n + b.length, 0) >= want, { timeoutMs: 8000 }),
  ]);
  s.end();
  await ended;
  s.destroy();
  const reply = Buffer.concat(back);
  return reply.length === 0 ? reply : Buffer.concat(new AeadDecoder(M, masters[key]!).push(reply));
}

/** Each closed connection's [status, errno]. */
export const statuses = (r: Run): (string | undefined)[][] => r.closed.map((e) => [e.status, e.errno]);

/** A promise and its resolve. */
export function later<T>(): { p: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const p = new Promise<T>((r) => (resolve = r));
  return { p, resolve };
}
