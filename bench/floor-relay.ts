/**
 * The "no crypto" floor for the benchmark: the same two-process topology as Ladder (a SOCKS5
 * front that relays to a second hop that connects to the target), built on Ladder's own
 * transport/relay.ts with identity transforms. Whatever CPU this spends per GiB is what Node's
 * sockets and streams cost before any encryption, so it bounds what crypto work can save.
 *   node --import tsx bench/floor-relay.ts server PORT
 *   node --import tsx bench/floor-relay.ts client PORT SERVER_PORT
 * Only for 127.0.0.1 targets given as IPv4 in the SOCKS5 request; not a product.
 */
import net from 'node:net';
import { relay } from '../src/transport/relay.js';

const [role, portText, serverPortText] = process.argv.slice(2);
const IDLE_MS = 600_000;

function readN(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < n) return;
      s.off('data', onData);
      s.off('error', reject);
      s.pause();
      if (buf.length > n) s.unshift(buf.subarray(n));
      resolve(buf.subarray(0, n));
    };
    s.on('data', onData);
    s.once('error', reject);
    s.resume();
  });
}

async function serveServer(s: net.Socket): Promise<void> {
  const head = await readN(s, 2);
  const t = net.connect({ host: '127.0.0.1', port: head.readUInt16BE(0) });
  t.setNoDelay(true);
  t.once('connect', () => {
    relay(s, t, { idleTimeoutMs: IDLE_MS });
    s.resume();
  });
  t.once('error', () => s.destroy());
}

async function serveClient(s: net.Socket, serverPort: number): Promise<void> {
  await readN(s, 3); // VER NMETHODS METHOD (no auth only)
  s.write(Buffer.from([5, 0]));
  const req = await readN(s, 10); // VER CMD RSV ATYP=1 ADDR(4) PORT(2)
  const port = req.readUInt16BE(8);
  const up = net.connect({ host: '127.0.0.1', port: serverPort });
  up.setNoDelay(true);
  up.once('connect', () => {
    const h = Buffer.alloc(2);
    h.writeUInt16BE(port);
    up.write(h);
    s.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]));
    relay(s, up, { idleTimeoutMs: IDLE_MS });
    s.resume();
  });
  up.once('error', () => s.destroy());
}

const port = Number(portText);
const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
  s.on('error', () => s.destroy());
  const p = role === 'server' ? serveServer(s) : serveClient(s, Number(serverPortText));
  p.catch(() => s.destroy());
});
server.listen(port, '127.0.0.1');
const stop = (): void => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
