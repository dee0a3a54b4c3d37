/**
 * Shadowsocks (SIP004) clients bound to a chosen loopback source address (127.0.0.2, 127.0.0.3,
 * …), for the device-limit tests: one TCP stream or one UDP socket each, which say whether the
 * echo behind the server answered, or whether the server reacted as to a wrong key (nothing back,
 * the connection held open; a datagram dropped).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { decodeUdp2017, encodeUdp2017 } from '../../src/protocol/shadowsocks/udp.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';

export interface DeviceKey {
  readonly method: string;
  readonly password: string;
}

/** One tunnel's stream: what came back, and whether the server closed it. */
export interface DeviceStream {
  readonly socket: net.Socket;
  /** Send more plaintext through the tunnel. */
  send(data: string): void;
  /** The plaintext received so far. */
  text(): string;
  /** True once the server ended or reset the connection. */
  closed(): boolean;
  close(): void;
}

/**
 * A tunnel from `localAddress` through the server at `port` to `target` (an echo), with
 * `payload` in the first write.
 */
export function openStream(
  port: number,
  localAddress: string,
  key: DeviceKey,
  target: number,
  payload: string,
): Promise<DeviceStream> {
  const m = getAeadMethod(key.method);
  const master = evpBytesToKey(key.password, m.keySize);
  const enc = new AeadEncoder(m, master);
  const dec = new AeadDecoder(m, master);
  let text = '';
  let closed = false;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    socket.on('data', (d: Buffer) => {
      try {
        for (const p of dec.push(d)) text += p.toString();
      } catch {
        text += '\u0000(undecodable)';
      }
    });
    socket.on('end', () => (closed = true));
    socket.on('close', () => (closed = true));
    socket.on('error', () => (closed = true));
    const write = (s: string): void => void socket.write(enc.encode(Buffer.from(s)));
    socket.once('connect', () => {
      socket.write(
        enc.encode(Buffer.concat([encodeAddress(toSocksAddress('127.0.0.1', target)), Buffer.from(payload)])),
      );
      resolve({
        socket,
        send: write,
        text: () => text,
        closed: () => closed,
        close: () => socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}

/**
 * What a tunnel from `localAddress` gets within `ms`: 'echo' (the payload came back), or
 * 'held' (nothing back and still open: a wrong key's reaction), or 'closed'. The stream stays
 * open for the caller unless `close`.
 */
export async function tryStream(
  port: number,
  localAddress: string,
  key: DeviceKey,
  target: number,
  ms = 4000,
): Promise<{ outcome: 'echo' | 'held' | 'closed'; stream: DeviceStream }> {
  const payload = `hello from ${localAddress} ${Math.random()}`;
  const stream = await openStream(port, localAddress, key, target, payload);
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (stream.text() === payload) return { outcome: 'echo', stream };
    if (stream.closed()) return { outcome: 'closed', stream };
    await new Promise((r) => setTimeout(r, 20));
  }
  return { outcome: stream.text() === payload ? 'echo' : stream.closed() ? 'closed' : 'held', stream };
}

/** A UDP client on `localAddress`: send() one datagram to the echo, whether its reply comes. */
export async function udpClient(
  port: number,
  localAddress: string,
  key: DeviceKey,
  target: number,
): Promise<{ echoes(ms?: number): Promise<boolean>; close(): void }> {
  const m = getAeadMethod(key.method);
  const master = evpBytesToKey(key.password, m.keySize);
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, localAddress, r));
  const got: string[] = [];
  sock.on('message', (msg) => {
    try {
      got.push(decodeUdp2017(m, master, msg).payload.toString());
    } catch {
      /* not ours */
    }
  });
  return {
    async echoes(ms = 1000) {
      const payload = `udp ${localAddress} ${Math.random()}`;
      sock.send(
        encodeUdp2017(m, master, toSocksAddress('127.0.0.1', target), Buffer.from(payload)),
        port,
        '127.0.0.1',
      );
      const until = Date.now() + ms;
      while (Date.now() < until) {
        if (got.includes(payload)) return true;
        await new Promise((r) => setTimeout(r, 20));
      }
      return got.includes(payload);
    },
    close: () => sock.close(),
  };
}
