import type { DeviceOwner } from '../device-limits.js';
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type WebSocket from 'ws';
import { encodeUdp2017 } from '../../protocol/shadowsocks/udp.js';
import type { SaltFilter } from '../../protocol/shadowsocks/replay.js';
import { Udp2022ServerSession, type SubkeyCache } from '../../protocol/shadowsocks/udp2022.js';
import type { SocksAddress } from '../../protocol/socks5/address.js';
import { isPrivateAddress, lookupOf } from '../destination.js';
import type { AnyKeyEntry, Key2022Entry, KeyEntry } from '../keys.js';
import { openDatagram, type UdpRelayContext } from '../udp-relay.js';

export interface WsUdpOptions {
  /** The server's keys, policy and usage accounting (ShadowsocksServer.udpContext). */
  ctx: UdpRelayContext;
  /** Close the association after this long without a datagram either way. */
  idleMs: number;
  /**
   * Salts of SIP004 datagrams already answered, shared by every association of the endpoint: a
   * replayed capture is dropped like garbage (a reply would confirm the server to a prober).
   * 2022 datagrams have their own packet-ID window and timestamps.
   */
  salts: SaltFilter;
  /** 2022 session subkeys, shared by the endpoint's associations. */
  cache: SubkeyCache;
  /**
   * 2022 client sessions by key and session ID, shared by the endpoint's associations (each with
   * its packet-ID window, so a capture replayed on a new WebSocket is still a replay); the least
   * recently used go past MAX_SESSIONS.
   */
  sessions2022: Map<string, Udp2022ServerSession<Key2022Entry>>;
  /** The client's address as the web front believes it (device limits); '' when unknown. */
  clientAddress?: string | undefined;
}

/** Replies queued on one WebSocket beyond this are dropped (UDP may lose; memory may not grow). */
const MAX_BUFFERED_REPLIES = 1024 * 1024;
const NO_KEYS: readonly KeyEntry[] = [];
/** 2022 client sessions remembered by an endpoint (a session is ~200 bytes). */
export const MAX_SESSIONS = 4096;
/**
 * An association refused by its key's device limit drops that key's datagrams for this long
 * without asking the device table again (each ask hashes the address and scans the key's places);
 * a place that frees is taken at most this much later.
 */
export const REFUSAL_MEMORY_MS = 1000;

/**
 * Outline's UDP over WebSocket: each binary message is one Shadowsocks UDP packet, SIP004 (salt |
 * AEAD(address | payload)) or SIP022 (with SIP023 identity headers); the WebSocket is one
 * association. The first packet that opens with one of the server's keys (the UDP relay's trial
 * order, openDatagram) binds the association to that key; packets that do not open, open with
 * another key, are replays (SIP004 salts, SIP022 packet IDs) or name a forbidden destination are
 * dropped without a word (a prober gets nothing back). Replies from any destination come back
 * sealed with that key (2022: the server session of the client's latest session ID), one per
 * message.
 *
 * Usage is counted to the key as the UDP relay counts it (sealed bytes each way), and the
 * association ends as soon as its key is removed or changed (disabled, over its limit).
 */
