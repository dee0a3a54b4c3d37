import { randomBytes, randomInt } from 'node:crypto';
import { hchacha } from '@noble/ciphers/chacha.js';
import { ProtocolError } from '../errors.js';
import { decodeAddress, encodeAddress, type SocksAddress } from '../socks5/address.js';
import { checkTimestamp, HEADER_TYPE_CLIENT, HEADER_TYPE_SERVER } from './aead2022.js';
import { IDENTITY_HEADER_SIZE, udpIdentityHeaders, type IdentityTable } from './identity.js';
import { cipher, type AeadCipher } from './cipher.js';
import { deriveSessionSubkey } from './kdf2022.js';
import { AesBlock, checkKeySize, MAX_PADDING, type Aead2022Method } from './methods2022.js';
import { PacketWindow } from './udpWindow.js';

/**
 * SIP022 UDP, pure codecs. Times are milliseconds since the epoch; the wire carries Unix seconds.
 *
 * AES methods:
 *   AES-ECB(PSK or first iPSK, session id | packet id u64be) | [identity headers]
 *   | AES-GCM(derive_key(PSK || session id), nonce = separate header[4..16], body)
 * ChaCha method (2022-blake3-chacha20-poly1305):
 *   nonce (24 random bytes) | XChaCha20-Poly1305(PSK, nonce, session id | packet id | body)
 * body, client to server: type 0 | ts u64be | padLen u16be | padding | SOCKS address | payload
 * body, server to client: type 1 | ts u64be | client session id | padLen u16be | padding | address | payload
 */

const TAG = 16;
const XNONCE = 24;

export interface Udp2022Packet {
  /** Session ID of the sender (client session ID from clients, server session ID from servers). */
  readonly sessionId: Buffer;
  readonly packetId: bigint;
  /** Wire timestamp, Unix seconds. */
  readonly timestamp: number;
  /** Server to client only: the client session this reply belongs to. */
  readonly clientSessionId?: Buffer;
  readonly paddingLength: number;
  /** Destination (client to server) or source (server to client). */
  readonly address: SocksAddress;
  readonly payload: Buffer;
}

export interface Udp2022OpenedClientPacket<U> extends Udp2022Packet {
  /** The session PSK: the port's key, or the user's key found by the identity header. */
  readonly key: Buffer;
  /** The user found by the identity header (multi-user ports). */
  readonly user?: U;
}

export interface Udp2022SealOptions {
  /** 8-byte session ID of the sender. */
  readonly sessionId: Uint8Array;
  readonly packetId: bigint;
  readonly address: SocksAddress;
  readonly payload: Uint8Array;
  readonly nowMs: number;
  /** Overrides the padding policy (random 1..900 bytes for an empty payload, none otherwise). */
  readonly padding?: Uint8Array;
  /** ChaCha method only: the 24-byte nonce (random otherwise). */
  readonly nonce?: Uint8Array;
  /** Cache of session subkeys (AES methods), so a session does not re-derive per packet. */
  readonly cache?: SubkeyCache;
}

/**
 * Bounded cache of UDP session subkeys keyed by PSK and session ID (deriving one is a BLAKE3
 * call), and of AES block ciphers per PSK (separate headers). Evicts the oldest entry past `max`.
 * Pure: no timers.
 */
export class SubkeyCache {
  readonly max: number;
  readonly #map = new Map<string, Buffer>();
  readonly #blocks = new Map<string, AesBlock>();

  constructor(max = 4096) {
    this.max = max;
  }

  get size(): number {
    return this.#map.size;
  }

  /** The subkey for (key, session ID), derived and remembered on a miss (use when sealing). */
  get(key: Uint8Array, sessionId: Uint8Array): Buffer {
    return this.peek(key, sessionId) ?? this.put(key, sessionId, deriveSessionSubkey(key, sessionId));
  }

  /** The remembered subkey, if any (no derivation, no insertion). */
  peek(key: Uint8Array, sessionId: Uint8Array): Buffer | undefined {
    return this.#map.get(Buffer.concat([key, sessionId]).toString('latin1'));
  }

