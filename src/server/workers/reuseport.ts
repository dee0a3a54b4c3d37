/**
 * Listening sockets for several data-plane workers on one port: SO_REUSEPORT sockets from the
 * native addon (native/reuseport.cc; Linux), one per worker, so the kernel spreads connections
 * across them. Node 20 has no reusePort option, and worker threads cannot share one listening
 * handle, so without the addon the server runs one data-plane worker.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { probeListen } from '../../shared/listen.js';
import { nativeAddon } from '../../protocol/shadowsocks/native.js';

interface ReusePortExports {
  tcpListenReusePort?: (family: 4 | 6, ip: string, port: number, backlog: number) => number;
  fdLocalPort?: (fd: number) => number;
  fdClose?: (fd: number) => void;
  udpBind?: (family: 4 | 6, ip: string, port: number) => number;
  fdWatch?: (fds: number[], onReadable: () => void) => object;
  fdUnwatch?: (watch: object) => void;
}

const BACKLOG = 511; // node's default

function exportsOf(): ReusePortExports | undefined {
  return (nativeAddon() as ReusePortExports | null) ?? undefined;
}

/** True when the addon can make SO_REUSEPORT listening sockets here. */
export function reusePortAvailable(): boolean {
  const a = exportsOf();
  return (
    typeof a?.tcpListenReusePort === 'function' &&
    typeof a.fdLocalPort === 'function' &&
    typeof a.fdClose === 'function'
  );
}

/**
 * True when the workers can start on demand here: the addon can hold the listening sockets (and
 * a bound UDP socket) on this thread and say when the first connection or datagram waits.
 */
export function onDemandAvailable(): boolean {
  const a = exportsOf();
  return (
    reusePortAvailable() &&
    typeof a?.udpBind === 'function' &&
    typeof a.fdWatch === 'function' &&
    typeof a.fdUnwatch === 'function'
  );
}

/**
 * Call `onReadable` once, the first time any of `fds` is readable (a connection waits in a
 * listening socket's backlog, a datagram in a UDP socket's buffer); nothing is accepted or read.
 * Returns a function that stops watching.
 */
export function watchReadable(fds: readonly number[], onReadable: () => void): () => void {
  const a = exportsOf();
  if (!a?.fdWatch || !a.fdUnwatch) throw new Error('watching sockets needs the native addon');
  const unwatch = a.fdUnwatch;
  const w = a.fdWatch([...fds], onReadable);
  return () => unwatch(w);
}

/**
 * A bound UDP socket (not read until a worker adopts it) on the first of `addrs` that works,
 * like listenReusePort: its fd and where it is bound.
 */
export function udpBindFirst(
  addrs: readonly { family: 4 | 6; ip: string }[],
  port: number,
): { fd: number; family: 4 | 6; ip: string } {
  const a = exportsOf();
  if (!a?.udpBind) throw new Error('a UDP socket for a worker needs the native addon');
  let last: unknown;
  for (const { family, ip } of addrs) {
    try {
      return { fd: a.udpBind(family, ip, port), family, ip };
    } catch (err) {
      last = err;
      if ((err as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') break;
    }
  }
  throw last;
}

/** Where to bind: an IP literal and its family (a name is resolved once, like net.listen does). */
export async function bindAddress(host: string | undefined): Promise<{ family: 4 | 6; ip: string }[]> {
  if (host === undefined)
    return [
      { family: 6, ip: '::' },
      { family: 4, ip: '0.0.0.0' },
    ];
  const v = isIP(host);
  if (v !== 0) return [{ family: v as 4 | 6, ip: host }];
  const r = await lookup(host);
  return [{ family: r.family as 4 | 6, ip: r.address }];
}

/**
 * Refuse a port another program (another Ladder server too) already listens on: SO_REUSEPORT
 * would otherwise let the kernel share it between the two, and the other's clients would reach
 * this server. A plain listen (no SO_REUSEPORT) on the same address fails with EADDRINUSE while
 * any socket listens there; it is closed again at once. Throws that error, with its `code`.
 */
export async function assertPortFree(
  addrs: readonly { family: 4 | 6; ip: string }[],
  port: number,
): Promise<void> {
  if (port === 0) return;
  let last: unknown;
  for (const { ip } of addrs) {
    try {
      return await probeListen(port, ip);
    } catch (err) {
      last = err;
      if ((err as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') break;
    }
  }
  throw last;
}

/**
 * One SO_REUSEPORT listening socket: its fd. The first address that works (IPv6 dual-stack, then
 * IPv4 when the host has no IPv6). Throws the bind error with its `code` (EADDRINUSE…).
 */
export function listenReusePort(addrs: readonly { family: 4 | 6; ip: string }[], port: number): number {
  const a = exportsOf();
  if (!a?.tcpListenReusePort) throw new Error('SO_REUSEPORT sockets need the native addon');
  let last: unknown;
  for (const { family, ip } of addrs) {
    try {
      return a.tcpListenReusePort(family, ip, port, BACKLOG);
    } catch (err) {
      last = err;
      if ((err as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') break;
    }
  }
  throw last;
}

/** The port a socket fd is bound to. */
export function localPort(fd: number): number {
  const a = exportsOf();
  if (!a?.fdLocalPort) throw new Error('SO_REUSEPORT sockets need the native addon');
  return a.fdLocalPort(fd);
}

/** Close a socket fd that was never handed to a worker. */
export function closeFd(fd: number): void {
  exportsOf()?.fdClose?.(fd);
}
