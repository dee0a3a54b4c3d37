/**
 * A Shadowsocks 2022 dialer loaded at its first dial: the client builds its tunnel dialers at
 * start, and a client whose key is SIP004 (or whose 2022 endpoint is never picked) then never
 * loads the 2022 dialer, its codec (aead2022.ts) or BLAKE3 (kdf2022.ts, @noble/hashes), about
 * 1.5 MiB of idle RSS. The key is checked here at once, as the dialer's constructor checks it,
 * so a bad key is still refused when the client starts.
 */
import type { DialedConnection, DialHints, Dialer, FirstData } from './dialer.js';
import type { SocksAddress } from '../protocol/socks5/address.js';
import { dialerKey2022, type Shadowsocks2022DialerOptions } from './shadowsocks2022-key.js';

export class LazyShadowsocks2022Dialer implements Dialer {
  readonly #opts: Shadowsocks2022DialerOptions;
  #dialer: Dialer | Promise<Dialer> | undefined;

  constructor(opts: Shadowsocks2022DialerOptions) {
    dialerKey2022(opts); // throws what the dialer's constructor would
    this.#opts = opts;
  }

  async dial(
    dest: SocksAddress,
    firstData?: FirstData,
    signal?: AbortSignal,
    hints?: DialHints,
  ): Promise<DialedConnection> {
    this.#dialer ??= import('./shadowsocks2022-dialer.js').then(
      ({ Shadowsocks2022Dialer }) => (this.#dialer = new Shadowsocks2022Dialer(this.#opts)),
    );
    const d = this.#dialer instanceof Promise ? await this.#dialer : this.#dialer;
    return d.dial(dest, firstData, signal, hints);
  }
}
