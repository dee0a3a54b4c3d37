/** Plain HTTPS browsing for the C8 tests' false-positive rate (c8-d14, c8-shadowtls). */
import https from 'node:https';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { OPEN_NAME, type LabWorld } from '../../src/lab/world.js';
import assert from 'node:assert/strict';
import type { Endpoint } from '../../src/lab/censor.js';
import { httpGet } from '../../src/lab/client-ops.js';
import type { TunnelContender, TunnelHandle } from '../../src/lab/survival.js';
import type { WebWorld } from '../../src/lab/web-hosts.js';

/** An HTTPS site of 1-8 KB pages behind the censor on logical 443. */
export async function pagesSite(w: LabWorld): Promise<{ at: Endpoint; close(): Promise<void> }> {
  const server = https.createServer(
    { cert: Buffer.concat([w.certs.cert, w.certs.ca]), key: w.certs.key },
    (req, res) => {
      const n = 1000 + Math.floor(Math.random() * 7000);
      res.writeHead(200, { 'content-type': 'text/html', 'content-length': n }).end('x'.repeat(n));
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const h = await w.addRemoteHost({ host: '127.0.0.1', port }, { logicalPort: 443 });
  return {
    at: h.tcp,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';

/** One browsing connection: 3 keep-alive GETs with browser-sized headers, each read to its end. */
export function browse(at: Endpoint, ca: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: at.host, port: at.port, servername: OPEN_NAME, ca });
    let left = 3;
    let buf = '';
    const next = () =>
      s.write(
        `GET /page/${randomBytes(6).toString('hex')} HTTP/1.1\r\nHost: ${OPEN_NAME}\r\nUser-Agent: ${UA}\r\n` +
          `Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n` +
          `Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\nCookie: session=${randomBytes(24).toString('hex')}\r\n\r\n`,
      );
    s.once('secureConnect', next);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const head = buf.indexOf('\r\n\r\n');
      const len = Number(/content-length: (\d+)/i.exec(buf)?.[1] ?? NaN);
      if (head < 0 || buf.length < head + 4 + len) return;
      buf = buf.slice(head + 4 + len);
      if (--left > 0) setTimeout(next, 5);
      else {
        s.end();
        resolve();
      }
    });
    s.on('error', reject);
  });
}

/** The world as web-hosts.ts placements see it. */
export function placeWorld(w: LabWorld): WebWorld {
  return {
    addRemoteHost: (b, o) => w.addRemoteHost(b, o),
    blockEndpoint: (ip, port, why) => w.censor.blockEndpoint(ip, port, why),
    cdn: () => w.cdn(),
  };
}

/** A tunnel contender's client pointed at `dial` (one front, the lab's clock and CA). */
export function startTunnelClient(ct: TunnelContender, w: LabWorld, dial: Endpoint): Promise<TunnelHandle> {
  return ct.startClient(dial, {
    ca: w.certs.ca,
    fronts: [dial],
    clock: w.clock,
    domesticAddress: () => undefined,
    genuineResolverTcp: w.zone.tcpAddress,
  });
}

/** One HTTPS request to the open site through `socks`, sent 20 ms after the handshake (the inner Finished in a record of its own); must work. */
export async function httpsThrough(w: LabWorld, socks: Endpoint): Promise<void> {
  const r = await httpGet({
    clock: w.clock,
    timeoutMs: 30_000,
    minRealMs: 5_000,
    socks,
    connect: w.sites.open.realHttps,
    hostHeader: OPEN_NAME,
    tls: { servername: OPEN_NAME, ca: w.certs.ca },
    requestDelayMs: 20,
  });
  assert.equal(r.outcome, 'OK');
}
