import type { SocksAddress } from '../protocol/socks5/address.js';
import {
  encodeUotDatagram,
  encodeUotRequest,
  UOT_MAGIC_V1,
  UOT_MAGIC_V2,
  UotReader,
  type UotVersion,
} from '../protocol/uot.js';
import type { Dialer } from './dialer.js';
import { DialerStream } from './dialer-stream.js';

/** Datagrams queued on the stream beyond this are dropped (UDP may lose; memory may not grow). */
const MAX_BUFFERED = 1024 * 1024;

/**
 * One UDP association as sing's UDP-over-TCP (protocol/uot.ts) inside one tunnel stream: for a
 * server with no packet endpoint the client can reach (a CDN that carries only the WebSocket, a
 * sing-box or mihomo server). The stream goes to the magic name through `dialer` (raw, WebSocket
 * or Mux.Cool as the key says) and is opened with the first datagram, which leaves in the same
 * write as the tunnel header (v2: after a non-connect request naming it, as mihomo does); every
 * datagram carries its address both ways. When the stream ends, `onClose` tells the association.
 */
export class UotTunnel {
  readonly #version: UotVersion;
  readonly #stream: DialerStream;
  readonly #reader = new UotReader(1); // replies are address-framed whichever the version
  #opened = false;
  #closed = false;
  /** Datagrams dropped on a full queue or with an address that cannot be framed. */
  dropped = 0;
  onMessage: ((from: SocksAddress, payload: Buffer) => void) | undefined;
  onClose: (() => void) | undefined;

  constructor(dialer: Dialer, version: UotVersion) {
    this.#version = version;
    const host = version === 2 ? UOT_MAGIC_V2 : UOT_MAGIC_V1;
    this.#stream = new DialerStream(dialer, { type: 'domain', host, port: 0 });
    this.#stream.on('data', (chunk: Buffer) => {
      let got;
      try {
        got = this.#reader.push(chunk);
      } catch {
        return this.close(); // garbage from the server: the association is over
      }
      for (const d of got) if (d.address) this.onMessage?.(d.address, d.payload);
    });
    this.#stream.on('error', () => this.#ended());
    this.#stream.on('end', () => this.#ended());
    this.#stream.on('close', () => this.#ended());
  }

  send(to: SocksAddress, payload: Uint8Array): void {
    if (this.#closed) return;
    if (this.#stream.writableLength > MAX_BUFFERED) {
      this.dropped++;
      return;
    }
    const frame = encodeUotDatagram(to, payload); // throws for an unencodable address: the caller drops
    if (!this.#opened && this.#version === 2) {
      this.#opened = true;
      this.#stream.write(Buffer.concat([encodeUotRequest({ connect: false, destination: to }), frame]));
      return;
    }
    this.#opened = true;
    this.#stream.write(frame);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stream.destroy();
  }

  #ended(): void {
    const was = this.#closed;
    this.close();
    if (!was) this.onClose?.();
  }
}
