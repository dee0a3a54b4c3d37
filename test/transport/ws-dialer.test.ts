// dialWebSocket over TLS (wss://) on loopback with a self-signed certificate: verification on by
// default, a pin accepts exactly that certificate, and SNI and Host are set apart from the
// dialled address (fronting).
import { which } from '../helpers/peers.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { dialWebSocket } from '../../src/transport/ws-dialer.js';
import { skipUnless } from '../helpers/prereq.js';

// openssl makes the test certificate: skip loudly without it, fail in CI.
const SKIP = skipUnless(which('openssl') !== undefined, 'openssl CLI missing (apt-get install openssl)');

let dir = '';
let server: https.Server;
let port = 0;
let pin = '';
const seen: Array<{ host: string | undefined; sni: string | false | null }> = [];

before(async () => {
  if (SKIP) return;
  dir = mkdtempSync(join(tmpdir(), 'ladder-wss-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(dir, 'k.pem'),
      '-out',
      join(dir, 'c.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=origin.example',
      '-addext',
      'subjectAltName=DNS:origin.example',
    ],
    { stdio: 'ignore', timeout: 20_000 },
  );
  const cert = readFileSync(join(dir, 'c.pem'));
  pin = createHash('sha256').update(new X509Certificate(cert).raw).digest('hex');
  server = https.createServer({ key: readFileSync(join(dir, 'k.pem')), cert });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    seen.push({ host: req.headers.host, sni: (socket as TLSSocket).servername });
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (d: Buffer) => ws.send(d)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});
after(() => {
  server?.closeAllConnections();
  server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('wss: a self-signed certificate is refused by default', { skip: SKIP }, async () => {
  await assert.rejects(
    dialWebSocket({ url: `wss://127.0.0.1:${port}/x`, host: 'origin.example' }),
    /WebSocket connect failed/,
  );
});

test(
  'wss: a pinned certificate is accepted; SNI and Host are independent of the address',
  { skip: SKIP },
  async () => {
    seen.length = 0;
    const s = await dialWebSocket({
      url: `wss://127.0.0.1:${port}/x`,
      host: 'origin.example',
      servername: 'front.example',
      pinSha256: pin,
    });
    s.write(Buffer.from('hi'));
    const [d] = (await once(s, 'data')) as [Buffer];
    assert.equal(d.toString(), 'hi');
    s.destroy();
    assert.deepEqual(seen, [{ host: 'origin.example', sni: 'front.example' }]);
    // SNI defaults to the Host header's name.
    const s2 = await dialWebSocket({
      url: `wss://127.0.0.1:${port}/x`,
      host: 'origin.example:443',
      pinSha256: pin,
    });
    s2.destroy();
    assert.deepEqual(seen[1], { host: 'origin.example:443', sni: 'origin.example' });
  },
);

test('wss: a wrong pin is refused', { skip: SKIP }, async () => {
  await assert.rejects(
    dialWebSocket({ url: `wss://127.0.0.1:${port}/x`, host: 'origin.example', pinSha256: '00'.repeat(32) }),
    /WebSocket connect failed/,
  );
});
