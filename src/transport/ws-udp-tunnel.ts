import type WebSocket from 'ws';
import type { SocksAddress } from '../protocol/socks5/address.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { openOrUndefined, type UdpTunnelKey } from './udp-tunnel.js';
import { openWebSocket, type WsEndpoint } from './ws-dialer.js';

/** Datagrams queued on the WebSocket beyond this are dropped (UDP may lose; memory may not grow). */
const MAX_BUFFERED = 1024 * 1024;

/**
 * The packet endpoint next to a stream URL: Outline's `/SECRET/tcp` pairs with `/SECRET/udp`, and
 * v2ray-plugin's bare `/SECRET` (Ladder serves streams there too) with `/SECRET/udp`. The query
 * string is kept.
 */
export function packetUrlOf(streamUrl: string): string {
  const u = new URL(streamUrl);
  const path = u.pathname.replace(/\/+$/, '');
  u.pathname = path.endsWith('/tcp') ? `${path.slice(0, -4)}/udp` : `${path}/udp`;
  return u.toString();
}

/**
 * One UDP association over WebSocket (Outline's dialect, which Ladder's web front serves): one
 * sealed Shadowsocks UDP packet per binary message each way, one WebSocket per association, so
 * UDP goes where only TCP/443 and a CDN reach. The key's edition seals as on the UDP port
 * (UdpTunnelKey: SIP004 salt per packet, or a SIP022 client session). Replies that do not open
 * are dropped; when the WebSocket ends, `onClose` tells the association.
 */
export class WsUdpTunnel {
  readonly #ws: WebSocket;
  readonly #codec: ReturnType<UdpTunnelKey['codec']>;
  readonly #clock: Clock;
  #closed = false;
  /** Replies dropped (do not authenticate or replayed) and datagrams dropped on a full queue. */
  dropped = 0;
  onMessage: ((from: SocksAddress, payload: Buffer) => void) | undefined;
  onClose: (() => void) | undefined;

  private constructor(ws: WebSocket, key: UdpTunnelKey, clock: Clock) {
    this.#ws = ws;
    this.#codec = key.codec();
    this.#clock = clock;
    ws.on('message', (msg: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      const r = openOrUndefined(this.#codec, msg, this.#clock.now());
      if (r) this.onMessage?.(r.address, r.payload);
      else this.dropped++;
    });
    ws.on('error', () => undefined);
    ws.once('close', () => {
      const was = this.#closed;
      this.#closed = true;
      if (!was) this.onClose?.();
    });
  }

  /** Open the packet endpoint paired with `stream` (see packetUrlOf), Host/SNI/TLS as for streams. */
  static async open(stream: WsEndpoint, key: UdpTunnelKey, clock: Clock = systemClock): Promise<WsUdpTunnel> {
    const ws = await openWebSocket({ ...stream, url: packetUrlOf(stream.url) });
    return new WsUdpTunnel(ws, key, clock);
  }

  send(to: SocksAddress, payload: Uint8Array): void {
    if (this.#closed) return;
    if (this.#ws.bufferedAmount > MAX_BUFFERED) {
      this.dropped++;
      return;
    }
    this.#ws.send(this.#codec.seal(to, payload, this.#clock.now()), { binary: true });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ws.close(1000);
    // A peer that never answers the close frame does not keep the socket.
    setTimeout(() => this.#ws.terminate(), 2000).unref();
  }
}
