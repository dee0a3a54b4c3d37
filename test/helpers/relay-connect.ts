/**
 * relayConnect (native/relay_pair.cc) as the addon tests call it: connection `id` of a native
 * accept relayed to 127.0.0.1-style `ip`:`port` with codecs of random keys (aes-256-gcm: what
 * the relay carries is not read), `x` written to the destination first, 2 s budgets; and
 * `dial`, a connected descriptor only the addon made (tcpConnect), for relayPair's owned sockets.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type { NativeRelay } from '../../src/transport/native-sockets.js';
import { serve, type TestServer } from './net.js';

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

/**
 * relayPair of two descriptors the addon dials to 127.0.0.1:`from` and :`to` (both owned by the
 * relay, no codecs, 10 s idle): bytes from the server at `from` go to the one at `to` and back.
 */
export async function relayPorts(fns: NativeRelay, from: number, to: number): Promise<object> {
  return fns.relayPair(
    await dial(fns, from),
    await dial(fns, to),
    null,
    null,
    [undefined, undefined, undefined],
    10_000,
    () => undefined,
    3,
  );
}

/**
 * A server that writes 256 KiB blocks to each connection as fast as it takes them, until stop()
 * (then ends them); and one that reads and drops everything, closing its connections at stop().
 */
export async function endlessSourceAndSink(): Promise<{
  src: TestServer;
  sink: TestServer;
  stop(): Promise<void>;
}> {
  const block = randomBytes(256 * 1024);
  let pumping = true;
  const src = await serve((s) => {
    const pump = (): void => {
      while (pumping && s.write(block));
      if (pumping) s.once('drain', pump);
      else s.end();
    };
    pump();
  });
  const taken: net.Socket[] = [];
  const sink = await serve((s) => {
    taken.push(s);
    s.resume();
  });
  return {
    src,
    sink,
    async stop() {
      pumping = false;
      for (const s of taken) s.destroy();
      await Promise.all([src.close(), sink.close()]);
    },
  };
}
