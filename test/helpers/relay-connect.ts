/**
 * relayConnect (native/relay_pair.cc) as the addon tests call it: connection `id` of a native
 * accept relayed to 127.0.0.1-style `ip`:`port` with codecs of random keys (aes-256-gcm: what
 * the relay carries is not read), `x` written to the destination first, 2 s budgets; and
 * `dial`, a connected descriptor only the addon made (tcpConnect), for relayPair's owned sockets.
 */
import { randomBytes } from 'node:crypto';
import type { NativeRelay } from '../../src/transport/native-sockets.js';

export function relayConnectRandom(
  fns: NativeRelay,
  id: number,
  ip: string,
  port: number,
  onClose: (reason: number) => void,
  atOnce: boolean,
): object {
  const addon = fns as unknown as { create(m: number, k: Uint8Array, enc: boolean): object };
  return fns.relayConnect!(
    id,
    ip,
    port,
    2000,
    addon.create(1, randomBytes(32), false),
    addon.create(1, randomBytes(32), true),
    [undefined, undefined, Buffer.from('x')],
    2000,
    onClose,
    atOnce,
  );
}

/** A connected descriptor to 127.0.0.1:`port` only the addon made (tcpConnect): the caller's alone. */
export const dial = (fns: NativeRelay, port: number): Promise<number> =>
  new Promise((resolve, reject) => {
    fns.tcpConnect('127.0.0.1', port, (fd, errno) =>
      fd >= 0 ? resolve(fd) : reject(new Error(`errno ${errno}`)),
    );
  });
