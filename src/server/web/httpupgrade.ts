/**
 * HTTPUpgrade on the web front (Xray's and sing-box's "httpupgrade" transport, mihomo's
 * v2ray-plugin `v2ray-http-upgrade`): at `${secretPath}/up` an upgrade request is answered with
 * `101 Switching Protocols` and the connection itself becomes the Shadowsocks stream, with no
 * WebSocket frames (websocket.ts decides raw or Mux.Cool from its first bytes, as for a
 * WebSocket).
 *
 * Its own path, not the WebSocket paths told apart by a missing Sec-WebSocket-Key (as mihomo's
 * server does): Xray's client sends a key and version 13 with its httpupgrade request since 2024
 * (some CDNs refuse an upgrade without them), so a key says nothing; and every request the front
 * answered before (a keyless upgrade on `${secretPath}` included) keeps its answer.
 *
 * What the request may carry, from each client that sends it:
 *  - Xray: Host, its User-Agent and headers, Connection: Upgrade, Upgrade: websocket,
 *    Sec-WebSocket-Key, Sec-WebSocket-Version: 13. With `?ed=` in its path it does not wait for
 *    the 101: its first bytes follow the request head (possibly in the same segment).
 *  - sing-box: Host, Go's User-Agent, Connection: Upgrade, Upgrade: websocket; no key.
 *  - mihomo (`v2ray-http-upgrade`): as sing-box; with `v2ray-http-upgrade-fast-open` its first
 *    bytes follow the head unanswered, and with `?ed=N` in its path the first N bytes ride in
 *    Sec-WebSocket-Protocol as base64url (unpadded), before the rest.
 * Bytes after the request head (Node's `head`) are the stream's first bytes, after any early
 * data from the header.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { hasRequestBody } from './static.js';

const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** base64url (mihomo sends it unpadded; '+' '/' '=' tolerated as mihomo's own server does). */
const EARLY_DATA = /^[0-9A-Za-z_+/-]+={0,2}$/;
/** Early data in a header: far below the front's 16 KiB header limit anyway. */
const MAX_EARLY_DATA = 8 * 1024;
const RFC6455_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * Whether `req` is an HTTPUpgrade request we take: GET, `Upgrade: websocket`, `Connection`
 * naming `upgrade` (nginx's `proxy_set_header Connection "upgrade"` included), no body, and
 * Sec-WebSocket-Protocol, when present, one base64 token.
 */
export function validHttpUpgrade(req: IncomingMessage): boolean {
  const h = req.headers;
  if (req.method !== 'GET' || req.httpVersion !== '1.1') return false;
  if ((h.upgrade ?? '').trim().toLowerCase() !== 'websocket') return false;
  if (!(h.connection ?? '').split(',').some((t) => t.trim().toLowerCase() === 'upgrade')) return false;
  if (hasRequestBody(req)) return false;
  const proto = h['sec-websocket-protocol'];
  if (proto !== undefined) {
    const p = proto.trim();
    if (p.length > MAX_EARLY_DATA || !EARLY_DATA.test(p)) return false;
  }
  return true;
}

/** The 101 answer: what Ladder's WebSocket answer has, Sec-WebSocket-Accept when a key came. */
export function httpUpgradeAnswer(req: IncomingMessage): string {
  const key = req.headers['sec-websocket-key']?.trim();
  const accept =
    key !== undefined && WS_KEY.test(key)
      ? `Sec-WebSocket-Accept: ${createHash('sha1')
          .update(key + RFC6455_GUID)
          .digest('base64')}\r\n`
      : '';
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${accept}\r\n`;
}

/** What a WebSocket stream buffers before its socket is paused (WsStream's readable side). */
const READABLE_HIGH_WATER = 256 * 1024;

/**
 * Let the connection buffer as much as a WebSocket stream does before it is paused. The http
 * server made the socket with the default 16 KiB and Node has no public setter. At 16 KiB the
 * server spent ~15 % more CPU per MiB uploaded through a Mux.Cool carrier than at 256 KiB (an
 * A/B in alternated runs, noisy: docs/benchmarks.md, session 17).
 */
function raiseReadableHighWater(s: Duplex): void {
  const state = (s as unknown as { _readableState?: { highWaterMark?: unknown } })._readableState;
  if (state && typeof state.highWaterMark === 'number' && state.highWaterMark < READABLE_HIGH_WATER)
    state.highWaterMark = READABLE_HIGH_WATER;
}

/**
 * Answer an upgrade that validHttpUpgrade accepted and hand its connection to `serve` as the
 * stream, with the early data and the bytes after the head put back to be read first.
 */
export function acceptHttpUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  serve: (stream: Duplex) => void,
): void {
  const s = socket as Socket;
  s.setTimeout?.(0);
  s.setNoDelay?.(true);
  raiseReadableHighWater(s);
  s.write(httpUpgradeAnswer(req));
  if (head.length > 0) s.unshift(head);
  const proto = req.headers['sec-websocket-protocol']?.trim();
  if (proto) {
    const early = Buffer.from(proto.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), 'base64url');
    if (early.length > 0) s.unshift(early);
  }
  serve(s);
}
