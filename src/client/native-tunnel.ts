/**
 * The client's raw Shadowsocks connections on the addon's native relay (native/relay_pair.cc):
 * once a tunnel is established, its bytes move in C++ on this thread's loop, with no net.Socket
 * events, streams or timers per read. On unless LADDER_NATIVE_RELAY=0, read once when the client
 * starts (index.ts). SOCKS5 connections only, and only those whose dialer offers
 * the codecs (DialedConnection.native: SIP004 straight over TCP, no WebSocket, not 2022).
 *
 * When: every connection starts on relay.ts. The hand-off comes once the first payload from the
 * server has been opened in JS and the connection moved DEFAULT_NATIVE_AFTER_BYTES (64 KiB; short
 * connections stay on relay.ts), so that everything before it stays where it was:
 * - the dialer's first write (salt, header, first data, with first-packet shaping) went out
 *   before the relay started; TLS fragmentation is a direct route's and never offers codecs;
 * - the server's salt has been read, so the decoder has its codec (the relay reads no salt);
 * - the wrapping dialers have seen the answer they wait for (answer-watch.ts settles, the
 *   failover/picker reports the endpoint's success) and watch nothing after it.
 * If JS still has unsent bytes for either socket then, the hand-off waits for its 'drain'.
 *
 * The roles, against relay_pair.cc's relayPair(clientFd, destFd, decoder, encoder, pending):
 * its "client" is the socket to the server (the wire side), its "destination" the application's:
 *   clientFd = the server socket: what is read there goes through `decoder` (the server -> app
 *              decoder, continuing from any chunk begun in JS) and is written to the app;
 *   destFd   = the app socket: what is read there goes through `encoder` (the app -> server
 *              encoder, whose salt went out in the first write) and is written to the server;
 *   pending  = [prefix: none, the salt is out; toClient: app bytes Node had read, encoded, for
 *              the server; toDest: server bytes Node had read, decoded, for the app];
 *   onClose(reason, up, down): up = wire bytes read from the server, down = wire bytes written
 *              to it (the relay's up/down are the server's view; the client's are the reverse).
 * Half-close, back-pressure and the idle timeout work as relay.ts's: a FIN Node already read is
 * read again from the descriptor, so one the JS relay passed on is passed on again (harmless).
 */
import type { Socket } from 'node:net';
import type { Logger } from '../shared/logger.js';
import { pipeConnection, type DialedConnection, type PipeOptions } from '../transport/dialer.js';
import { detach, socketFd, takeBuffered } from '../transport/native-handoff.js';
import { NATIVE_RELAY_REASON, type NativeRelay } from '../transport/native-sockets.js';
import type { RelayCloseReason, RelayHandle, Transform } from '../transport/relay.js';

/**
 * Bytes a connection moves on relay.ts before the hand-off. The hand-off costs about as much
 * client CPU as relaying some 100-200 KiB in JS saves (bench/conn-cost.ts: +150-450 us per short
 * connection handed over at its first answer), so connections that stay small stay on relay.ts.
 */
export const DEFAULT_NATIVE_AFTER_BYTES = 64 * 1024;

/** relay.ts's close reason for a native relay's end (a chunk that fails to open is an error there too). */
function closeReason(reason: number): RelayCloseReason {
  const r = NATIVE_RELAY_REASON[reason];
  return r === 'done' || r === 'idle' || r === 'aborted' ? r : 'error';
}

function hasPayload(out: Buffer | Buffer[] | undefined): boolean {
  if (out === undefined) return false;
  if (Array.isArray(out)) return out.some((b) => b.length > 0);
  return out.length > 0;
}

function flat(out: Buffer | Buffer[] | undefined): Buffer | undefined {
  const b = Array.isArray(out) ? Buffer.concat(out) : out;
  return b && b.length > 0 ? b : undefined;
}

/** The client's native relays: starts them, counts them, closes them all at shutdown. */
export class NativeTunnels {
  readonly #fns: NativeRelay;
  readonly #untrack: (s: Socket) => void;
  readonly #log: Logger;
  readonly #afterBytes: number;
  readonly #live = new Set<object>();
  #closed = false;

  /**
   * `untrack`: forget a socket the client tracks (it is destroyed at the hand-off, silently).
   * `afterBytes`: hand over only once this many bytes moved (both ways, wire and plain alike);
   * short connections then never pay for a hand-off they would not earn back.
   */
  constructor(
    fns: NativeRelay,
    untrack: (s: Socket) => void,
    log: Logger,
    afterBytes = DEFAULT_NATIVE_AFTER_BYTES,
  ) {
    this.#fns = fns;
    this.#untrack = untrack;
    this.#log = log;
    this.#afterBytes = afterBytes;
  }

