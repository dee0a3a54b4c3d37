/**
 * What each layer of the Mux.Cool-over-WebSocket transport costs, in one process (no SOCKS, no
 * Shadowsocks, no destination): a client and a server MuxConnection over
 *
 *   pipe   an in-memory pair of streams (Mux.Cool and Node streams alone)
 *   ws     a WebSocket over loopback TCP (+ the ws library, WsStream, sockets; plain ws:// so
 *          the client masks with random keys, XORed in JavaScript on both ends)
 *   wss    the same over TLS (+ TLS; the all-zero mask ws-dialer.ts uses there: no XOR)
 *
 * Short: sessions in a row, each 64 bytes echoed by the server's session and then ended by both
 * sides (the Mux.Cool part of a short connection, both ends). Bulk: one session uploading
 * `--mib` MiB in 64 KiB writes. CPU time of this process (user + system) per session or per
 * MiB, and minor page faults. Figures in docs/benchmarks.md ("where a Mux.Cool short
 * connection's CPU goes").
 *
 *   node --import tsx bench/mux-layers.ts [--mode pipe|ws|wss] [--sessions 5000] [--mib 128] [--ws-send]
 *
 * --ws-send: every message through ws.send (before WsStream framed small ones itself), for A/B.
 */
import { createServer as createHttp, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { makeLabCertificates } from '../src/lab/lab-ca.js';
import { MuxConnection, type MuxSession } from '../src/transport/mux.js';
import { WsStream } from '../src/transport/ws-stream.js';
import { messagePair } from '../test/helpers/message-pair.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const MODES = arg('--mode', 'pipe,ws,wss').split(',');
const SESSIONS = Number(arg('--sessions', '5000'));
const MIB = Number(arg('--mib', '128'));
const WS_SEND = process.argv.includes('--ws-send');

async function wsPair(tls: boolean): Promise<{ ends: [Duplex, Duplex]; close: () => void }> {
  const certs = await makeLabCertificates(['layers.lab']);
  const srv: Server = tls ? createHttps({ cert: certs.cert, key: certs.key }) : createHttp();
  const wss = new WebSocketServer({ server: srv, perMessageDeflate: false });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  const accepted = new Promise<WebSocket>((r) => wss.once('connection', r));
  // As ws-dialer.ts dials: no compression, an all-zero mask inside TLS.
  const opts = tls
    ? { ca: certs.ca, servername: 'layers.lab', generateMask: (m: Buffer) => void m.fill(0) }
    : {};
  const c = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${port}/`, {
    perMessageDeflate: false,
    ...(opts as WebSocket.ClientOptions),
  });
  await new Promise((r) => c.once('open', r));
  const s = await accepted;
  return {
    // Framed as ws-dialer.ts and the web front do (--ws-send to leave every message to ws.send).
    ends: WS_SEND
      ? [new WsStream(c), new WsStream(s)]
      : [new WsStream(c, tls ? { framing: 'zero-mask' } : {}), new WsStream(s, { framing: 'server' })],
    close: () => {
      c.terminate();
      s.terminate();
      wss.close();
      srv.close();
    },
  };
}

function cpu(): { ms: number; faults: number } {
  const u = process.cpuUsage();
  return { ms: (u.user + u.system) / 1000, faults: process.resourceUsage().minorPageFault };
}

async function measure(mode: string): Promise<void> {
  const pair =
    mode === 'pipe'
      ? { ends: messagePair({ backPressure: true }), close: () => {} }
      : await wsPair(mode === 'wss');
  const [clientEnd, serverEnd] = pair.ends;
  let bulk = false;
  new MuxConnection(serverEnd, {
    role: 'server',
    onSession: (s: MuxSession) => {
      s.on('data', (d: Buffer) => {
        if (!bulk) s.write(d);
      });
      s.on('end', () => s.end());
      s.on('error', () => {});
    },
  });
  const client = new MuxConnection(clientEnd, { role: 'client' });
  const body = Buffer.alloc(64, 1);
  const short = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const s = client.open();
      s.on('data', () => s.end());
      s.on('end', () => {});
      s.on('close', () => resolve());
      s.on('error', reject);
      s.write(body);
    });
  const upload = async (mib: number): Promise<void> => {
    const s = client.open();
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.on('data', () => {});
    const chunk = Buffer.alloc(64 * 1024, 3);
    for (let sent = 0; sent < mib * 1024 * 1024; sent += chunk.length)
      if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
    s.end();
    await closed;
  };
  for (let i = 0; i < 500; i++) await short(); // warm-up
  let t0 = cpu();
  for (let i = 0; i < SESSIONS; i++) await short();
  let t1 = cpu();
  const perSession = ((t1.ms - t0.ms) * 1000) / SESSIONS;
  bulk = true;
  await upload(16);
  t0 = cpu();
  const w0 = performance.now();
  await upload(MIB);
  t1 = cpu();
  const secs = (performance.now() - w0) / 1000;
  pair.close();
  process.stdout.write(
    `${mode.padEnd(4)}  short: ${perSession.toFixed(0)} µs CPU per session  |  bulk: ${((t1.ms - t0.ms) / MIB).toFixed(2)} ms CPU per MiB, ${((t1.faults - t0.faults) / MIB).toFixed(0)} page faults per MiB, ${(MIB / secs).toFixed(0)} MiB/s\n`,
  );
}

for (const m of MODES) await measure(m);
process.exit(0);
