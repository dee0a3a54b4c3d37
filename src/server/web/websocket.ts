import type { IncomingMessage } from 'node:http';
import { SaltFilter } from '../../protocol/shadowsocks/replay.js';
import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { looksLikeMuxCoolNew } from '../../protocol/muxcool.js';
import { MuxConnection, muxEndDelayMs } from '../../transport/mux.js';
import type { MuxCoverOptions } from '../../transport/mux-cover.js';
import { WsStream } from '../../transport/ws-stream.js';
import { SubkeyCache } from '../../protocol/shadowsocks/udp2022.js';
import type { ShadowsocksServer } from '../server.js';
import { DEFAULT_UDP_IDLE_MS } from '../udp-relay.js';
import { acceptHttpUpgrade, validHttpUpgrade } from './httpupgrade.js';
import { nativeDestAvailable, nativeDestConnect } from './native-dest.js';
import { serveWsUdp } from './ws-udp.js';
import { gatePreAuthMessages } from './ws-preauth-cap.js';

/** The largest WebSocket message accepted (a Mux.Cool frame is at most ~64 KiB). */
const MAX_MESSAGE = 4 * 1024 * 1024;
/**
 * Mux.Cool sessions of one WebSocket that may wait for their first Shadowsocks chunk to decrypt
 * at once; a New beyond them is refused with End (error bit), as a session over the carrier's
 * bound. A client's sessions authenticate with their first data (most in the New frame itself),
 * and clients open at most their mux concurrency at once (v2ray's and Xray's default 8, Ladder's
 * 16, Clash/mihomo 1): without this bound anyone who knows the secret path could hold 1,024
 * sessions per WebSocket (~2.7 KB each) for the idle timeout.
 */
export const MAX_UNAUTHENTICATED_SESSIONS = 32;
/** Salts remembered for UDP over WebSocket (two generations of this many, as replay.ts keeps). */
const UDP_SALTS = 100_000;

export interface WebSocketEndpointOptions {
  /** The secret path, e.g. '/SECRET' (no trailing slash): streams at it and at `${it}/tcp`. */
  secretPath: string;
  /**
   * How long a WebSocket may sit without a byte before it is dropped while its dialect is still
   * undecided, and while a Mux.Cool carrier has no session (default: the server's idle timeout).
   */
  idleMs?: number;
  /**
   * Serve `${secretPath}/udp` (Outline's UDP over WebSocket: SIP004 and 2022 keys of the server,
   * usage counted to the key). Without it that path is not ours (decoy).
   */
  udp?: boolean | { idleMs?: number };
  /**
   * D14 cover for the server→client direction of Mux.Cool carriers (transport/mux-cover.ts): the
   * first writes padded with KeepAlive frames, on carriers whose client pads its own (Ladder's
   * client does by default): a client that sends KeepAlive data parses it. Clients that do not
   * (v2ray-plugin, Clash/mihomo, whose partial Mux.Cool would misread it) are never padded.
   * Default: the first 8 writes; `false` turns it off. Raw (non-Mux.Cool) streams have nowhere to
   * put padding.
   */
  cover?: MuxCoverOptions | false;
  /**
   * Dial the streams' destinations with the addon (./native-dest.ts: no net.Socket per session).
   * Default: where the addon has it, unless LADDER_NATIVE_DEST=0 or LADDER_NATIVE_RELAY=0.
   */
  nativeDest?: boolean;
}

export interface WebSocketEndpoints {
  /**
   * For the web front's 'upgrade' event on the secret path: accepts a WebSocket upgrade to one
   * of our endpoints and returns true; returns false (touching nothing) for any other path or a
   * malformed upgrade, so the caller serves the decoy.
   */
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, clientAddress: string | undefined): boolean;
  /** Drop every WebSocket and HTTPUpgrade connection accepted so far. */
  close(): void;
}

const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** Xray's early data: base64url of the first bytes, carried in Sec-WebSocket-Protocol. */
// base64url without padding, as Xray sends it: a padded value ('=') is one the ws library's own
// subprotocol parser refuses with its own 400 page, so it goes to the decoy instead.
const EARLY_DATA = /^[0-9A-Za-z_-]+$/;

