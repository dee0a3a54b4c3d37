import dgram from 'node:dgram';
import net from 'node:net';
import { encodeReply, encodeUdpHeader, parseUdpDatagram, REP } from '../protocol/socks5/socks5.js';
import { toSocksAddress } from '../protocol/socks5/address.js';
import type { Clock } from '../shared/clock.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { addrKey, addrOf, ADDR_SIZE, BatchUdpSocket } from '../transport/batch-udp.js';
import { FastUdpSender } from '../transport/fast-udp.js';
import { UdpTunnel, UdpTunnelKey, type UdpTunnelOptions } from '../transport/udp-tunnel.js';
import type { Dialer } from '../transport/dialer.js';
import type { WsEndpoint } from '../transport/ws-dialer.js';
import type { UdpAssociateRequest } from './socks5-inbound.js';

export interface UdpAssociateOptions {
  /** The server (host, port) and key (method, password: SIP004 or 2022 with optional iPSK:uPSK). */
  server: Pick<UdpTunnelOptions, 'host' | 'port' | 'method' | 'password'> & {
    /** The key's WebSocket transport: associations go to its packet endpoint, not the UDP port. */
    websocket?: WsEndpoint | undefined;
    /**
     * UDP-over-TCP (the key's `uot=`): each association is one tunnel stream through `dialer` (the
     * key's own, so raw, WebSocket or Mux.Cool as the key says), whatever `websocket` says.
     */
    udpOverTcp?: { dialer: Dialer; version: 1 | 2 } | undefined;
  };
  logger?: Logger;
  clock?: Clock;
  /**
   * How long an association may send datagrams without one reply before the log says the server
   * may relay no UDP (default 10 s; once per handler, i.e. per endpoint).
   */
  noReplyWarnMs?: number;
}

/** The default of UdpAssociateOptions.noReplyWarnMs. */
export const NO_REPLY_WARN_MS = 10_000;

export interface UdpAssociateHandler {
  (req: UdpAssociateRequest): void;
  /** Associations currently open. */
  readonly active: number;
  /** Close every association (client shutdown). */
  closeAll(): void;
}

/** What an association needs from its tunnel (the UDP port's or the WebSocket one). */
type PacketTunnel = Pick<UdpTunnel, 'send' | 'close' | 'onMessage'>;

/**
 * SOCKS5 UDP ASSOCIATE (RFC 1928 §7) over the Shadowsocks server's UDP relay, or, for a key with
 * a WebSocket transport, over the web front's packet endpoint (one WebSocket per association,
 * ending the association when it ends), or, for a key that says `uot=`, as UDP-over-TCP in one
 * tunnel stream per association (ending with it). Pass the result as
 * the SOCKS5 inbound's `udpAssociate` option. Each association binds a local UDP socket on the
 * inbound's own address, answers the request with it, accepts datagrams only from the IP of the
 * TCP control connection, drops fragments (FRAG != 0), and lives exactly as long as the control
 * connection.
 */
