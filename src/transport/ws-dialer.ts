import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import WebSocket from 'ws';
import { DEFAULT_CONNECT_TIMEOUT_MS, UpstreamDialError, type NextHop } from './dialer.js';
import { upgradeRefused } from './upgrade-refused.js';
import { dialHttpUpgrade } from './httpupgrade-dialer.js';
import { MuxConnection, muxEndDelayMs } from './mux.js';
import type { MuxCoverOptions } from './mux-cover.js';
import { pinnedTlsConnect, webTlsOptions, type WebTlsEndpoint } from './web-tls.js';
import { WsStream } from './ws-stream.js';
import { envSwitch } from '../shared/env.js';

export interface WsEndpoint extends WebTlsEndpoint {
  /** ws://ADDRESS:PORT/PATH or wss://…: the address actually dialled (a CDN edge, say). */
  url: string;
  /** Host header (default: the URL's host). */
  host?: string | undefined;
  connectTimeoutMs?: number | undefined;
}

/**
 * Open a WebSocket to `ep` and resolve with a WsStream over it. Host and SNI are set apart from
 * the dialled address (domain fronting through a CDN edge); no compression, no subprotocol.
 */
export async function dialWebSocket(ep: WsEndpoint, signal?: AbortSignal): Promise<WsStream> {
  const ws = await openWebSocket(ep, signal);
  try {
    // Inside TLS the client masks with a zero key (openWebSocket), so WsStream may frame itself.
    return new WsStream(ws, new URL(ep.url).protocol === 'wss:' ? { framing: 'zero-mask' } : {});
  } catch (err) {
    ws.terminate();
    throw new UpstreamDialError('ERR_CLOSED', (err as Error).message);
  }
}

const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

/** Open a WebSocket to `ep` (as dialWebSocket) and resolve with it once open. */
export function openWebSocket(ep: WsEndpoint, signal?: AbortSignal): Promise<WebSocket> {
  const url = new URL(ep.url);
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
    throw new Error('WebSocket URL must be ws:// or wss://');
  const host = ep.host ?? url.host;
  const timeoutMs = ep.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const { pin, ...t } = webTlsOptions(ep, host);
  const tls =
    url.protocol === 'wss:'
      ? { ...t, ...(pin ? { createConnection: (o: ConnectionOptions) => pinnedTlsConnect(o, pin) } : {}) }
      : {};
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new UpstreamDialError('ERR_ABORTED', 'dial aborted'));
      return;
    }
    const ws = new WebSocket(url, {
      headers: { Host: host },
      perMessageDeflate: false,
      // Inside TLS the masking key is invisible to everyone but the server (or the CDN that
      // terminates TLS, which unmasks without checking it): an all-zero key makes ws skip
      // masking, a copy plus a JavaScript XOR of every byte we send, and the server's unmasking.
      // On plain ws:// the key is on the wire, so it stays random there (RFC 6455 §5.3).
      ...(url.protocol === 'wss:' ? { generateMask: zeroMask } : {}),
      handshakeTimeout: timeoutMs,
      maxPayload: 4 * 1024 * 1024,
      ...tls,
    });
    const cleanup = (): void => {
      ws.off('open', onOpen);
      ws.off('error', onError);
      ws.off('unexpected-response', onResponse);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: UpstreamDialError): void => {
      cleanup();
      ws.on('error', () => {});
      ws.terminate();
      reject(err);
    };
    const onOpen = (): void => {
      cleanup();
      resolve(ws);
    };
    const onError = (err: NodeJS.ErrnoException): void =>
      fail(
        new UpstreamDialError(
          /timed out|timeout/i.test(err.message) ? 'ERR_CONNECT_TIMEOUT' : 'ERR_CONNECT',
          `WebSocket connect failed: ${err.code ?? err.message}`,
          { cause: err },
        ),
      );
    const onResponse = (_req: unknown, res: { statusCode?: number }): void =>
      fail(upgradeRefused('WebSocket upgrade', res.statusCode));
    const onAbort = (): void => fail(new UpstreamDialError('ERR_ABORTED', 'dial aborted'));
    ws.once('open', onOpen);
    ws.once('error', onError);
    ws.once('unexpected-response', onResponse);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface WsTransportOptions extends WsEndpoint {
  /**
   * HTTPUpgrade instead of WebSocket (httpupgrade-dialer.ts: Xray's and sing-box's
   * "httpupgrade", mihomo's `v2ray-http-upgrade`): the same upgrade request, then raw bytes.
   */
  httpUpgrade?: boolean | undefined;
  /** HTTPUpgrade: send with the request, without waiting for the 101 (httpupgrade-dialer.ts `fastOpen`). */
  fastOpen?: boolean | undefined;
  /** Carry every stream as a Mux.Cool session over shared WebSockets (v2ray-plugin's mux=1). */
  mux?: boolean | undefined;
  /** Mux: most concurrent sessions on one WebSocket before another is opened (default 16). */
  maxSessions?: number | undefined;
  /** Mux: close a WebSocket after this long without sessions (default 30 s). */
  idleMs?: number | undefined;
  /**
   * Mux: D14 cover (transport/mux-cover.ts). Default: the first 8 messages of each WebSocket
   * padded to browsing-like sizes, no idle cover; `false` turns it off.
   */
  cover?: MuxCoverOptions | false | undefined;
}

