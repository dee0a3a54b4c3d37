import { ProtocolError } from '../protocol/errors.js';
import { Aead2022RequestEncoder, Aead2022ResponseDecoder } from '../protocol/shadowsocks/aead2022.js';
import { getAead2022Method, parsePsk2022, type Aead2022Method } from '../protocol/shadowsocks/methods2022.js';
import { request2022Length } from '../protocol/shadowsocks/shaping2022.js';
import { encodeAddress, encodedAddressLength, type SocksAddress } from '../protocol/socks5/address.js';
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
import { connectionSalt, type ShadowsocksEndpoint } from './shadowsocks-dialer.js';

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
  readonly #saltFactory: ((saltSize: number) => Uint8Array) | undefined;
  readonly #padding: ((unpaddedLength: number, dataLength: number) => number) | undefined;

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
    if (opts.saltFactory && this.#prefix)
      throw new ProtocolError('ERR_KEY', 'give either a fixed prefix or a salt factory, not both');
    this.#saltFactory = opts.saltFactory;
    this.#padding = opts.firstWritePadding;
  }

  #salt(): Uint8Array {
    return connectionSalt(this.method.saltSize, this.#prefix, this.#saltFactory);
  }

  #paddingFor(dest: SocksAddress, data: Uint8Array): Buffer | undefined {
    if (!this.#padding) return undefined;
    const unpadded = request2022Length(
      this.method.saltSize,
      this.#identityKeys.length,
      encodedAddressLength(dest),
      0,
      data.length,
    );
    return Buffer.alloc(this.#padding(unpadded, data.length));
  }

  async dial(dest: SocksAddress, firstData?: FirstData, signal?: AbortSignal): Promise<DialedConnection> {
    // Validate first: a bad address fails before touching the network.
    encodeAddress(dest);
    const encoder = new Aead2022RequestEncoder(this.method, this.#userKey, {
      salt: this.#salt(),
      identityKeys: this.#identityKeys,
    });
    const socket = await this.#nextHop(signal);
    let first: Buffer;
    try {
      const data = (await awaitFirstData(socket, firstData, signal)) ?? new Uint8Array(0);
      first = encoder.encodeHeader(dest, data, this.#clock.now(), this.#paddingFor(dest, data));
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