  /** Native relays running. */
  get size(): number {
    return this.#live.size;
  }

  /**
   * pipeConnection (dialer.ts), and the hand-off to the native relay once the server's first
   * payload opened, when the connection can have one; relay.ts carries it otherwise.
   */
  pipe(app: Socket, conn: DialedConnection, opts: PipeOptions): void {
    const codecs = conn.native;
    const inner = conn.decode;
    const innerEncode = conn.encode;
    if (
      !codecs ||
      !inner ||
      !innerEncode ||
      socketFd(app) === undefined ||
      socketFd(conn.socket) === undefined
    ) {
      pipeConnection(app, conn, opts);
      return;
    }
    const server = conn.socket as Socket;
    let answered = false; // the server's first payload opened
    let moved = 0; // bytes read from either side so far
    let waiting = true;
    const due = (): void => {
      if (!answered || moved < this.#afterBytes) return;
      waiting = false;
      // After relay.ts wrote what this read gave (same handler, synchronously).
      process.nextTick(handOff);
    };
    const decode: Transform = (chunk) => {
      if (!waiting) return inner(chunk);
      moved += chunk.length;
      const out = inner(chunk);
      if (!answered && hasPayload(out)) answered = true;
      due();
      return out;
    };
    const encode: Transform = (chunk) => {
      if (waiting) {
        moved += chunk.length;
        due();
      }
      return innerEncode(chunk);
    };
    const handOff = (): void => {
      if (this.#closed || handle.closed || app.destroyed || server.destroyed) return;
      // Bytes still queued in Node would reach their socket after the relay's: wait for them.
      for (const s of [app, server]) {
        if (s.writableLength > 0) {
          // 'drain' comes only after a write that returned false; otherwise the next chunk retries.
          if (s.writableNeedDrain) s.once('drain', handOff);
          else waiting = true;
          return;
        }
      }
      this.#start(app, server, conn, decode, handle, opts);
    };
    const handle = pipeConnection(app, { ...conn, decode, encode }, opts);
  }

  #start(
    app: Socket,
    server: Socket,
    conn: DialedConnection,
    decode: Transform,
    handle: RelayHandle,
    opts: PipeOptions,
  ): void {
    const enc = conn.native!.encoder();
    const dec = conn.native!.decoder();
    const afd = socketFd(app);
    const sfd = socketFd(server);
    if (!enc || !dec || afd === undefined || sfd === undefined) return; // stays on relay.ts
    handle.release();
    for (const s of [app, server]) {
      s.removeAllListeners('data'); // read() below hands what it returns to 'data' listeners too
      s.removeAllListeners('drain');
      s.pause();
    }
    const fail = (): void => {
      // detach() drops the client's own 'close' listener too: forget the sockets here.
      this.#untrack(app);
      this.#untrack(server);
      detach(app);
      detach(server);
      opts.onClose?.('error');
    };
    let toServer: Buffer | undefined;
    let toApp: Buffer | undefined;
    try {
      const fromApp = takeBuffered(app);
      const fromServer = takeBuffered(server);
      toServer = fromApp ? flat(conn.encode!(fromApp)) : undefined;
      toApp = fromServer ? flat(decode(fromServer)) : undefined;
    } catch {
      fail(); // a chunk that does not open ends the connection, as on relay.ts
      return;
    }
    const box: { relay?: object } = {};
    const onClose = (reason: number): void => {
      if (box.relay) this.#live.delete(box.relay);
      opts.onClose?.(closeReason(reason));
    };
    try {
      box.relay = this.#fns.relayPair(
        sfd,
        afd,
        dec,
        enc,
        [undefined, toServer, toApp],
        Math.max(1, Math.ceil(opts.idleTimeoutMs)), // relayPair takes whole milliseconds only
        onClose,
      );
    } catch {
      fail(); // no descriptor to spare, say
      return;
    }
    this.#live.add(box.relay);
    this.#untrack(app);
    this.#untrack(server);
    detach(app);
    detach(server);
    if (this.#log.isLevelEnabled('debug')) this.#log.debug('tunnel moved to the native relay');
  }

  /** Close every native relay now (client shutdown); no more hand-offs after this. */
  closeAll(): void {
    this.#closed = true;
    for (const r of [...this.#live]) this.#fns.relayClose(r);
  }
}
