import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProtocolError } from '../protocol/errors.js';
import { AeadDecoder, AeadEncoder, join2 } from '../protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../protocol/shadowsocks/kdf.js';
import { getAeadMethod, type AeadMethod } from '../protocol/shadowsocks/methods.js';
import { NATIVE_METHOD } from '../protocol/shadowsocks/native.js';
import { poolRandomBytes } from '../protocol/shadowsocks/random-pool.js';
import { encodeFirstWrite } from '../protocol/shadowsocks/shaping.js';
import { encodeAddress, type SocksAddress } from '../protocol/socks5/address.js';
import {
  awaitFirstData,
  connectTcp,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type DialedConnection,
  type DialHints,
  type Dialer,
  type FirstData,
  type NativeConnect,
  type NextHop,
} from './dialer.js';
import { connectNative, NativeServerSocket, type NativeTunnelPlan } from './native-dial.js';

export interface ShadowsocksEndpoint {
  /** Server host (name or IP). The server's own name is resolved locally; targets never are. */
  host: string;
  port: number;
  /** A SIP004 method name; stream ciphers and unknown names are refused. */
  method: string;
  password: string;
  /**
   * Outline's salt prefix: these bytes replace the first bytes of the random salt, so they are
   * the very first bytes on the wire (e.g. to look like the start of another protocol). Every
   * prefix byte is a byte of salt entropy lost; at most the whole salt.
   */
  prefix?: Uint8Array | undefined;
  /**
   * Open the stream to the server some other way than TCP to host:port (e.g. a WebSocket or a
   * Mux.Cool session on a shared one, transport/ws-dialer.ts).
   */
  nextHop?: NextHop | undefined;
}

/**
 * Encodes the first write (salt + header + data) with a fresh encoder. `joined`, when it has
 * one: the same bytes from header || data in one buffer (the header its first `headerLength`
 * bytes), for a caller that has them so (client/lean-tunnel.ts: the SOCKS5 front's request).
 */
export type FirstWriteEncoder = ((encoder: AeadEncoder, header: Uint8Array, data: Uint8Array) => Buffer) & {
  joined?: (encoder: AeadEncoder, joined: Uint8Array, headerLength: number) => Buffer;
};

export interface ShadowsocksDialerOptions extends ShadowsocksEndpoint {
  connectTimeoutMs?: number;
  /**
   * First-packet shaping hooks. `saltFactory` makes each connection's salt (e.g. a fresh
   * per-connection prefix, protocol/shadowsocks/shaping.ts makeShapedSalt); it replaces the
   * fixed `prefix`, so giving both is an error. `firstWrite` chooses how the first write is
   * chunked (e.g. shaping.ts encodeFirstWrite); default: header and data in one chunk.
   */
  saltFactory?: ((saltSize: number) => Uint8Array) | undefined;
  /**
   * `saltFactory` returns a new Buffer per call that nothing else holds (makeShapedSalt does):
   * each connection's encoder keeps it without a copy.
   */
  freshSalts?: boolean | undefined;
  firstWrite?: FirstWriteEncoder | undefined;
}

function defaultFirstWrite(encoder: AeadEncoder, header: Uint8Array, data: Uint8Array): Buffer {
  return encoder.encode(data.length > 0 ? join2(header, data) : header);
}
defaultFirstWrite.joined = (encoder: AeadEncoder, joined: Uint8Array): Buffer => encoder.encode(joined);

/**
 * A salt of `size` bytes that starts with `prefix` and is random after it (CSPRNG bytes from the
 * shared pool, random-pool.ts, as the server's salts: no OpenSSL call per connection).
 */
export function makeSalt(size: number, prefix?: Uint8Array): Buffer {
  const salt = poolRandomBytes(size);
  if (prefix && prefix.length > 0) {
    if (prefix.length > size) {
      throw new ProtocolError(
        'ERR_KEY',
        `prefix of ${prefix.length} bytes is longer than the ${size}-byte salt`,
      );
    }
    salt.set(prefix, 0);
  }
  return salt;
}

/** A connection's salt: from the shaping `factory` (checked for size) or `makeSalt` with the fixed prefix. */
export function connectionSalt(
  size: number,
  prefix: Uint8Array | undefined,
  factory: ((saltSize: number) => Uint8Array) | undefined,
): Uint8Array {
  if (!factory) return makeSalt(size, prefix);
  const salt = factory(size);
  if (salt.length !== size) {
    throw new ProtocolError('ERR_KEY', `salt factory returned ${salt.length} bytes, expected ${size}`);
  }
  return salt;
}

