/**
 * Listening as a promise, for every kind of server Node has: net, http and https servers
 * (anything with listen(options) and 'listening'/'error' events) and dgram sockets (bind).
 * Resolves with the bound address once listening; rejects with the bind error itself
 * (EADDRINUSE, EACCES, EADDRNOTAVAIL, ENOTFOUND…, with its `code`, `syscall`, `address`, `port`),
 * and leaves no listener behind either way.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import type { AddressInfo, ListenOptions } from 'node:net';

/** The part of net.Server (and http/https/tls servers) this needs. */
export interface Listenable {
  listen(options: ListenOptions): unknown;
  address(): AddressInfo | string | null;
  once(event: 'listening', listener: () => void): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'listening', listener: () => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
}

function settle<T>(
  target: {
    once(event: 'listening', l: () => void): unknown;
    once(event: 'error', l: (err: Error) => void): unknown;
    off(event: 'listening', l: () => void): unknown;
    off(event: 'error', l: (err: Error) => void): unknown;
  },
  start: () => void,
  done: () => T,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onListening = (): void => {
      target.off('error', onError);
      resolve(done());
    };
    const onError = (err: Error): void => {
      target.off('listening', onListening);
      reject(err);
    };
    target.once('listening', onListening);
    target.once('error', onError);
    try {
      start();
    } catch (err) {
      // Synchronous refusals (a bad port number, a server already listening).
      target.off('listening', onListening);
      target.off('error', onError);
      reject(err as Error);
    }
  });
}

/** server.listen(options) as a promise of the bound address (a TCP address: not a pipe path). */
export function listen(server: Listenable, options: ListenOptions): Promise<AddressInfo> {
  return settle(
    server,
    () => server.listen(options),
    () => server.address() as AddressInfo,
  );
}

/** socket.bind(port, host) as a promise of the bound address. */
export function bindUdp(socket: UdpSocket, port: number, host?: string): Promise<AddressInfo> {
  return settle(
    socket,
    () => socket.bind(port, host),
    () => socket.address(),
  );
}

const BIND_ERRORS: ReadonlySet<string> = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL', 'ENOTFOUND']);

/**
 * The code of a listen/bind failure that is about the address the user chose (in use, a
 * privileged port, not an address of this machine, a host name that does not resolve);
 * undefined for anything else.
 */
export function bindErrorCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && BIND_ERRORS.has(code) ? code : undefined;
}

/**
 * A bind failure's code with what it means for the user, for a `cannot listen on …` line:
 * `EACCES (ports below 1024 need root or the CAP_NET_BIND_SERVICE capability …)`.
 */
export function explainBindError(code: string, port?: number): string {
  switch (code) {
    case 'EACCES':
      return port !== undefined && port > 0 && port < 1024
        ? `${code} (ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: run it as a service with AmbientCapabilities=CAP_NET_BIND_SERVICE, see deploy/ladder.service, or choose a port from 1024 up)`
        : `${code} (permission denied)`;
    case 'EADDRINUSE':
      return `${code} (another process listens there)`;
    case 'EADDRNOTAVAIL':
      return `${code} (not an address of this machine)`;
    case 'ENOTFOUND':
      return `${code} (the host name does not resolve)`;
    default:
      return code;
  }
}

/**
 * Whether a TCP port could be listened on now: a plain exclusive listen (no SO_REUSEPORT) on
 * host:port, closed again at once. It fails with EADDRINUSE while any socket listens there,
 * SO_REUSEPORT ones included. Rejects with the listen error (with its `code`).
 */
export async function probeListen(port: number, host: string): Promise<void> {
  const { createServer } = await import('node:net');
  const probe = createServer();
  await listen(probe, { port, host, exclusive: true, backlog: 1 });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
