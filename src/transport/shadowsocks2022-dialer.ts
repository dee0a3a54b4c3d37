import { ProtocolError } from '../protocol/errors.js';
import { Aead2022RequestEncoder, Aead2022ResponseDecoder } from '../protocol/shadowsocks/aead2022.js';
import { getAead2022Method, parsePsk2022, type Aead2022Method } from '../protocol/shadowsocks/methods2022.js';
import { encodeAddress, type SocksAddress } from '../protocol/socks5/address.js';
import { systemClock, type Clock } from '../shared/clock.js';
import {
  awaitFirstData,
  connectTcp,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type DialedConnection,
  type Dialer,
  type FirstData,
  type NextHop,
} from './dialer.js';
import { makeSalt, type ShadowsocksEndpoint } from './shadowsocks-dialer.js';

export interface Shadowsocks2022DialerOptions extends ShadowsocksEndpoint {
  connectTimeoutMs?: number;
  /** Time source for the request timestamp and the response check (SIP022 allows +-30 s). */
  clock?: Clock;
}

/**
 * Shadowsocks 2022 (SIP022, with SIP023 identity headers for "iPSK:uPSK" passwords) tunnel
 * dialer. Like the SIP004 dialer it connects, waits for the application's first bytes, and sends
 * salt, identity headers, the fixed header and the variable header (target address, padding,
 * first bytes) in one write. Without first bytes the codec pads the header with 1..900 random
 * bytes (SIP022 §3.1.4). The response decoder checks the server's timestamp and that the
 * response echoes our request salt.
 */
export class Shadowsocks2022Dialer implements Dialer {
  readonly method: Aead2022Method;
  readonly #userKey: Buffer;
  readonly #identityKeys: readonly Buffer[];
  readonly #host: string;
  readonly #port: number;
  readonly #prefix: Uint8Array | undefined;
  readonly #connectTimeoutMs: number;
  readonly #nextHop: NextHop;
  readonly #clock: Clock;

  constructor(opts: Shadowsocks2022DialerOptions) {
    this.method = getAead2022Method(opts.method);
    const psk = parsePsk2022(this.method, opts.password);
    this.#userKey = psk.userKey;
    this.#identityKeys = psk.identityKeys;
    if (opts.prefix && opts.prefix.length > this.method.saltSize) {
      throw new ProtocolError(
        'ERR_KEY',
        `prefix of ${opts.prefix.length} bytes is longer than the ${this.method.saltSize}-byte salt of ${this.method.name}`,
      );
    }
    this.#prefix = opts.prefix && opts.prefix.length > 0 ? Uint8Array.from(opts.prefix) : undefined;
    this.#host = opts.host;
    this.#port = opts.port;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#nextHop =
      opts.nextHop ??
      ((signal) => connectTcp(this.#host, this.#port, { timeoutMs: this.#connectTimeoutMs, signal }));
    this.#clock = opts.clock ?? systemClock;
  }

  async dial(dest: SocksAddress, firstData?: FirstData, signal?: AbortSignal): Promise<DialedConnection> {
    // Validate first: a bad address fails before touching the network.
    encodeAddress(dest);
    const encoder = new Aead2022RequestEncoder(this.method, this.#userKey, {
      salt: makeSalt(this.method.saltSize, this.#prefix),
      identityKeys: this.#identityKeys,
    });
    const socket = await this.#nextHop(signal);
    let first: Buffer;
    try {
      const data = await awaitFirstData(socket, firstData, signal);
      first = encoder.encodeHeader(dest, data ?? new Uint8Array(0), this.#clock.now());
    } catch (err) {
      socket.destroy();
      throw err;
    }
    const decoder = new Aead2022ResponseDecoder(this.method, this.#userKey, encoder.salt);
    socket.write(first);
    const clock = this.#clock;
    return {
      socket,
      encode: (chunk) => encoder.encode(chunk),
      decode: (chunk) => decoder.pushInPlace(chunk, clock.now()), // socket reads are ours
    };
  }
}
