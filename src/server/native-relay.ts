/**
 * The server's use of the addon's native TCP relay (native/relay_pair.cc): once a raw TCP
 * connection has a key, a checked salt, a parsed header and a connected destination (all decided
 * in JS, by connection.ts), its bytes can move in C++ on this thread's loop, with no net.Socket
 * events, streams or timers per read. Node's sockets let go of their descriptors (the relay holds
 * duplicates) and the connection reports once, when the relay ends.
 *
 * On by default; LADDER_NATIVE_RELAY=0 turns it off. Read once per server (each data-plane
 * worker makes one at start). Only SIP004 (2017) keys, only sockets from the TCP listener, only
 * on the system clock (the relay's idle timer is libuv's); everything else keeps relay.ts.
 */
import { nativeRelay, NATIVE_RELAY_REASON, type NativeRelay } from '../transport/native-sockets.js';
import { getSystemErrorName } from 'node:util';
import type { Clock } from '../shared/clock.js';
import { DialError, type ConnectOnce } from './destination.js';
import type { ConnectionStatus } from './events.js';

export type { NativeRelay } from '../transport/native-sockets.js';

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

/** A libuv errno (negative) as its name (ECONNREFUSED...); EIO for anything unnamed. */
function errnoName(errno: unknown): string {
  if (typeof errno !== 'number' || errno >= 0) return 'EIO';
  try {
    return getSystemErrorName(errno);
  } catch {
    return 'EIO';
  }
}

/**
 * dialWith's connect for the native relay: a non-blocking connect in the addon that yields the
 * bare descriptor (never a net.Socket), with connectOnce's time budget and DialErrors.
 */
export function nativeConnect(fns: NativeRelay): ConnectOnce<number> {
  return (ip: string, port: number, deadline: number, clock: Clock) =>
    new Promise<number>((resolve, reject) => {
      let handle: object | undefined;
      const timer = clock.setTimeout(
        () => {
          if (handle) fns.tcpConnectCancel(handle);
          reject(new DialError('ERR_CONNECT', 'connect timed out', 'ETIMEDOUT'));
        },
        Math.max(1, deadline - clock.now()),
      );
      timer.unref?.();
      const failed = (errno: unknown): void => {
        clock.clearTimeout(timer);
        const code = errnoName(errno);
        reject(new DialError('ERR_CONNECT', `connect failed: ${code}`, code));
      };
      try {
        handle = fns.tcpConnect(ip, port, (fd, errno) => {
          if (fd < 0) return failed(errno);
          clock.clearTimeout(timer);
          resolve(fd);
        });
      } catch (err) {
        failed((err as { errno?: unknown }).errno);
      }
    });
}