export function serveWsUdp(ws: WebSocket, opts: WsUdpOptions): void {
  const { ctx } = opts;
  let key: AnyKeyEntry | undefined;
  let first: readonly KeyEntry[] = NO_KEYS;
  const sessions = opts.sessions2022;
  /** 2022: the server side of the client's latest session. */
  let s2022: Udp2022ServerSession<Key2022Entry> | undefined;
  const sockets = new Map<4 | 6, dgram.Socket>();
  let last = ctx.clock.now();
  let closed = false;
  /** The association's place under its key's device limit (device-limits.ts), when it has one. */
  let place: DeviceOwner | undefined;
  const close = (): void => {
    if (closed) return;
    closed = true;
    if (place) ctx.devices?.release(place);
    clearInterval(timer);
    for (const s of sockets.values()) s.close();
    sockets.clear();
  };
  const stop = (): void => {
    close();
    ws.terminate();
  };
  /** The bound key is still one the server serves (not removed, disabled or replaced). */
  const current = (): boolean => !key || ctx.keys.get(key.id) === key;
  const timer = setInterval(
    () => {
      if (!current() || ctx.clock.now() - last >= opts.idleMs) stop();
    },
    // At most a second between checks, so a removed or disabled key's association ends promptly.
    Math.max(250, Math.min(1_000, opts.idleMs / 4)),
  );
  timer.unref();
  ws.on('close', close);
  ws.on('error', close);

  const reply = (from: SocksAddress, data: Buffer): void => {
    if (closed || !key || ws.readyState !== ws.OPEN) return;
    if (!current()) return stop();
    if (ws.bufferedAmount > MAX_BUFFERED_REPLIES) return;
    const now = ctx.clock.now();
    let sealed: Buffer;
    try {
      sealed =
        key.edition === 2022
          ? s2022!.seal(from, data, now)
          : encodeUdp2017(key.method, key.masterKey, from, data);
    } catch {
      return;
    }
    last = now;
    ctx.addUsage(key.id, 0, sealed.length);
    ws.send(sealed, { binary: true });
  };

  const socketFor = (family: 4 | 6): dgram.Socket => {
    let s = sockets.get(family);
    if (s) return s;
    s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
    s.on('error', () => {});
    s.on('message', (data, rinfo) =>
      reply({ type: rinfo.family === 'IPv6' ? 'ipv6' : 'ipv4', host: rinfo.address, port: rinfo.port }, data),
    );
    sockets.set(family, s);
    return s;
  };

  const forward = async (dest: SocksAddress, payload: Buffer): Promise<void> => {
    let ip = dest.host;
    if (dest.type === 'domain') {
      const all = await lookupOf(ctx, key?.id)(dest.host).catch(() => []);
      const ok = all.find((a) => ctx.allowPrivateDestinations || !isPrivateAddress(a.address));
      if (!ok) return;
      ip = ok.address;
    } else if (!ctx.allowPrivateDestinations && isPrivateAddress(ip)) return;
    if (closed || dest.port === 0) return;
    try {
      socketFor(isIP(ip) === 6 ? 6 : 4).send(payload, dest.port, ip);
    } catch {
      // A send that node refuses (a bad address or port) drops the datagram, never the process.
    }
  };

  /** The key whose device limit refused this association last, until when that answer holds. */
  let refused: { id: string; until: number } | undefined;

  ws.on('message', (msg: Buffer, isBinary: boolean) => {
    if (closed || !isBinary) return;
    if (!current()) return stop();
    const now = ctx.clock.now();
    const opened = openDatagram(ctx.keys, opts.cache, msg, now, first, (salt) =>
      opts.salts.checkAndAdd(salt),
    );
    if (!opened || (key && opened.key !== key)) return;
    if (!key && !place && ctx.devices?.limited(opened.key.id)) {
      // Refused a moment ago: dropped again without hashing the address and scanning the table.
      if (refused?.id === opened.key.id && now < refused.until) return;
      const p: DeviceOwner = { activity: () => last };
      // Over the key's device limit: dropped as a datagram no key opens.
      if (!ctx.devices.admit(p, opened.key.id, opts.clientAddress ?? '')) {
        refused = { id: opened.key.id, until: now + REFUSAL_MEMORY_MS };
        return;
      }
      refused = undefined;
      place = p;
    }
    if (opened.edition === 2022) {
      const p = opened.packet;
      const id = `${opened.key.id}|${p.sessionId.toString('hex')}`;
      let s = sessions.get(id);
      if (s)
        sessions.delete(id); // re-inserted below: most recently used last
      else {
        s = new Udp2022ServerSession(opened.key.method, p, { cache: opts.cache });
        if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value!);
      }
      sessions.set(id, s);
      if (!s.accept(p.packetId)) return; // replayed or too old packet ID: like garbage
      // Replies follow the client's latest session (a client restarts its session at will).
      s2022 = s;
    } else {
      first = [opened.key];
    }
    key = opened.key;
    last = now;
    ctx.addUsage(key.id, msg.length, 0);
    forward(opened.address, opened.payload).catch(() => undefined);
  });
}