/**
 * A NextHop over WebSocket: without mux one WebSocket per stream; with mux a pool of WebSockets,
 * each carrying up to `maxSessions` Mux.Cool sessions, closed after `idleMs` without any.
 */
export function webSocketNextHop(opts: WsTransportOptions): NextHop & { close(): void } {
  const dial: NextHop = opts.httpUpgrade
    ? (signal) => dialHttpUpgrade(opts, signal)
    : (signal) => dialWebSocket(opts, signal);
  if (!opts.mux) return Object.assign(dial, { close: () => {} });
  const pool = new MuxPool(opts, dial);
  const hop = (signal?: AbortSignal): Promise<Duplex> => pool.open(signal);
  return Object.assign(hop, { close: () => pool.close() });
}

/**
 * The most carriers a pool opens to keep short exchanges off the carriers of bulk sessions; past
 * it they share (a browser keeps 6 connections per host).
 */
const MAX_CARRIERS = 6;

/** Client Mux.Cool carriers over WebSockets (or HTTPUpgrade streams), shared by many streams. */
export class MuxPool {
  readonly #opts: WsTransportOptions;
  readonly #dialCarrier: NextHop;
  readonly #maxSessions: number;
  readonly #idleMs: number;
  readonly #carriers = new Set<MuxConnection>();
  #dialing: Promise<MuxConnection> | undefined;
  #closed = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** LADDER_MUX_END_DELAY_MS, read once per pool (mux.ts muxEndDelayMs). */
  readonly #endDelayMs = muxEndDelayMs();
  /** New sessions avoid carriers with a bulk session (LADDER_MUX_BULK_APART=0: they share). */
  readonly #bulkApart = envSwitch('LADDER_MUX_BULK_APART');

  /** `dial` opens one carrier (default: a WebSocket to `opts`). */
  constructor(opts: WsTransportOptions, dial?: NextHop) {
    this.#opts = opts;
    this.#dialCarrier = dial ?? ((signal) => dialWebSocket(opts, signal));
    this.#maxSessions = opts.maxSessions ?? 16;
    this.#idleMs = opts.idleMs ?? 30_000;
  }

  /** WebSockets open now. */
  get carriers(): number {
    return this.#carriers.size;
  }

  /**
   * A carrier with room, not carrying a bulk session (one that moved MUX_BULK_BYTES: a short
   * exchange on its carrier would wait behind the download's data in the carrier's buffers, in
   * both ends and the network); with none, one with room when MAX_CARRIERS are open already.
   */
  #pick(): MuxConnection | undefined {
    let busy: MuxConnection | undefined;
    for (const c of this.#carriers) {
      if (!c.usable || c.size >= this.#maxSessions) continue;
      if (!this.#bulkApart || !c.bulk) return c;
      busy ??= c;
    }
    return busy && this.#carriers.size >= MAX_CARRIERS ? busy : undefined;
  }

  async open(signal?: AbortSignal): Promise<Duplex> {
    for (;;) {
      const free = this.#pick();
      if (free) return free.open();
      // One WebSocket being opened at a time; callers that find it full open the next.
      this.#dialing ??= this.#dial(signal).finally(() => (this.#dialing = undefined));
      const c = await this.#dialing;
      if (c.usable && c.size < this.#maxSessions) return c.open();
    }
  }

  /**
   * A session became bulk: when no carrier without one is left, open one now, so the next short
   * exchange finds it ready rather than waiting for a handshake (or behind the download).
   */
  #spare(): void {
    if (!this.#bulkApart || this.#dialing || this.#carriers.size >= MAX_CARRIERS) return;
    for (const c of this.#carriers) if (c.usable && !c.bulk && c.size < this.#maxSessions) return;
    this.#dialing = this.#dial().finally(() => (this.#dialing = undefined));
    this.#dialing.catch(() => {}); // the next open() dials again and reports its own failure
  }

  async #dial(signal?: AbortSignal): Promise<MuxConnection> {
    const stream = await this.#dialCarrier(signal);
    stream.on('error', () => {});
    if (this.#closed) {
      // closed meanwhile (a spare dialled just before the client stopped): not kept open
      stream.destroy();
      throw new UpstreamDialError('ERR_ABORTED', 'client closed');
    }
    const c = new MuxConnection(stream, {
      role: 'client',
      endDelayMs: this.#endDelayMs,
      onBulk: () => this.#spare(),
      ...(this.#opts.cover === false ? {} : { cover: this.#opts.cover ?? {} }),
      onClose: () => this.#carriers.delete(c),
    });
    this.#carriers.add(c);
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#sweep(), Math.max(1000, this.#idleMs / 4));
      this.#timer.unref();
    }
    return c;
  }

  #sweep(): void {
    const now = Date.now();
    for (const c of this.#carriers) {
      if (!c.usable) {
        if (c.size === 0) this.#carriers.delete(c);
        continue;
      }
      if (c.size === 0 && now - c.lastActive >= this.#idleMs) {
        c.end();
        this.#carriers.delete(c);
      }
    }
    if (this.#carriers.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#carriers) c.destroy();
    this.#carriers.clear();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
