import net from 'node:net';
import { AeadDecoder, AeadEncoder } from '../../src/protocol/shadowsocks/aead.js';
import { evpBytesToKey } from '../../src/protocol/shadowsocks/kdf.js';
import { getAeadMethod } from '../../src/protocol/shadowsocks/methods.js';
import { encodeAddress, toSocksAddress } from '../../src/protocol/socks5/address.js';

/**
 * A minimal Shadowsocks AEAD client over a raw socket, for tests and probes of the server (not
 * the product client: no SOCKS inbound, no retries). Records the exact wire bytes in both
 * directions so tests can replay or reflect them.
 */
export interface TestTunnel {
  readonly socket: net.Socket;
  /** Wire bytes we sent (first write = salt + address + initial data). */
  readonly sentWire: Buffer[];
  /** Wire bytes the server sent. */
  readonly receivedWire: Buffer[];
  /** Decrypt failures from the server stream (should stay empty). */
  readonly errors: unknown[];
  send(data: Uint8Array): void;
  /** Wait until at least `n` plaintext bytes arrived; resolves with all received so far. */
  read(n: number, timeoutMs?: number): Promise<Buffer>;
  /** Resolves when the server closed (FIN or RST), with how it closed. */
  readonly closed: Promise<{ kind: 'fin' | 'rst' | 'close'; at: number }>;
  end(): void;
  destroy(): void;
}

export interface TestTunnelOptions {
  port: number;
  host?: string;
  method: string;
  password: string;
  /** Destination host and port sent in the target header. */
  target: { host: string; port: number };
  /** Application bytes to send together with the header in the first write. */
  initial?: Uint8Array;
}

export function openTestTunnel(opts: TestTunnelOptions): Promise<TestTunnel> {
  const method = getAeadMethod(opts.method);
  const key = evpBytesToKey(opts.password, method.keySize);
  const enc = new AeadEncoder(method, key);
  const dec = new AeadDecoder(method, key);
  const header = encodeAddress(toSocksAddress(opts.target.host, opts.target.port));
  const sentWire: Buffer[] = [];
  const receivedWire: Buffer[] = [];
  const errors: unknown[] = [];
  const plain: Buffer[] = [];
  let plainLen = 0;
  let waiters: (() => void)[] = [];
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port: opts.port, host: opts.host ?? '127.0.0.1', allowHalfOpen: true });
    let settle: (v: { kind: 'fin' | 'rst' | 'close'; at: number }) => void = () => {};
    const closed = new Promise<{ kind: 'fin' | 'rst' | 'close'; at: number }>((res) => (settle = res));
    const wake = (): void => {
      const ws = waiters;
      waiters = [];
      for (const w of ws) w();
    };
    // "Closed" means the server closed its side: FIN (answered with our FIN), RST, or close.
    socket.on('end', () => {
      settle({ kind: 'fin', at: Date.now() });
      socket.end();
      wake();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      settle({ kind: err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'rst' : 'close', at: Date.now() });
    });
    socket.on('close', () => {
      settle({ kind: 'close', at: Date.now() });
      wake();
    });
    socket.on('data', (chunk: Buffer) => {
      receivedWire.push(chunk);
      try {
        for (const p of dec.push(chunk)) {
          plain.push(p);
          plainLen += p.length;
        }
      } catch (err) {
        errors.push(err);
      }
      wake();
    });
    const write = (data: Uint8Array): void => {
      const wire = enc.encode(data);
      sentWire.push(wire);
      socket.write(wire);
    };
    socket.once('connect', () => {
      socket.off('error', reject);
      write(Buffer.concat([header, opts.initial ?? Buffer.alloc(0)]));
      resolve({
        socket,
        sentWire,
        receivedWire,
        errors,
        send: (d) => write(d),
        read: (n, timeoutMs = 5000) =>
          new Promise((res, rej) => {
            let done = false;
            const timer = setTimeout(
              () => finish(new Error(`timed out after ${plainLen} of ${n} bytes`)),
              timeoutMs,
            );
            const finish = (err?: Error): void => {
              if (done) return;
              done = true;
              clearTimeout(timer);
              if (err) rej(err);
              else res(Buffer.concat(plain));
            };
            const check = (): void => {
              if (done) return;
              if (plainLen >= n) return finish();
              if (socket.destroyed || socket.readableEnded)
                return finish(new Error(`closed after ${plainLen} of ${n} bytes`));
              waiters.push(check);
            };
            check();
          }),
        closed,
        end: () => socket.end(),
        destroy: () => socket.destroy(),
      });
    });
    socket.once('error', reject);
  });
}
