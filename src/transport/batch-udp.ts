import type { AeadMethod } from '../protocol/shadowsocks/methods.js';
import { ipToBytes } from '../protocol/socks5/address.js';
import { nativeMethodIndex, nativeSockets, type NativeSockets } from './native-sockets.js';

/**
 * UDP sockets of the native addon for the server's UDP relay: recvmmsg(2) in batches of up to
 * 32 datagrams into one shared receive area, one JS call per batch, and sendto(2) straight from
 * JS. node:dgram costs a libuv callback, a fresh Buffer, a `rinfo` object and a microtask
 * checkpoint per datagram, which is most of the relay's CPU per packet beyond the syscalls.
 *
 * Each datagram is handed to `onPacket` as a view into the shared area, with its source as a
 * 20-byte address (see below) at `addrs[offset]`; both are overwritten by the next batch, so a
 * handler copies what it keeps. Linux only; BatchUdpSocket.available() says whether it can be
 * used, and the relay falls back to node:dgram otherwise.
 *
 * Address form: [family 4|6, port hi, port lo, 0, 16 address bytes (IPv4 in the first 4)].
 */
export const ADDR_SIZE = 20;

export type PacketHandler = (msg: Buffer, addrs: Uint8Array, offset: number) => void;

let shared: { data: Buffer; lens: Int32Array; addrs: Uint8Array; slot: number } | undefined;

export class BatchUdpSocket {
  readonly family: 4 | 6;
  readonly port: number;
  readonly #n: NativeSockets;
  readonly #sock: object;
  #closed = false;

  private constructor(n: NativeSockets, sock: object, family: 4 | 6) {
    this.#n = n;
    this.#sock = sock;
    this.family = family;
    this.port = n.sockPort(sock);
  }

  /** True when the addon provides batched sockets here (Linux, addon built and enabled). */
  static available(): boolean {
    return nativeSockets() !== undefined;
  }