/** What an upgrade request needs to be one ws will accept, checked before anything is sent. */
function validUpgrade(req: IncomingMessage): boolean {
  const h = req.headers;
  if (req.method !== 'GET') return false;
  if ((h.upgrade ?? '').toLowerCase() !== 'websocket') return false;
  const key = h['sec-websocket-key'];
  if (typeof key !== 'string' || !WS_KEY.test(key.trim())) return false;
  const version = h['sec-websocket-version'];
  if (version !== '13' && version !== '8') return false;
  const proto = h['sec-websocket-protocol'];
  if (proto !== undefined && !EARLY_DATA.test(proto.trim())) return false;
  return true;
}

function pathOf(url: string | undefined): string {
  const u = url ?? '';
  const q = u.indexOf('?');
  return q === -1 ? u : u.slice(0, q);
}

/**
 * Shadowsocks over WebSocket for the web front: `${secretPath}/tcp` and the bare `${secretPath}`
 * (v2ray-plugin's path is the path itself) carry a Shadowsocks stream in binary messages. The
 * dialect is decided per WebSocket from its first bytes: a Mux.Cool New frame (v2ray-plugin's
 * default mux=1, Clash/mihomo, sing-box) makes it a Mux.Cool carrier whose sessions are each a
 * Shadowsocks stream; anything else is one raw stream (Outline, Xray/v2rayNG, v2ray,
 * v2ray-plugin with mux=0); `${secretPath}/udp` carries Shadowsocks UDP packets when `udp` is on
 * (ws-udp.ts). Xray's early data in Sec-WebSocket-Protocol is echoed back and fed
 * in as the first bytes. `${secretPath}/up` is HTTPUpgrade (./httpupgrade.ts): the upgraded
 * connection itself carries the stream, raw or Mux.Cool as above. Query strings are ignored.
 *
 * Every stream goes to `server.handleStream` with the client address the front resolved, so
 * failures get the server's one reaction: no bytes back, the WebSocket held open until the peer
 * closes or the idle timeout.
 */