export function createUdpAssociate(opts: UdpAssociateOptions): UdpAssociateHandler {
  const log = opts.logger ?? silentLogger;
  // Why associations fail, at the default level once per reason (each association repeats it).
  const told = new Set<string>();
  const setupFailed = (err: unknown, ws: boolean, uot: boolean): void => {
    const reason = udpSetupFailure(err, ws && !uot);
    if (told.has(reason)) log.debug({ err: (err as Error).message }, 'udp associate setup failed');
    else {
      told.add(reason);
      log.warn(reason);
    }
  };
  // Datagrams sent and not one reply in noReplyWarnMs: said once for this endpoint.
  const silence = silenceWatch(
    opts.noReplyWarnMs ?? NO_REPLY_WARN_MS,
    noReplyAdvice(
      opts.noReplyWarnMs ?? NO_REPLY_WARN_MS,
      !!opts.server.websocket && !opts.server.udpOverTcp,
      !!opts.server.udpOverTcp,
    ),
    log,
  );
  // Parse the key once (bad keys fail here, at startup, with a message naming the field).
  const key = new UdpTunnelKey(opts.server.method, opts.server.password);
  const live = new Set<() => void>();

  const handler = (req: UdpAssociateRequest): void => {
    const control = req.socket;
    const localIp = control.localAddress ?? '127.0.0.1';
    const clientIp = control.remoteAddress ?? '';
    let closed = false;
    let local: dgram.Socket | undefined;
    let batch: BatchUdpSocket | undefined;
    let tunnel: PacketTunnel | undefined;
    let app: { address: string; port: number } | undefined;
    const watch = silence.association();

    const close = (): void => {
      if (closed) return;
      closed = true;
      watch.stop();
      live.delete(close);
      tunnel?.close();
      local?.close();
      batch?.close();
      control.destroy();
    };
    live.add(close);
    control.on('close', close);
    control.on('error', close);
    control.on('end', close);
    control.resume(); // the control connection carries nothing more; read and discard

    const fail = (): void => {
      if (closed) return;
      control.end(encodeReply(REP.GENERAL_FAILURE));
      close();
    };

    /**
     * The application side on the addon's batched socket: datagrams only from the control
     * connection's IP (compared as address bytes), replies to the application's latest port.
     */
    const startBatched = (t: PacketTunnel): boolean => {
      const expected = addrOf(clientIp.startsWith('::ffff:') ? clientIp.slice(7) : clientIp, 0);
      if (!expected || !BatchUdpSocket.available() || net.isIP(localIp) === 0) return false;
      let appKey = '';
      let appRaw: Buffer | undefined;
      const fromClient = (addrs: Uint8Array, off: number): boolean => {
        if (addrs[off] !== expected[0]) return false;
        for (let i = 4; i < ADDR_SIZE; i++) if (addrs[off + i] !== expected[i]) return false;
        return true;
      };
      try {
        batch = BatchUdpSocket.bind(net.isIP(localIp) === 6 ? 6 : 4, localIp, 0, (msg, addrs, off) => {
          if (closed || !fromClient(addrs, off)) return;
          toTunnel(t, msg, () => {
            watch.sent();
            const k = addrKey(addrs, off);
            if (k !== appKey) {
              appKey = k;
              appRaw = Buffer.from(addrs.subarray(off, off + ADDR_SIZE));
            }
          });
        });
      } catch (err) {
        log.debug({ err: (err as Error).message }, 'batched UDP socket unavailable; using node:dgram');
        return false;
      }
      const b = batch;
      t.onMessage = (from, payload) => {
        watch.replied();
        if (!appRaw || closed) return;
        b.send(Buffer.concat([encodeUdpHeader(from), payload]), appRaw, 0);
      };
      control.write(encodeReply(REP.SUCCEEDED, toSocksAddress(localIp, b.port)));
      return true;
    };

    void (async () => {
      try {
        const ws = opts.server.websocket;
        const uot = opts.server.udpOverTcp;
        if (uot) {
          const { UotTunnel } = await import('../transport/uot-tunnel.js');
          const t = new UotTunnel(uot.dialer, uot.version);
          t.onClose = close;
          tunnel = t;
        } else if (ws) {
          // The WebSocket code (ws) is loaded at the first UDP association over it, as the TCP
          // side loads it at the first dial (client/key.ts): idle clients do not carry it.
          const { WsUdpTunnel } = await import('../transport/ws-udp-tunnel.js');
          const t = await WsUdpTunnel.open(ws, key, opts.clock);
          t.onClose = close;
          tunnel = t;
        } else {
          tunnel = await UdpTunnel.open(
            { ...opts.server, ...(opts.clock ? { clock: opts.clock } : {}) },
            key,
          );
        }
        if (closed) {
          tunnel.close();
          return;
        }
        if (startBatched(tunnel)) return;
        const type = net.isIP(localIp) === 6 ? 'udp6' : 'udp4';
        const sock = dgram.createSocket(type);
        local = sock;
        await new Promise<void>((resolve, reject) => {
          sock.once('error', reject);
          sock.bind(0, localIp, () => {
            sock.off('error', reject);
            resolve();
          });
        });
        sock.on('error', () => undefined);
      } catch (err) {
        setupFailed(err, !!opts.server.websocket, !!opts.server.udpOverTcp);
        fail();
        return;
      }
      if (closed) {
        tunnel.close();
        local.close();
        return;
      }
      const sock = local;
      const sender = new FastUdpSender(sock, net.isIP(localIp) === 6 ? 6 : 4);
      const t = tunnel;
      sock.on('message', (msg, rinfo) => {
        if (rinfo.address !== clientIp && !sameLoopback(rinfo.address, clientIp)) return;
        toTunnel(t, msg, () => {
          watch.sent();
          app = { address: rinfo.address, port: rinfo.port };
        });
      });
      t.onMessage = (from, payload) => {
        watch.replied();
        if (!app || closed) return;
        const head = encodeUdpHeader(from);
        sender.send(Buffer.concat([head, payload]), app.port, app.address);
      };
      const bound = sock.address();
      control.write(encodeReply(REP.SUCCEEDED, toSocksAddress(bound.address, bound.port)));
    })();
  };

  return Object.assign(handler, {
    get active() {
      return live.size;
    },
    closeAll: () => {
      for (const c of [...live]) c();
    },
  }) as UdpAssociateHandler;
}