interface Handshake {
  encoder: AeadEncoder;
  decoder: AeadDecoder;
  first: Buffer;
}

/**
 * Shadowsocks AEAD (SIP004) tunnel dialer. Connects to the server, then writes
 *   salt || seal(len) || seal(target address || first application bytes)
 * in ONE socket write, so the first packet's length follows the request rather than being a
 * constant that marks the protocol. Domains go in the address header unresolved.
 */
export class ShadowsocksDialer implements Dialer {
  readonly method: AeadMethod;
  readonly #masterKey: Buffer;
  readonly #host: string;
  readonly #port: number;
  readonly #prefix: Uint8Array | undefined;
  readonly #connectTimeoutMs: number;
  readonly #nextHop: NextHop;
  readonly #saltFactory: ((saltSize: number) => Uint8Array) | undefined;
  /** #salt() hands out a Buffer nothing else holds (makeSalt's, or a fresh factory's). */
  readonly #freshSalts: boolean;
  readonly #firstWrite: FirstWriteEncoder;
  /** Plain TCP to host:port (no nextHop): a connection the native relay can carry. */
  readonly #rawTcp: boolean;

  constructor(opts: ShadowsocksDialerOptions) {
    this.method = getAeadMethod(opts.method);
    if (opts.password.length === 0) throw new ProtocolError('ERR_KEY', 'password is empty');
    if (opts.prefix && opts.prefix.length > this.method.saltSize) {
      throw new ProtocolError(
        'ERR_KEY',
        `prefix of ${opts.prefix.length} bytes is longer than the ${this.method.saltSize}-byte salt of ${this.method.name}`,
      );
    }
    this.#masterKey = evpBytesToKey(opts.password, this.method.keySize);
    this.#host = opts.host;
    this.#port = opts.port;
    this.#prefix = opts.prefix && opts.prefix.length > 0 ? Uint8Array.from(opts.prefix) : undefined;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#rawTcp = opts.nextHop === undefined;
    this.#nextHop =
      opts.nextHop ??
      ((signal) => connectTcp(this.#host, this.#port, { timeoutMs: this.#connectTimeoutMs, signal }));
    if (opts.saltFactory && this.#prefix)
      throw new ProtocolError('ERR_KEY', 'give either a fixed prefix or a salt factory, not both');
    this.#saltFactory = opts.saltFactory;
    this.#freshSalts = opts.saltFactory === undefined || opts.freshSalts === true;
    this.#firstWrite = opts.firstWrite ?? defaultFirstWrite;
  }

  #salt(): Uint8Array {
    return connectionSalt(this.method.saltSize, this.#prefix, this.#saltFactory);
  }

  async dial(
    dest: SocksAddress,
    firstData?: FirstData,
    signal?: AbortSignal,
    hints?: DialHints,
  ): Promise<DialedConnection> {
    // Encode the header before connecting: a bad address fails without touching the network.
    const header = hints?.header ?? encodeAddress(dest);
    if (hints?.native && this.#rawTcp) return this.#dialNative(hints.native, header, firstData, signal);
    const socket = await this.#nextHop(signal);
    let data: Uint8Array | undefined;
    try {
      data = await awaitFirstData(socket, firstData, signal);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    let h: Handshake;
    try {
      h = this.#handshake(header, data);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    socket.write(h.first);
    return this.#connection(socket, h, this.#rawTcp);
  }

  /** A fresh encoder and its first write (salt, header, data), and the decoder for the answer. */
  #handshake(header: Uint8Array, data: Uint8Array | undefined): Handshake {
    const encoder = new AeadEncoder(this.method, this.#masterKey, this.#salt(), this.#freshSalts);
    const first = this.#firstWrite(encoder, header, data ?? new Uint8Array(0));
    return { encoder, decoder: new AeadDecoder(this.method, this.#masterKey), first };
  }

  #connection(socket: Duplex, h: Handshake, native: boolean): DialedConnection {
    const { encoder, decoder } = h;
    return {
      socket,
      encode: (chunk) => encoder.encode(chunk),
      decode: (chunk) => decoder.pushInPlace(chunk), // socket reads are ours: opened in place
      // The salt went out with the first write, so the encoder's codec continues as is.
      ...(native
        ? {
            native: {
              encoder: () => encoder.nativeCodec,
              decoder: () => decoder.nativeCodec,
              masterKey: () => this.#masterKey,
            },
          }
        : {}),
    };
  }

  /**
   * The tunnel to an IP-literal server over plain TCP, for a caller that connects and starts the
   * relay in the addon with no JS call (client/native-socks.ts): the same first write and codecs
   * as #dialNative, made before the connect instead of after it. Undefined (dial() then) for a
   * host name (it needs DNS), a transport (WebSocket) or an address that does not encode.
   */
  planNative(dest: SocksAddress, data: Uint8Array, hints: DialHints): NativeTunnelPlan | undefined {
    const native = hints.native;
    const target = native ? this.leanTarget() : undefined;
    if (!native || !target) return undefined;
    let header: Uint8Array;
    try {
      header = hints.header ?? encodeAddress(dest);
    } catch {
      return undefined; // dial() fails it the usual way
    }
    const h = this.#handshake(header, data);
    const socket = new NativeServerSocket(-1, h.first, native).asDuplex();
    return {
      ip: target.ip,
      port: target.port,
      timeoutMs: target.timeoutMs,
      conn: this.#connection(socket, h, true),
      connected: () => {},
      failed: (err) => Promise.reject(err),
    };
  }

  /**
   * planNative's fixed parts for a caller that keeps no connection objects (client/lean-tunnel.ts):
   * the server (an IP literal over plain TCP), the connect's budget and the master key; undefined
   * where planNative never plans (a host name, a transport).
   */
  leanTarget(): { ip: string; port: number; timeoutMs: number; masterKey: Buffer } | undefined {
    if (!this.#rawTcp) return undefined;
    const ip = this.#host.replace(/^\[|\]$/g, '');
    if (isIP(ip) === 0) return undefined;
    return { ip, port: this.#port, timeoutMs: this.#connectTimeoutMs, masterKey: this.#masterKey };
  }

  /**
   * What the addon needs to seal a bare tunnel's first write itself (client/bare-tunnel.ts): the
   * method's number and this dialer's salts, `n` at a time in one Buffer, drawn as every first
   * write's are (shaping's prefix included); undefined where the first write is not one sealed
   * chunk of header || data for the lengths the addon takes (one chunk, outside the prober's
   * length trigger): a first-write encoder other than the default and shaping's.
   */
  bareParts(): { method: number; salts(n: number): Buffer } | undefined {
    const write = this.#firstWrite;
    if (write !== defaultFirstWrite && write !== encodeFirstWrite) return undefined;
    const size = this.method.saltSize;
    return {
      method: NATIVE_METHOD[this.method.cipher],
      salts: (n) => {
        const out = Buffer.allocUnsafe(n * size);
        for (let i = 0; i < n; i++) out.set(this.#salt(), i * size);
        return out;
      },
    };
  }

  /**
   * planNative's encoder (its codec) and first write (salt, header, data), with no decoder or
   * socket; `request` = header || data, the header its first `headerLength` bytes.
   */
  leanFirst(request: Uint8Array, headerLength: number): { codec: object | undefined; first: Buffer } {
    const encoder = new AeadEncoder(this.method, this.#masterKey, this.#salt(), this.#freshSalts);
    const write = this.#firstWrite;
    const first = write.joined
      ? write.joined(encoder, request, headerLength)
      : write(encoder, request.subarray(0, headerLength), request.subarray(headerLength));
    return { codec: encoder.nativeCodec, first };
  }

  /**
   * dial() for a caller that relays in C++ from the first byte (DialHints.native): the addon
   * connects, and the first write (the same bytes, shaping included) is left on the returned
   * NativeServerSocket for the relay to send. `decode` opens the server's salt and first
   * chunks in JS (the relay's onFirst), then the relay takes `native.decoder()`.
   */
  async #dialNative(
    fns: NativeConnect,
    header: Uint8Array,
    firstData: FirstData,
    signal?: AbortSignal,
  ): Promise<DialedConnection> {
    const data = await firstData;
    const fd = await connectNative(fns, this.#host, this.#port, this.#connectTimeoutMs, signal);
    let h: Handshake;
    try {
      h = this.#handshake(header, data);
    } catch (err) {
      fns.fdClose(fd);
      throw err;
    }
    return this.#connection(new NativeServerSocket(fd, h.first, fns).asDuplex(), h, true);
  }
}
