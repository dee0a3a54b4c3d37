/**
 * The server's use of the addon's native TCP relay (native/relay_pair.cc): once a raw TCP
 * connection has a key, a checked salt, a parsed header and a connected destination (all decided
 * in JS, by connection.ts), its bytes can move in C++ on this thread's loop, with no net.Socket
 * events, streams or timers per read. Node's sockets let go of their descriptors (the relay holds
 * duplicates) and the connection reports once, when the relay ends.
 *
 * Opt-in while it is new: LADDER_NATIVE_RELAY=1, read once per server (each data-plane worker
 * makes one at start). Only SIP004 (2017) keys, only sockets from the TCP listener, only on the
 * system clock (the relay's idle timer is libuv's); everything else keeps relay.ts.
 */
import { nativeRelay, NATIVE_RELAY_REASON, type NativeRelay } from '../transport/native-sockets.js';
import type { ConnectionStatus } from './events.js';

export type { NativeRelay } from '../transport/native-sockets.js';
// Shared with the client: they moved to the transport zone.
export { detach, nativeRelayFromEnv, socketFd, takeBuffered } from '../transport/native-handoff.js';

/** The addon's relay when `wanted` and available here (Linux, addon loaded and enabled). */
export function serverNativeRelay(wanted: boolean): NativeRelay | undefined {
  return wanted ? nativeRelay() : undefined;
}

/** The status a native relay's end gives the connection (undefined: closed normally). */
export function nativeCloseStatus(reason: number): ConnectionStatus | undefined {
  switch (NATIVE_RELAY_REASON[reason]) {
    case 'error':
      return 'ERR_RELAY';
    case 'cipher':
      return 'ERR_CIPHER';
    case 'payload-size':
      return 'ERR_PAYLOAD_SIZE';
    default:
      return undefined; // done, idle; aborted has its status already
  }
}