  /** Remember a subkey; evicts the oldest entry past `max`. */
  put(key: Uint8Array, sessionId: Uint8Array, subkey: Buffer): Buffer {
    const k = Buffer.concat([key, sessionId]).toString('latin1');
    if (!this.#map.has(k) && this.#map.size >= this.max) this.#map.delete(this.#map.keys().next().value!);
    this.#map.set(k, subkey);
    return subkey;
  }

  block(method: Aead2022Method, key: Uint8Array): AesBlock {
    const k = method.name + Buffer.from(key).toString('latin1');
    let b = this.#blocks.get(k);
    if (b === undefined) {
      b = new AesBlock(method, key);
      if (this.#blocks.size >= this.max) this.#blocks.delete(this.#blocks.keys().next().value!);
      this.#blocks.set(k, b);
    }
    return b;
  }
}

function block(method: Aead2022Method, key: Uint8Array, cache: SubkeyCache | undefined): AesBlock {
  return cache ? cache.block(method, key) : new AesBlock(method, key);
}

function subkey(key: Uint8Array, sessionId: Uint8Array, cache: SubkeyCache | undefined): Buffer {
  return cache ? cache.get(key, sessionId) : deriveSessionSubkey(key, sessionId);
}

function separateHeader(sessionId: Uint8Array, packetId: bigint): Buffer {
  if (sessionId.length !== 8) throw new ProtocolError('ERR_HEADER', 'a UDP session ID is 8 bytes');
  if (packetId < 0n || packetId > 0xffff_ffff_ffff_ffffn)
    throw new ProtocolError('ERR_HEADER', 'packet ID outside u64');
  const h = Buffer.allocUnsafe(16);
  h.set(sessionId, 0);
  h.writeBigUInt64BE(packetId, 8);
  return h;
}

function defaultPadding(payload: Uint8Array): Buffer {
  return payload.length === 0 ? Buffer.alloc(randomInt(1, MAX_PADDING + 1)) : Buffer.alloc(0);
}

/** type | ts | [client session id] | padLen | padding | address | payload */
function buildBody(type: number, o: Udp2022SealOptions, clientSessionId: Uint8Array | undefined): Buffer {
  const pad = o.padding ?? defaultPadding(o.payload);
  if (pad.length > 0xffff) throw new ProtocolError('ERR_HEADER', 'padding longer than 65535 bytes');
  const addr = encodeAddress(o.address);
  const csid = clientSessionId ? 8 : 0;
  const body = Buffer.allocUnsafe(1 + 8 + csid + 2 + pad.length + addr.length + o.payload.length);
  body[0] = type;
  body.writeBigUInt64BE(BigInt(Math.floor(o.nowMs / 1000)), 1);
  let p = 9;
  if (clientSessionId) {
    if (clientSessionId.length !== 8) throw new ProtocolError('ERR_HEADER', 'a UDP session ID is 8 bytes');
    body.set(clientSessionId, p);
    p += 8;
  }
  body.writeUInt16BE(pad.length, p);
  p += 2;
  body.set(pad, p);
  p += pad.length;
  addr.copy(body, p);
  body.set(o.payload, p + addr.length);
  return body;
}

/** AEAD open of a whole sealed body; ERR_CIPHER when it does not authenticate. */
function open(name: AeadCipher, key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Buffer {
  const plain = cipher().openAt(name, key, nonce, sealed, 0);
  if (plain === null) throw new ProtocolError('ERR_CIPHER', 'AEAD authentication failed');
  return plain;
}

/** "expand 32-byte k" as raw words (noble's hchacha byte-swaps raw words itself on big-endian hosts). */
const SIGMA = new Uint32Array(new Uint8Array(Buffer.from('expand 32-byte k')).buffer);

/**
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha): subkey = HChaCha20(key, nonce[0..16]) from
 * @noble/ciphers, then the cipher backend's IETF ChaCha20-Poly1305 with nonce 0000 ||
 * nonce[16..24]. Same bytes as noble's xchacha20poly1305, at OpenSSL speed for the bulk of the packet.
 */
function xchachaParams(key: Uint8Array, nonce: Uint8Array): [Buffer, Buffer] {
  const k = new Uint32Array(8);
  new Uint8Array(k.buffer).set(key);
  const n = new Uint32Array(4);
  new Uint8Array(n.buffer).set(nonce.subarray(0, 16));
  const out = new Uint32Array(8);
  hchacha(SIGMA, k, n, out);
  const iv = Buffer.alloc(12);
  iv.set(nonce.subarray(16, 24), 4);
  return [Buffer.from(out.buffer), iv];
}

function xchachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Buffer {
  const [subkey, iv] = xchachaParams(key, nonce);
  return open('chacha20-poly1305', subkey, iv, sealed);
}

function seal(
  method: Aead2022Method,
  key: Uint8Array,
  headerKey: Uint8Array,
  sep: Buffer,
  identity: Buffer,
  body: Buffer,
  o: Udp2022SealOptions,
): Buffer {
  if (method.block === undefined) {
    const nonce = o.nonce ?? randomBytes(XNONCE);
    if (nonce.length !== XNONCE) throw new ProtocolError('ERR_HEADER', 'the XChaCha20 nonce is 24 bytes');
    const [xkey, xiv] = xchachaParams(key, nonce);
    return cipher().sealParts('chacha20-poly1305', xkey, xiv, nonce, sep, body);
  }
  const sk = subkey(key, sep.subarray(0, 8), o.cache);
  const head = Buffer.allocUnsafe(16 + identity.length);
  block(method, headerKey, o.cache).encrypt(sep).copy(head, 0);
  identity.copy(head, 16);
  return cipher().sealParts(method.aead.cipher, sk, sep.subarray(4, 16), head, body);
}

/**
 * Client to server. `identityKeys` (AES methods) adds one SIP023 identity header per key and
 * encrypts the separate header with the first of them.
 */
export function sealClientPacket2022(
  method: Aead2022Method,
  key: Uint8Array,
  o: Udp2022SealOptions & { readonly identityKeys?: readonly Uint8Array[] },
): Buffer {
  checkKeySize(method, key);
  const ids = o.identityKeys ?? [];
  const sep = separateHeader(o.sessionId, o.packetId);
  const identity = udpIdentityHeaders(method, ids, key, sep);
  return seal(method, key, ids[0] ?? key, sep, identity, buildBody(HEADER_TYPE_CLIENT, o, undefined), o);
}

/** Server to client; `key` is the session PSK (the user's key on a multi-user port). */
export function sealServerPacket2022(
  method: Aead2022Method,
  key: Uint8Array,
  o: Udp2022SealOptions & { readonly clientSessionId: Uint8Array },
): Buffer {
  checkKeySize(method, key);
  const sep = separateHeader(o.sessionId, o.packetId);
  return seal(method, key, key, sep, Buffer.alloc(0), buildBody(HEADER_TYPE_SERVER, o, o.clientSessionId), o);
}

/** Returns [separate header plaintext, body plaintext]. */
function openRaw(
  method: Aead2022Method,
  key: Buffer,
  headerKey: Uint8Array,
  packet: Uint8Array,
  identityLen: number,
  cache: SubkeyCache | undefined,
  resolve?: (sep: Buffer, eih: Buffer) => Buffer,
): [Buffer, Buffer, Buffer] {
  const buf = Buffer.from(packet.buffer, packet.byteOffset, packet.length);
  if (method.block === undefined) {
    if (buf.length < XNONCE + 16 + TAG)
      throw new ProtocolError('ERR_SHORT_HEADER', `datagram of ${buf.length} bytes is too short`);
    const p = xchachaOpen(key, buf.subarray(0, XNONCE), buf.subarray(XNONCE));
    return [p.subarray(0, 16), p.subarray(16), key];
  }
  if (buf.length < 16 + identityLen + TAG)
    throw new ProtocolError('ERR_SHORT_HEADER', `datagram of ${buf.length} bytes is too short`);
  const sep = block(method, headerKey, cache).decrypt(buf.subarray(0, 16));
  const sessionKey = resolve ? resolve(sep, buf.subarray(16, 16 + identityLen)) : key;
  // Only a packet that authenticates may add to the cache: garbage (or another key's packets
  // on a shared port) must not evict live sessions' subkeys.
  const sid = sep.subarray(0, 8);
  const cached = cache?.peek(sessionKey, sid);
  const sk = cached ?? deriveSessionSubkey(sessionKey, sid);
  const body = open(method.aead.cipher, sk, sep.subarray(4, 16), buf.subarray(16 + identityLen));
  if (cache && !cached) cache.put(sessionKey, sid, sk);
  return [sep, body, sessionKey];
}

function parseBody(
  type: number,
  sep: Buffer,
  body: Buffer,
  nowMs: number,
): Omit<Udp2022Packet, 'sessionId' | 'packetId'> {
  const fixed = 1 + 8 + (type === HEADER_TYPE_SERVER ? 8 : 0) + 2;
  if (sep.length !== 16 || body.length < fixed)
    throw new ProtocolError('ERR_HEADER', 'datagram body shorter than its header');
  if (body[0] !== type) throw new ProtocolError('ERR_HEADER', `packet type ${body[0]} (expected ${type})`);
  const ts = body.readBigUInt64BE(1);
  checkTimestamp(ts, nowMs);
  let p = 9;
  let clientSessionId: Buffer | undefined;
  if (type === HEADER_TYPE_SERVER) {
    clientSessionId = Buffer.from(body.subarray(9, 17));
    p = 17;
  }
  const padLen = body.readUInt16BE(p);
  p += 2;
  if (p + padLen > body.length)
    throw new ProtocolError('ERR_HEADER', `padding of ${padLen} bytes runs past the datagram`);
  p += padLen;
  const decoded = decodeAddress(body, p);
  if (!decoded) throw new ProtocolError('ERR_HEADER', 'address runs past the datagram');
  const base = {
    timestamp: Number(ts),
    paddingLength: padLen,
    address: decoded.address,
    payload: body.subarray(p + decoded.length),
  };
  return clientSessionId ? { ...base, clientSessionId } : base;
}

export interface OpenClientOptions<U> {
  /** The PSK of a single-user port. Exactly one of `key` and `identity` is required. */
  readonly key?: Uint8Array;
  /** SIP023 identity table of a multi-user port (AES methods). */
  readonly identity?: IdentityTable<U>;
  readonly cache?: SubkeyCache;
}

/**
 * Server side: open a client-to-server datagram and validate its header (type 0, timestamp
 * within 30 s, padding, address). Replay filtering by packet ID is the caller's: per client
 * session, PacketWindow.accept(packet.packetId) after this returns.
 * Throws ERR_SHORT_HEADER, ERR_CIPHER (bad tag, unknown identity), ERR_HEADER, ERR_TIMESTAMP, ERR_ADDRESS.
 */
export function openClientPacket2022<U = never>(
  method: Aead2022Method,
  packet: Uint8Array,
  nowMs: number,
  options: OpenClientOptions<U>,
): Udp2022OpenedClientPacket<U> {
  const { key, identity, cache } = options;
  if ((key === undefined) === (identity === undefined))
    throw new ProtocolError('ERR_USAGE', 'openClientPacket2022: give exactly one of key and identity');
  let user: U | undefined;
  let raw: [Buffer, Buffer, Buffer];
  if (identity) {
    if (identity.method !== method)
      throw new ProtocolError('ERR_METHOD', `identity table is for ${identity.method.name}`);
    raw = openRaw(
      method,
      identity.identityKey,
      identity.identityKey,
      packet,
      IDENTITY_HEADER_SIZE,
      cache,
      (sep, eih) => {
        const entry = identity.resolveUdp(sep, eih);
        if (!entry) throw new ProtocolError('ERR_CIPHER', 'identity header matches no user');
        user = entry.user;
        return entry.key;
      },
    );
  } else {
    checkKeySize(method, key!);
    const k = Buffer.from(key!);
    raw = openRaw(method, k, k, packet, 0, cache);
  }
  const [sep, body, sessionKey] = raw;
  const parsed = parseBody(HEADER_TYPE_CLIENT, sep, body, nowMs);
  const out = {
    ...parsed,
    sessionId: Buffer.from(sep.subarray(0, 8)),
    packetId: sep.readBigUInt64BE(8),
    key: sessionKey,
  };
  return user === undefined ? out : { ...out, user };
}

/** Client side: open a server-to-client datagram (type 1, timestamp, client session ID). */
export function openServerPacket2022(
  method: Aead2022Method,
  key: Uint8Array,
  packet: Uint8Array,
  nowMs: number,
  options: { readonly cache?: SubkeyCache } = {},
): Udp2022Packet {
  checkKeySize(method, key);
  const k = Buffer.from(key);
  const [sep, body] = openRaw(method, k, k, packet, 0, options.cache);
  const parsed = parseBody(HEADER_TYPE_SERVER, sep, body, nowMs);
  return { ...parsed, sessionId: Buffer.from(sep.subarray(0, 8)), packetId: sep.readBigUInt64BE(8) };
}

/** How long a UDP session (and a client's memory of a server session) must live: SIP022 §3.2.4. */
export const UDP_SESSION_TTL_MS = 60_000;
/** A client keeps at most this many live server sessions per client session. */
export const MAX_SERVER_SESSIONS = 4;

function sessionIdFrom(id: Uint8Array | undefined): Buffer {
  const s = id ? Buffer.from(id) : randomBytes(8);
  if (s.length !== 8) throw new ProtocolError('ERR_HEADER', 'a UDP session ID is 8 bytes');
  return s;
}

/**
 * Client side of one SIP022 UDP session (one local source address): a random client session
 * ID, a packet counter from 0, and the server sessions answering it, each with its own
 * PacketWindow, forgotten 60 s after their last packet. Pure: the caller passes the time.
 */
export class Udp2022ClientSession {
  readonly method: Aead2022Method;
  readonly sessionId: Buffer;
  readonly #key: Buffer;
  readonly #identityKeys: readonly Uint8Array[];
  readonly #cache: SubkeyCache | undefined;
  readonly #servers = new Map<string, { window: PacketWindow; lastMs: number }>();
  #packetId = 0n;

  constructor(
    method: Aead2022Method,
    key: Uint8Array,
    options: {
      readonly identityKeys?: readonly Uint8Array[];
      readonly sessionId?: Uint8Array;
      readonly cache?: SubkeyCache;
    } = {},
  ) {
    checkKeySize(method, key);
    this.method = method;
    this.#key = Buffer.from(key);
    this.#identityKeys = options.identityKeys ?? [];
    this.#cache = options.cache;
    this.sessionId = sessionIdFrom(options.sessionId);
  }

  /** The next packet ID this session will use. */
  get packetId(): bigint {
    return this.#packetId;
  }

  /** Number of server sessions currently remembered. */
  get serverSessions(): number {
    return this.#servers.size;
  }

  seal(address: SocksAddress, payload: Uint8Array, nowMs: number, padding?: Uint8Array): Buffer {
    const packetId = this.#packetId++;
    return sealClientPacket2022(this.method, this.#key, {
      sessionId: this.sessionId,
      packetId,
      address,
      payload,
      nowMs,
      identityKeys: this.#identityKeys,
      ...(padding ? { padding } : {}),
      ...(this.#cache ? { cache: this.#cache } : {}),
    });
  }

  /**
   * Open a reply: authenticates, validates the header, checks it is addressed to this client
   * session (ERR_HEADER otherwise) and not a replay within its server session (ERR_REPLAY), and
   * refuses a new server session while MAX_SERVER_SESSIONS are live (ERR_REPLAY).
   */
  open(packet: Uint8Array, nowMs: number): Udp2022Packet {
    const p = openServerPacket2022(
      this.method,
      this.#key,
      packet,
      nowMs,
      this.#cache ? { cache: this.#cache } : {},
    );
    if (!p.clientSessionId!.equals(this.sessionId)) {
      throw new ProtocolError('ERR_HEADER', 'reply belongs to another client session');
    }
    for (const [k, s] of this.#servers) if (nowMs - s.lastMs >= UDP_SESSION_TTL_MS) this.#servers.delete(k);
    const k = p.sessionId.toString('latin1');
    let s = this.#servers.get(k);
    if (!s) {
      if (this.#servers.size >= MAX_SERVER_SESSIONS) {
        throw new ProtocolError('ERR_REPLAY', `more than ${MAX_SERVER_SESSIONS} live server sessions`);
      }
      s = { window: new PacketWindow(), lastMs: nowMs };
      this.#servers.set(k, s);
    }
    if (!s.window.accept(p.packetId)) throw new ProtocolError('ERR_REPLAY', 'duplicate or too old packet ID');
    s.lastMs = nowMs;
    return p;
  }
}

/**
 * Server side of one SIP022 UDP session, created for a new client session ID: the client's
 * replay window, a fresh random server session ID (never the client's), a packet counter, and
 * the session key (the user's key on a SIP023 port). The NAT table that maps client session IDs
 * to these, with its idle expiry (>= 60 s) and size bound, belongs to the relay.
 */
export class Udp2022ServerSession<U = never> {
  readonly method: Aead2022Method;
  readonly clientSessionId: Buffer;
  readonly sessionId: Buffer;
  readonly key: Buffer;
  readonly user: U | undefined;
  readonly #window = new PacketWindow();
  readonly #cache: SubkeyCache | undefined;
  #packetId = 0n;

  constructor(
    method: Aead2022Method,
    opened: Pick<Udp2022OpenedClientPacket<U>, 'sessionId' | 'key' | 'user'>,
    options: { readonly sessionId?: Uint8Array; readonly cache?: SubkeyCache } = {},
  ) {
    this.method = method;
    this.clientSessionId = Buffer.from(opened.sessionId);
    this.key = Buffer.from(opened.key);
    this.user = opened.user;
    this.#cache = options.cache;
    let sid = sessionIdFrom(options.sessionId);
    while (sid.equals(this.clientSessionId)) sid = randomBytes(8);
    this.sessionId = sid;
  }

  /** Record a validated client packet ID; false for a replay (drop it like garbage). */
  accept(packetId: bigint): boolean {
    return this.#window.accept(packetId);
  }

  /** Seal a reply from `address` (the remote that sent `payload`). */
  seal(address: SocksAddress, payload: Uint8Array, nowMs: number, padding?: Uint8Array): Buffer {
    const packetId = this.#packetId++;
    return sealServerPacket2022(this.method, this.key, {
      sessionId: this.sessionId,
      packetId,
      clientSessionId: this.clientSessionId,
      address,
      payload,
      nowMs,
      ...(padding ? { padding } : {}),
      ...(this.#cache ? { cache: this.#cache } : {}),
    });
  }
}
