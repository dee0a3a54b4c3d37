/**
 * Handing an established TCP connection from Node's sockets to the addon's native relay
 * (native/relay_pair.cc, transport/native-sockets.ts nativeRelay): the descriptor of a socket,
 * what its stream read before the hand-off, and letting Node go of it. Shared by the server
 * (server/native-relay.ts, connection.ts) and the client (client/native-tunnel.ts).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { envSwitch } from '../shared/env.js';

/** The native relay (server and client) is on unless LADDER_NATIVE_RELAY=0. */
export function nativeRelayFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_RELAY', env);
}

/** The descriptor of a plain TCP net.Socket (its libuv handle's), or undefined. */
export function socketFd(s: Duplex): number | undefined {
  const fd = (s as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * What a socket's stream read before the hand-off (held in its buffer because it was paused or
 * never read), as one Buffer, or undefined.
 */
export function takeBuffered(s: Socket): Buffer | undefined {
  if (s.readableLength === 0) return undefined;
  const b = s.read() as Buffer | null;
  return b && b.length > 0 ? b : undefined;
}

/** Node lets go of the socket: no listener of ours fires again, and its descriptor closes. */
export function detach(s: Socket): void {
  s.removeAllListeners();
  s.on('error', () => {});
  s.destroy();
}
