import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import { evpBytesToKey } from '../protocol/shadowsocks/kdf.js';
import { getAeadMethod, type AeadMethod } from '../protocol/shadowsocks/methods.js';
import {
  getAead2022Method,
  isAead2022MethodName,
  parsePsk2022,
  type Aead2022Method,
} from '../protocol/shadowsocks/methods2022.js';
import { decodeUdp2017, encodeUdp2017 } from '../protocol/shadowsocks/udp.js';
import { SubkeyCache, Udp2022ClientSession } from '../protocol/shadowsocks/udp2022.js';
import type { SocksAddress } from '../protocol/socks5/address.js';
import { systemClock, type Clock } from '../shared/clock.js';
import type { ShadowsocksEndpoint } from './shadowsocks-dialer.js';
import { addrOf, ADDR_SIZE, BatchUdpSocket } from './batch-udp.js';
import { FastUdpSender } from './fast-udp.js';

export interface UdpTunnelOptions extends Pick<ShadowsocksEndpoint, 'host' | 'port' | 'method' | 'password'> {
  clock?: Clock;
}

/** Sealing and opening of one association's datagrams, per edition. */
export interface UdpCodec {
  seal(address: SocksAddress, payload: Uint8Array, nowMs: number): Buffer;
  open(packet: Buffer, nowMs: number): { address: SocksAddress; payload: Buffer };
}

/**
 * Open one reply with the association's codec: undefined when it does not authenticate or is a
 * replay (the caller counts the drop; UDP replies that fail are never answered).
 */
export function openOrUndefined(
  codec: UdpCodec,
  packet: Buffer,
  nowMs: number,
): { address: SocksAddress; payload: Buffer } | undefined {
  try {
    return codec.open(packet, nowMs);
  } catch {
    return undefined;
  }
}

/** Key material parsed once per key; a codec per association. */
export class UdpTunnelKey {
  readonly edition: 2017 | 2022;
  readonly #m2017: AeadMethod | undefined;
  readonly #masterKey: Buffer | undefined;
  readonly #m2022: Aead2022Method | undefined;
  readonly #userKey: Buffer | undefined;
  readonly #identityKeys: readonly Buffer[] = [];
  readonly #cache = new SubkeyCache(256);

  constructor(method: string, password: string) {
    if (isAead2022MethodName(method)) {
      this.edition = 2022;
      this.#m2022 = getAead2022Method(method);
      const psk = parsePsk2022(this.#m2022, password);
      this.#userKey = psk.userKey;
      this.#identityKeys = psk.identityKeys;
    } else {
      this.edition = 2017;
      this.#m2017 = getAeadMethod(method);
      this.#masterKey = evpBytesToKey(password, this.#m2017.keySize);
    }
  }

  codec(): UdpCodec {
    if (this.edition === 2017) {
      const m = this.#m2017!;
      const k = this.#masterKey!;
      return {
        seal: (address, payload) => encodeUdp2017(m, k, address, payload),
        open: (packet) => decodeUdp2017(m, k, packet),
      };
    }
    // One client session per association (SIP022 §3.2: per local source), packet IDs from 0.
    const session = new Udp2022ClientSession(this.#m2022!, this.#userKey!, {
      identityKeys: this.#identityKeys,
      cache: this.#cache,
    });
    return {
      seal: (address, payload, nowMs) => session.seal(address, payload, nowMs),
      open: (packet, nowMs) => session.open(packet, nowMs),
    };
  }
}

/**
 * One UDP association through a Shadowsocks server: a local UDP socket that talks only to the
 * server's UDP port, sealing datagrams with the key's edition (SIP004 per-packet salt, or a
 * SIP022 client session with packet IDs and a replay window per server session). Replies that
 * do not authenticate are dropped.
 */
export class UdpTunnel {
  readonly #socket: dgram.Socket | undefined;
  readonly #sender: FastUdpSender | undefined;
  readonly #batch: BatchUdpSocket | undefined;
  readonly #codec: UdpCodec;
  readonly #clock: Clock;
  readonly #serverIp: string;
  readonly #serverPort: number;
  #closed = false;
  /** Replies dropped (do not authenticate, replayed, or not from the server). */
  dropped = 0;
  onMessage: ((from: SocksAddress, payload: Buffer) => void) | undefined;

  private constructor(
    socket: dgram.Socket | BatchUdpSocket,
    codec: UdpCodec,
    serverIp: string,
    serverPort: number,
    clock: Clock,
  ) {
    this.#codec = codec;
    this.#serverIp = serverIp;
    this.#serverPort = serverPort;
    this.#clock = clock;
    if (socket instanceof BatchUdpSocket) {
      this.#batch = socket;
      return;
    }
    this.#socket = socket;
    this.#sender = new FastUdpSender(socket, net.isIP(serverIp) === 6 ? 6 : 4);
    socket.on('message', (msg, rinfo) => {
      if (rinfo.port !== serverPort || !sameIp(rinfo.address, serverIp)) {
        this.dropped++;
        return;
      }
      this.#onPacket(msg);
    });
    socket.on('error', () => undefined);
  }

  #onPacket(msg: Buffer): void {
    const r = openOrUndefined(this.#codec, msg, this.#clock.now());
    if (r) this.onMessage?.(r.address, r.payload);
    else this.dropped++;
  }

  /** True when this association runs on the addon's batched socket rather than node:dgram. */
  get batched(): boolean {
    return this.#batch !== undefined;
  }

  /** Resolve the server and open a local socket for one association. */
  static async open(
    opts: UdpTunnelOptions,
    key = new UdpTunnelKey(opts.method, opts.password),
  ): Promise<UdpTunnel> {
    let ip = opts.host;
    if (net.isIP(ip) === 0) ip = (await dns.promises.lookup(opts.host)).address;
    const family = net.isIP(ip) === 6 ? 6 : 4;
    const clock = opts.clock ?? systemClock;
    const server = addrOf(ip, opts.port);
    if (server && BatchUdpSocket.available()) {
      let tunnel: UdpTunnel | undefined;
      let batch: BatchUdpSocket | undefined;
      try {
        batch = BatchUdpSocket.bind(family, family === 6 ? '::' : '0.0.0.0', 0, (msg, addrs, off) => {
          if (!tunnel) return;
          // Only the server's address and port: compare the 20 address bytes.
          if (!sameAddr(server, addrs, off)) {
            tunnel.dropped++;
            return;
          }
          tunnel.#onPacket(msg);
        });
      } catch {
        batch = undefined; // fall back to node:dgram below
      }
      if (batch) {
        tunnel = new UdpTunnel(batch, key.codec(), ip, opts.port, clock);
        return tunnel;
      }
    }
    const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new UdpTunnel(socket, key.codec(), ip, opts.port, clock);
  }

  send(to: SocksAddress, payload: Uint8Array): void {
    if (this.#closed) return;
    const packet = this.#codec.seal(to, payload, this.#clock.now());
    if (this.#batch) this.#batch.sendTo(packet, this.#serverPort, this.#serverIp);
    else this.#sender!.send(packet, this.#serverPort, this.#serverIp);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#batch?.close();
    this.#socket?.close();
  }
}

/** Same family, port and address bytes (byte 3 is padding). */
function sameAddr(a: Uint8Array, addrs: Uint8Array, off: number): boolean {
  for (let i = 0; i < ADDR_SIZE; i++) if (i !== 3 && a[i] !== addrs[off + i]) return false;
  return true;
}

function sameIp(a: string, b: string): boolean {
  if (a === b) return true;
  const strip = (x: string): string => (x.startsWith('::ffff:') ? x.slice(7) : x);
  return strip(a) === strip(b);
}
