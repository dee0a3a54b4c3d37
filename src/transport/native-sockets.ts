/**
 * The socket functions of the native addon (native/udp_sockets.cc, udp_fastpath.cc), which src/protocol loads
 * (protocol/shadowsocks/native.ts: one loader, its ABI check and the setNativeEnabled switch for
 * both halves) but does not use: a datagram sendto(2) for fast-udp.ts and the batched UDP
 * sockets for batch-udp.ts. Undefined while the addon is missing or turned off.
 */
import type { AeadMethod } from '../protocol/shadowsocks/methods.js';
import { NATIVE_METHOD, nativeAddon } from '../protocol/shadowsocks/native.js';

/** The addon's batched UDP sockets (Linux only); see native/udp_sockets.cc. */
export interface NativeSockets {
  sockShared(): [Buffer, Int32Array, Uint8Array, number, number];
  sockCreate(family: 4 | 6, ip: string, port: number, onBatch: (count: number) => void, fd?: number): object;
  sockPort(sock: object): number;
  sockSend(sock: object, data: Uint8Array, addrs: Uint8Array, offset: number): number;
  sockSendTo(sock: object, data: Uint8Array, port: number, ip: string): number;
  sockClose(sock: object): void;
  sockRelay(
    out: object,
    listener: object,
    method: number,
    masterKey: Uint8Array,
    addrs: Uint8Array,
    offset: number,
  ): void;
  sockRelayTake(out: object): number;
  sockPolicy(listener: object, allowPrivate: boolean, saltCapacity: number): void;
  sockSaltAdd(listener: object, salt: Uint8Array): boolean;
  sockRoute(
    listener: object,
    addrs: Uint8Array,
    offset: number,
    out4: object | null,
    out6: object | null,
    method: number,
    masterKey: Uint8Array,
  ): void;
  sockUnroute(listener: object, addrs: Uint8Array, offset: number): number;
  sockRouteTake(listener: object, addrs: Uint8Array, offset: number): number;
  sockDropped(listener: object): number;
}

/** One non-blocking sendto(2) on a socket fd; returns bytes sent or -errno. */
export type NativeSendTo = (fd: number, data: Uint8Array, port: number, ip: string, family: 4 | 6) => number;

/** What the addon may export beyond its AEAD functions (older or non-Linux builds lack the sockets). */
type SocketExports = Partial<NativeSockets> & { sendTo?: NativeSendTo };

const SOCKET_FUNCTIONS: readonly (keyof NativeSockets)[] = [
  'sockShared',
  'sockCreate',
  'sockPort',
  'sockSend',
  'sockSendTo',
  'sockClose',
  'sockRelay',
  'sockRelayTake',
  'sockPolicy',
  'sockSaltAdd',
  'sockRoute',
  'sockUnroute',
  'sockRouteTake',
  'sockDropped',
];

function socketExports(): SocketExports | undefined {
  return (nativeAddon() as SocketExports | null) ?? undefined;
}

/** The addon's method number for a cipher (sockRelay and sockRoute take it). */
export function nativeMethodIndex(cipher: AeadMethod['cipher']): number {
  return NATIVE_METHOD[cipher];
}

/** The addon's datagram send, for fast-udp.ts; undefined without the addon. */
export function nativeSendTo(): NativeSendTo | undefined {
  return socketExports()?.sendTo;
}

/**
 * The addon's batched UDP sockets (recvmmsg into a shared area, one JS call per batch), for
 * batch-udp.ts; undefined without the addon or off Linux.
 */
export function nativeSockets(): NativeSockets | undefined {
  const a = socketExports();
  if (!a || !SOCKET_FUNCTIONS.every((f) => typeof a[f] === 'function')) return undefined;
  return a as NativeSockets;
}

/** Why a native relay ended (native/relay_pair.cc): the onClose reason codes. */
export const NATIVE_RELAY_REASON = [
  'done',
  'idle',
  'error',
  'aborted',
  'cipher',
  'payload-size',
  'connect',
] as const;

