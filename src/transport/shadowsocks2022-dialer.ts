import { Aead2022RequestEncoder, Aead2022ResponseDecoder } from '../protocol/shadowsocks/aead2022.js';
import type { Aead2022Method } from '../protocol/shadowsocks/methods2022.js';
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
import { connectionSalt } from './shadowsocks-dialer.js';
import { dialerKey2022, type Shadowsocks2022DialerOptions } from './shadowsocks2022-key.js';

export type { Shadowsocks2022DialerOptions };

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
    const key = dialerKey2022(opts);
    this.method = key.method;
    this.#userKey = key.userKey;
    this.#identityKeys = key.identityKeys;
    this.#prefix = key.prefix;
    this.#host = opts.host;
    this.#port = opts.port;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#nextHop =
      opts.nextHop ??
      ((signal) => connectTcp(this.#host, this.#port, { timeoutMs: this.#connectTimeoutMs, signal }));
    this.#clock = opts.clock ?? systemClock;
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
