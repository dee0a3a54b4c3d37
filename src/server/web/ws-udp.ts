import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type WebSocket from 'ws';
import { decodeUdp2017, encodeUdp2017 } from '../../protocol/shadowsocks/udp.js';
import { evpBytesToKey } from '../../protocol/shadowsocks/kdf.js';
import { getAeadMethod, type AeadMethod } from '../../protocol/shadowsocks/methods.js';
import type { SaltFilter } from '../../protocol/shadowsocks/replay.js';
import type { SocksAddress } from '../../protocol/socks5/address.js';
import type { RuntimeKey } from '../../shared/control.js';
import { defaultLookup, isPrivateAddress, type Lookup } from '../destination.js';

export interface WsUdpOptions {
  /** The server's current keys; SIP004 ones are used (2022 keys are skipped). */
  keys: () => readonly RuntimeKey[];
  allowPrivateDestinations: boolean;
  /** Close the association after this long without a datagram either way. */
  idleMs: number;
  lookup?: Lookup | undefined;
  /**
   * Salts of datagrams already answered, shared by every association of the endpoint: a replayed
   * capture is dropped like garbage (a reply would confirm the server to a prober).
   */
  salts: SaltFilter;
}

/** Replies queued on one WebSocket beyond this are dropped (UDP may lose; memory may not grow). */
const MAX_BUFFERED_REPLIES = 1024 * 1024;

interface Sip004Key {
  method: AeadMethod;
  masterKey: Buffer;
}

/** Derived SIP004 keys by "method:secret" (EVP_BytesToKey is not free). */
const derived = new Map<string, Sip004Key | null>();

function sip004Keys(keys: readonly RuntimeKey[]): Sip004Key[] {
  const out: Sip004Key[] = [];
  for (const k of keys) {
    const id = `${k.method}:${k.secret}`;
    let d = derived.get(id);
    if (d === undefined) {
      try {
        const method = getAeadMethod(k.method);
        d = { method, masterKey: evpBytesToKey(k.secret, method.keySize) };
      } catch {
        d = null; // a 2022 or unknown method: not for this endpoint
      }
      if (derived.size > 10_000) derived.clear();
      derived.set(id, d);
    }
    if (d) out.push(d);
  }
  return out;
}

/**
 * Outline's UDP over WebSocket, SIP004 only: each binary message is one Shadowsocks UDP packet
 * (salt | AEAD(address | payload)); the WebSocket is one association. The first packet that opens
 * with one of the keys binds the association to it; packets that do not open, or name a
 * forbidden destination, are dropped without a word (a prober gets nothing back). Replies from
 * any destination come back sealed with that key, one per message.
 *
 * Minimal next to the UDP relay (src/server/udp-relay.ts, which is bound to its UDP socket): no
 * SIP022 and no usage accounting. The salt filter is the endpoint's own, not the UDP relay's, so
 * a datagram captured on the plain UDP port and replayed here (which needs the secret path) is
 * answered once.
 */
export function serveWsUdp(ws: WebSocket, opts: WsUdpOptions): void {
  const lookup = opts.lookup ?? defaultLookup;
  let key: Sip004Key | undefined;
  const sockets = new Map<4 | 6, dgram.Socket>();
  let last = Date.now();
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    for (const s of sockets.values()) s.close();
    sockets.clear();
  };
  const timer = setInterval(
    () => {
      if (Date.now() - last >= opts.idleMs) {
        close();
        ws.terminate();
      }
    },
    Math.max(250, opts.idleMs / 4),
  );
  timer.unref();
  ws.on('close', close);
  ws.on('error', close);

  const socketFor = (family: 4 | 6): dgram.Socket => {
    let s = sockets.get(family);
    if (s) return s;
    s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
    s.on('error', () => {});
    s.on('message', (data, rinfo) => {
      if (closed || !key || ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > MAX_BUFFERED_REPLIES) return;
      last = Date.now();
      const from: SocksAddress = {
        type: rinfo.family === 'IPv6' ? 'ipv6' : 'ipv4',
        host: rinfo.address,
        port: rinfo.port,
      };
      ws.send(encodeUdp2017(key.method, key.masterKey, from, data), { binary: true });
    });
    sockets.set(family, s);
    return s;
  };

  const forward = async (dest: SocksAddress, payload: Buffer): Promise<void> => {
    let ip = dest.host;
    if (dest.type === 'domain') {
      const all = await lookup(dest.host).catch(() => []);
      const ok = all.find((a) => opts.allowPrivateDestinations || !isPrivateAddress(a.address));
      if (!ok) return;
      ip = ok.address;
    } else if (!opts.allowPrivateDestinations && isPrivateAddress(ip)) return;
    if (closed || dest.port === 0) return;
    try {
      socketFor(isIP(ip) === 6 ? 6 : 4).send(payload, dest.port, ip);
    } catch {
      // A send that node refuses (a bad address or port) drops the datagram, never the process.
    }
  };

  ws.on('message', (msg: Buffer, isBinary: boolean) => {
    if (closed || !isBinary) return;
    const candidates = key ? [key] : sip004Keys(opts.keys());
    for (const k of candidates) {
      let d;
      try {
        d = decodeUdp2017(k.method, k.masterKey, msg);
      } catch {
        continue;
      }
      if (!opts.salts.checkAndAdd(msg.subarray(0, k.method.saltSize))) return; // a replay
      key = k;
      last = Date.now();
      forward(d.address, d.payload).catch(() => undefined);
      return;
    }
  });
}