/** The addon's relay of an established TCP connection (Linux); see native/relay_pair.cc. */
export interface NativeRelay {
  relayPair(
    clientFd: number,
    destFd: number,
    /** With onFirst, may be the master key: the relay reads the salt (relay_pair.cc). */
    decoder: object | Uint8Array | null,
    encoder: object | null,
    pending: [
      prefix: Uint8Array | undefined,
      toClient: Uint8Array | undefined,
      toDest: Uint8Array | undefined,
    ],
    idleMs: number,
    /** answered: a payload opened with the decoder the relay keyed from the salt itself. */
    onClose: (reason: number, up: number, down: number, side?: number, answered?: boolean) => void,
    /** true or 1: destFd is taken over (not duplicated); 2: clientFd; 3: both. */
    owned?: boolean | number,
    onFirst?: NativeFirstRead,
  ): object;
  /**
   * The dial and the relay start in one (the server's native accept): connect to ip:port, then
   * relay connection `connId` (tcp_accept.cc) with no JS call in between; onClose(6, 0, 0, -errno)
   * when the connect fails or `connectMs` pass (the connection stays the caller's). Throws
   * (err.errno) when refused at once. Absent in older builds.
   */
  relayConnect?(
    connId: number,
    ip: string,
    port: number,
    connectMs: number,
    decoder: object,
    /** A codec, or the master key: the relay then derives its encoder (the prefix is the salt). */
    encoder: object | Uint8Array,
    /** With serverSalts: prefix undefined, set to the salt when the addon could not add it (ABI 8). */
    pending: [prefix: Uint8Array | undefined, toClient: undefined, toDest: Uint8Array | undefined],
    idleMs: number,
    onClose: (reason: number, up: number, down: number, side: number) => void,
    /** Start relaying inside the call when connect(2) returned connected (loopback). */
    atOnce?: boolean,
    /**
     * The port's shared server-salt filter's bytes (native/shared_salts.h): the relay draws the
     * response salt and adds it there, under the filter's try-lock, once the connect was not
     * refused at once; the lock busy, it leaves the salt in pending[0] for the caller to add.
     */
    serverSalts?: Uint8Array,
  ): object;
  relayClose(relay: object): void;
  relayCounts(relay: object, out: Float64Array): void;
  relayLive(): number;
  /** Non-blocking connect; onDone(fd >= 0, 0) or (-1, -errno). Throws (err.errno) when refused at once. */
  tcpConnect(ip: string, port: number, onDone: (fd: number, errno: number) => void): object;
  tcpConnectCancel(connect: object): void;
  /** close(2) of a descriptor (native/reuseport.cc). */
  fdClose(fd: number): void;
  /** [watches, sockets in the set, parked watches adopted] of this thread's epoll set (thread_poll.cc; tests). */
  pollLive?(): [watches: number, inSet: number, adopted?: number];
}

/** The addon's native TCP relay; undefined without the addon, off Linux, or in an older build. */
export function nativeRelay(): NativeRelay | undefined {
  const a = socketExports() as Partial<NativeRelay> | undefined;
  if (!a || typeof a.relayPair !== 'function' || typeof a.relayClose !== 'function') return undefined;
  if (typeof a.relayCounts !== 'function' || typeof a.relayLive !== 'function') return undefined;
  if (typeof a.tcpConnect !== 'function' || typeof a.tcpConnectCancel !== 'function') return undefined;
  if (typeof a.fdClose !== 'function') return undefined;
  return a as NativeRelay;
}

/** The addon's SOCKS5 front (Linux): accept and the no-auth handshake in C++; see native/socks5_front.cc. */
export interface NativeSocksFront {
  socks5Front(
    listenFd: number,
    firstWaitMs: number,
    handshakeMs: number,
    onConn: (
      fd: number,
      kind: number,
      addr: Buffer | undefined,
      data: Buffer | undefined,
      ended: boolean,
    ) => void,
    /** One accept per wake-up (one system call fewer per connection). */
    lean?: boolean,
    /** A CONNECT with data stays in the epoll set during its call, for a relay started in it. */
    handoff?: boolean,
    joined?: false,
  ): object;
  /**
   * `joined`: onConn(fd, kind, addr || data as one Buffer, addr's length, ended): one Buffer
   * per connection instead of two.
   */
  socks5Front(
    listenFd: number,
    firstWaitMs: number,
    handshakeMs: number,
    onConn: (fd: number, kind: number, bytes: Buffer | undefined, addrLength: number, ended: boolean) => void,
    lean: boolean,
    handoff: boolean,
    joined: true,
  ): object;
  socks5FrontClose(front: object): void;
  socks5FrontLive(front: object): number;
}

/** The relay that starts from the first byte (relayPair's onFirst), used with the front. */
export type NativeFirstRead = (
  chunk: Buffer | null,
  shut: boolean,
) => Uint8Array | undefined | [decoder: object, plain: Uint8Array | undefined];

/** The addon's SOCKS5 front with the relay; undefined without the addon, off Linux, or in an older build. */
export function nativeSocksFront(): (NativeSocksFront & NativeRelay) | undefined {
  const relay = nativeRelay();
  const a = socketExports() as Partial<NativeSocksFront> | undefined;
  if (!relay || !a || typeof a.socks5Front !== 'function' || typeof a.socks5FrontClose !== 'function')
    return undefined;
  if (typeof a.socks5FrontLive !== 'function') return undefined;
  return a as NativeSocksFront & NativeRelay;
}