  /**
   * Bind a socket (family 6 is dual-stack, IPv4 peers reported as IPv4) on ip:port (port 0:
   * any). Throws an Error whose `code` is EADDRINUSE, EACCES, EADDRNOTAVAIL... like dgram's.
   * With `fd`, that socket (already bound by the native udpBind, of `family`) is adopted instead,
   * with the datagrams it queued.
   */
  static bind(family: 4 | 6, ip: string, port: number, onPacket: PacketHandler, fd?: number): BatchUdpSocket {
    const n = nativeSockets();
    if (!n) throw new Error('batched UDP sockets need the native addon on Linux');
    if (!shared) {
      const [data, lens, addrs, slot] = n.sockShared();
      shared = { data, lens, addrs, slot };
    }
    const area = shared;
    const onBatch = (count: number): void => {
      for (let i = 0; i < count; i++) {
        if (self.#closed) return; // closed by a handler: the rest of the batch is dropped
        const start = i * area.slot;
        try {
          onPacket(area.data.subarray(start, start + area.lens[i]!), area.addrs, i * ADDR_SIZE);
        } catch {
          // one bad datagram must not cost the rest of the batch
        }
      }
    };
    // onBatch runs only from later loop turns, after `self` is set.
    const self = new BatchUdpSocket(n, n.sockCreate(family, ip, port, onBatch, fd), family);
    return self;
  }

  /** Send to a 20-byte address (as a batch reports sources). False when dropped (kernel said no, or closed). */
  send(data: Uint8Array, addrs: Uint8Array, offset: number): boolean {
    if (this.#closed) return false;
    return this.#n.sockSend(this.#sock, data, addrs, offset) >= 0;
  }

  /** Send to an IP literal. False when dropped. */
  sendTo(data: Uint8Array, port: number, ip: string): boolean {
    if (this.#closed || port <= 0 || port > 65535) return false;
    return this.#n.sockSendTo(this.#sock, data, port, ip) >= 0;
  }

  /**
   * SIP004 replies without JS: from now on every datagram arriving here is sealed with
   * `masterKey` (a fresh salt, its source as the SOCKS address) and sent from `listener` to the
   * 20-byte client address at addrs[offset]; onPacket is no longer called. Call again when the
   * client's address changes. relayedBytes() reports what was sent.
   */
  relayTo(
    listener: BatchUdpSocket,
    cipher: AeadMethod['cipher'],
    masterKey: Uint8Array,
    addrs: Uint8Array,
    offset: number,
  ): void {
    if (this.#closed || listener.#closed) return;
    this.#n.sockRelay(this.#sock, listener.#sock, nativeMethodIndex(cipher), masterKey, addrs, offset);
  }

  /** Sealed bytes relayed (relayTo) since the last call. */
  relayedBytes(): number {
    return this.#closed ? 0 : this.#n.sockRelayTake(this.#sock);
  }

  // ---- the listener's C forward path (SIP004) ----

  /**
   * Listener: set up the C forward path - the private-destination rule (allowPrivate) and an
   * exact SIP004 salt filter of two generations of `saltCapacity` salts, shared with saltAdd().
   */
  policy(allowPrivate: boolean, saltCapacity: number): void {
    if (!this.#closed) this.#n.sockPolicy(this.#sock, allowPrivate, saltCapacity);
  }

  /** Listener: remember a SIP004 salt; false when it was seen (a replay). */
  saltAdd(salt: Uint8Array): boolean {
    return !this.#closed && this.#n.sockSaltAdd(this.#sock, salt);
  }

  /**
   * Listener: datagrams from the client at addrs[offset] are opened with `masterKey` and, when
   * they authenticate and name an IP, salt-checked, policy-checked and sent from out4/out6
   * without JS. Others still reach onPacket unchanged. Call again when an outbound socket is added.
   */
  route(
    addrs: Uint8Array,
    offset: number,
    out4: BatchUdpSocket | undefined,
    out6: BatchUdpSocket | undefined,
    cipher: AeadMethod['cipher'],
    masterKey: Uint8Array,
  ): void {
    if (this.#closed) return;
    const o4 = out4 && !out4.#closed ? out4.#sock : null;
    const o6 = out6 && !out6.#closed ? out6.#sock : null;
    this.#n.sockRoute(this.#sock, addrs, offset, o4, o6, nativeMethodIndex(cipher), masterKey);
  }

  /** Listener: forget a route; returns the bytes it forwarded since the last take. */
  unroute(addrs: Uint8Array, offset: number): number {
    return this.#closed ? 0 : this.#n.sockUnroute(this.#sock, addrs, offset);
  }

  /** Listener: datagram bytes a route forwarded since the last take. */
  routeTake(addrs: Uint8Array, offset: number): number {
    return this.#closed ? 0 : this.#n.sockRouteTake(this.#sock, addrs, offset);
  }

  /** Listener: datagrams the C path dropped (replays, forbidden destinations, port 0). */
  droppedInC(): number {
    return this.#closed ? 0 : this.#n.sockDropped(this.#sock);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#n.sockClose(this.#sock);
  }
}

/** A Map key for the 20-byte address at addrs[offset] (no allocation beyond the string). */
export function addrKey(addrs: Uint8Array, offset: number): string {
  return Buffer.from(addrs.buffer, addrs.byteOffset + offset, ADDR_SIZE).toString('latin1');
}

/** The IP literal and port of a 20-byte address. */
export function addrToIp(addrs: Uint8Array, offset: number): { ip: string; port: number; family: 4 | 6 } {
  const port = (addrs[offset + 1]! << 8) | addrs[offset + 2]!;
  const a = offset + 4;
  if (addrs[offset] === 4) {
    return { ip: `${addrs[a]}.${addrs[a + 1]}.${addrs[a + 2]}.${addrs[a + 3]}`, port, family: 4 };
  }
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((addrs[a + i]! << 8) | addrs[a + i + 1]!).toString(16));
  // Not compressed (::); every consumer here accepts the full form.
  return { ip: parts.join(':'), port, family: 6 };
}

/** The SOCKS address bytes (ATYP, address, port) of a 20-byte address: what a reply's header carries. */
export function addrToSocks(addrs: Uint8Array, offset: number): Buffer {
  const v4 = addrs[offset] === 4;
  const out = Buffer.allocUnsafe(v4 ? 7 : 19);
  out[0] = v4 ? 1 : 4;
  out.set(addrs.subarray(offset + 4, offset + (v4 ? 8 : 20)), 1);
  out[out.length - 2] = addrs[offset + 1]!;
  out[out.length - 1] = addrs[offset + 2]!;
  return out;
}

/** The 20-byte address form of ip:port (see ADDR_SIZE), as a batch reports sources. */
export function addrOf(ip: string, port: number): Buffer | undefined {
  const b = ipToBytes(ip);
  if (!b) return undefined;
  const out = Buffer.alloc(ADDR_SIZE);
  out[0] = b.length === 4 ? 4 : 6;
  out[1] = port >> 8;
  out[2] = port & 0xff;
  out.set(b, 4);
  // A v4-mapped IPv6 literal is reported as IPv4 by batches.
  if (out[0] === 6 && out.subarray(4, 14).every((x) => x === 0) && out[14] === 0xff && out[15] === 0xff) {
    out[0] = 4;
    out.copyWithin(4, 16, 20);
    out.fill(0, 8);
  }
  return out;
}
