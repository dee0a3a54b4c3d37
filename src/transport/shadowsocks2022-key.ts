/**
 * A Shadowsocks 2022 dialer's options and the checks of its key, apart from the dialer
 * (shadowsocks2022-dialer.ts) so that a client can refuse a bad 2022 key when it starts without
 * loading the dialer, its codec and BLAKE3 (shadowsocks2022-lazy.ts).
 */
import { ProtocolError } from '../protocol/errors.js';
import { getAead2022Method, parsePsk2022, type Aead2022Method } from '../protocol/shadowsocks/methods2022.js';
import type { Clock } from '../shared/clock.js';
import type { ShadowsocksEndpoint } from './shadowsocks-dialer.js';

export interface Shadowsocks2022DialerOptions extends ShadowsocksEndpoint {
  connectTimeoutMs?: number;
  /** Time source for the request timestamp and the response check (SIP022 allows +-30 s). */
  clock?: Clock;
  /**
   * First-packet shaping hooks (protocol/shadowsocks/shaping2022.ts). `saltFactory` makes each
   * connection's request salt (e.g. makeShapedSalt2022); it replaces the fixed `prefix`, so
   * giving both is an error. `firstWritePadding` chooses the variable header's padding length
   * from the first write's unpadded wire length and the initial data's length (e.g.
   * firstWritePadding2022); default: the codec's policy.
   */
  saltFactory?: ((saltSize: number) => Uint8Array) | undefined;
  firstWritePadding?: ((unpaddedLength: number, dataLength: number) => number) | undefined;
}

/** The method, keys and fixed prefix of a 2022 dialer; throws for a key or prefix that cannot work. */
export function dialerKey2022(opts: Shadowsocks2022DialerOptions): {
  method: Aead2022Method;
  userKey: Buffer;
  identityKeys: readonly Buffer[];
  prefix: Uint8Array | undefined;
} {
  const method = getAead2022Method(opts.method);
  const psk = parsePsk2022(method, opts.password);
  if (opts.prefix && opts.prefix.length > method.saltSize) {
    throw new ProtocolError(
      'ERR_KEY',
      `prefix of ${opts.prefix.length} bytes is longer than the ${method.saltSize}-byte salt of ${method.name}`,
    );
  }
  const prefix = opts.prefix && opts.prefix.length > 0 ? Uint8Array.from(opts.prefix) : undefined;
  if (opts.saltFactory && prefix)
    throw new ProtocolError('ERR_KEY', 'give either a fixed prefix or a salt factory, not both');
  return { method, userKey: psk.userKey, identityKeys: psk.identityKeys, prefix };
}