/**
 * One datagram from the application into the tunnel: the SOCKS5 UDP header parsed off,
 * fragments dropped (no reassembly; RFC 1928 allows dropping), `accepted` called to remember
 * where replies go, then sealed and sent. Malformed datagrams and unencodable addresses are dropped.
 */
function toTunnel(t: PacketTunnel, msg: Buffer, accepted: () => void): void {
  let d: ReturnType<typeof parseUdpDatagram>;
  try {
    d = parseUdpDatagram(msg);
  } catch {
    return;
  }
  if (d.frag !== 0) return;
  accepted();
  try {
    t.send(d.address, d.data);
  } catch {
    // unencodable address: drop
  }
}

function sameLoopback(a: string, b: string): boolean {
  const strip = (x: string): string => (x.startsWith('::ffff:') ? x.slice(7) : x);
  return strip(a) === strip(b);
}

/**
 * The one line that says why UDP ASSOCIATE could not be set up. A web front answering its packet
 * endpoint with HTTP 404 serves no UDP (a server without --udp): the application only sees a
 * SOCKS5 failure reply, so the log says what to change. Names no server or path.
 */
export function udpSetupFailure(err: unknown, overWebSocket: boolean): string {
  const msg = (err as Error).message ?? String(err);
  if (overWebSocket && /upgrade refused \(HTTP 404\)/.test(msg))
    return "UDP ASSOCIATE refused: the server's web front does not relay UDP (its packet endpoint answered HTTP 404; the server needs --udp, or managed mode)";
  return `UDP ASSOCIATE refused: the relay could not be set up (${msg})`;
}

/**
 * Per association: the first datagram sent starts a timer that the first reply stops; when it
 * fires, `advice` is logged (at warn) unless it was already, for any association of this endpoint.
 * A server that relays no UDP drops the datagrams without a word (no ICMP through the tunnel, no
 * error), so this is the only sign the user gets.
 */
function silenceWatch(
  ms: number,
  advice: string,
  log: Logger,
): { association(): { sent(): void; replied(): void; stop(): void } } {
  let told = false;
  return {
    association() {
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      const stop = (): void => {
        done = true;
        if (timer) clearTimeout(timer);
        timer = undefined;
      };
      return {
        sent() {
          if (done || timer || told) return;
          timer = setTimeout(() => {
            timer = undefined;
            done = true;
            if (told) return;
            told = true;
            log.warn(advice);
          }, ms);
          timer.unref();
        },
        replied: stop,
        stop,
      };
    },
  };
}

/**
 * The one line for datagrams that got no reply at all. Names no server, destination or address.
 * `ladder probe --servers` checks TCP only (docs/probe.md), so its "ok" says nothing about UDP.
 */
export function noReplyAdvice(ms: number, overWebSocket: boolean, overTcp: boolean): string {
  const after = ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
  const seconds = `datagrams sent through the tunnel have had no reply at all for ${after}`;
  if (overTcp)
    return `UDP: ${seconds}: the server may not take UDP-over-TCP (uot=) or relay UDP, or the destinations do not answer; \`ladder probe --servers\` checks TCP only, so its ok says nothing about UDP`;
  const where = overWebSocket
    ? "a web-front key's datagrams go to the server's packet endpoint, which the server must serve (--udp, or managed mode)"
    : 'an unmanaged `ladder server` relays UDP only with --udp; the managed server does by default';
  return `UDP: ${seconds}: the server may not relay UDP (${where}), or the destinations do not answer; \`ladder probe --servers\` checks TCP only, so its ok says nothing about UDP`;
}