export function createWebSocketEndpoints(
  server: ShadowsocksServer,
  opts: WebSocketEndpointOptions,
): WebSocketEndpoints {
  const base = opts.secretPath.replace(/\/+$/, '');
  if (!base.startsWith('/') || base.length < 2) throw new Error('secretPath must look like /SECRET');
  const streamPaths = new Set([base, `${base}/tcp`]);
  /** HTTPUpgrade (./httpupgrade.ts): the upgraded connection is the stream, no WebSocket frames. */
  const upPath = `${base}/up`;
  /** HTTPUpgrade connections open now (dropped by close(), as the WebSockets are). */
  const upgraded = new Set<Duplex>();
  const idleMs = opts.idleMs ?? server.idleMs;
  const endDelayMs = muxEndDelayMs(); // LADDER_MUX_END_DELAY_MS, read once per web front
  const cover = opts.cover === false ? undefined : (opts.cover ?? {});
  const connect = (opts.nativeDest ?? true) && nativeDestAvailable() ? nativeDestConnect : undefined;
  const udp = opts.udp
    ? {
        ctx: server.udpContext,
        idleMs: (opts.udp === true ? undefined : opts.udp.idleMs) ?? DEFAULT_UDP_IDLE_MS,
        salts: new SaltFilter(UDP_SALTS),
        cache: new SubkeyCache(1024),
        sessions2022: new Map(),
      }
    : undefined;
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_MESSAGE,
    // Echo Xray's early data (validUpgrade let only one base64url token through).
    handleProtocols: (protocols) => protocols.values().next().value ?? false,
  });

  /**
   * One Shadowsocks stream (a WebSocket's, or an HTTPUpgrade connection): raw or Mux.Cool carrier.
   * `onAuthenticated`: its stream, or a session of its carrier, verified a key.
   */
  const serve = (stream: Duplex, clientAddress: string | undefined, onAuthenticated?: () => void): void => {
    detectDialect(stream, idleMs, (mux) => {
      const info = { remoteAddress: clientAddress, connect };
      if (!mux) {
        server.handleStream(stream, onAuthenticated ? { ...info, onAuthenticated } : info);
        return;
      }
      const carrier = new MuxConnection(stream, {
        role: 'server',
        idleMs,
        endDelayMs,
        maxUnauthenticated: MAX_UNAUTHENTICATED_SESSIONS,
        ...(cover ? { mirrorCover: cover } : {}),
        onSession: (session) =>
          server.handleStream(session, {
            ...info,
            onAuthenticated: () => {
              carrier.authenticated(session);
              onAuthenticated?.();
            },
          }),
      });
    });
  };

  const onStream = (ws: WebSocket, early: Buffer | undefined, clientAddress: string | undefined): void => {
    // Until a key verifies, a message over PRE_AUTH_MESSAGE_CAP is drained, not gathered.
    const gate = gatePreAuthMessages(ws);
    let stream: WsStream;
    try {
      stream = new WsStream(ws, { framing: 'server' });
    } catch {
      ws.terminate();
      return;
    }
    stream.on('error', () => {}); // whoever takes the stream over reports; undecided ones just close
    if (early && early.length > 0) stream.unshift(early);
    serve(stream, clientAddress, () => gate.authenticated());
  };

  return {
    onUpgrade(req, socket, head, clientAddress) {
      const path = pathOf(req.url);
      if (path === `${base}/udp` && udp && validUpgrade(req) && !req.headers['sec-websocket-protocol']) {
        // A datagram is one message of at most 64 KiB: larger ones are drained, never gathered.
        wss.handleUpgrade(
          req,
          socket,
          head,
          (ws) => (gatePreAuthMessages(ws, 80 * 1024), serveWsUdp(ws, { ...udp, clientAddress })),
        );
        return true;
      }
      if (path === upPath) {
        if (!validHttpUpgrade(req)) return false;
        socket.on('error', () => {}); // as for a WebSocket's: the stream's owner reports
        upgraded.add(socket);
        socket.once('close', () => upgraded.delete(socket));
        acceptHttpUpgrade(req, socket, head, (stream) => serve(stream, clientAddress));
        return true;
      }
      if (!streamPaths.has(path) || !validUpgrade(req)) return false;
      const proto = req.headers['sec-websocket-protocol']?.trim();
      const early = proto ? Buffer.from(proto, 'base64url') : undefined;
      wss.handleUpgrade(req, socket, head, (ws) => onStream(ws, early, clientAddress));
      return true;
    },
    close() {
      for (const s of upgraded) s.destroy();
      upgraded.clear();
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}

/**
 * Read the first bytes until they tell a Mux.Cool New frame from anything else, put them back,
 * and call `decided` (which attaches its 'data' listener), then resume. Undecided for `idleMs`: closed as the server
 * closes an idle unauthenticated connection.
 */
function detectDialect(stream: Duplex, idleMs: number, decided: (mux: boolean) => void): void {
  const parts: Buffer[] = [];
  let done = false;
  const timer = setTimeout(() => {
    if (!done) stream.end(() => stream.destroy());
  }, idleMs);
  timer.unref();
  const finish = (mux: boolean): void => {
    done = true;
    clearTimeout(timer);
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.pause();
    if (parts.length > 0) stream.unshift(Buffer.concat(parts));
    decided(mux);
    // The new owner listens for 'data' (as on a fresh socket); our pause() must not hold it.
    stream.resume();
  };
  const onData = (chunk: Buffer): void => {
    parts.push(chunk);
    const verdict = looksLikeMuxCoolNew(parts.length === 1 ? chunk : Buffer.concat(parts));
    if (verdict !== 'more') finish(verdict === 'yes');
  };
  // Ended before deciding (too few bytes for either): answer with our end, as the server does
  // to a TCP client that sends FIN before it authenticated.
  const onEnd = (): void => {
    done = true;
    clearTimeout(timer);
    stream.off('data', onData);
    stream.end();
  };
  stream.on('data', onData);
  stream.once('end', onEnd);
  stream.once('close', () => clearTimeout(timer));
}
