/**
 * Debian's nginx as a TLS-terminating WebSocket reverse proxy (the stand-in for a CDN) in front of
 * the plain web front. The client dials nginx from 127.0.0.2 with a forged X-Forwarded-For; nginx
 * appends the address it saw and connects to the front from 127.0.0.3. The front believes the
 * header only when 127.0.0.3 is trusted: then the client address is 127.0.0.2 (the forged entry
 * is left of it and ignored, and so is a forged Forwarded header, which nginx passes on);
 * otherwise it is nginx's own 127.0.0.3.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { builtinDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type UpgradeHandler, type WebFront } from '../../src/server/web/front.js';
import {
  echoEndpoint,
  exchange,
  makeCert,
  nginxSkip,
  opensslSkip,
  splitResponse,
  startNginx,
  tempDir,
  wsProxyLocation,
  type Nginx,
} from './fixtures.js';

const SECRET = '/p4th-Zq8';

describe(
  'nginx (TLS, WebSocket proxy) in front of the plain web front',
  { skip: nginxSkip() || opensslSkip() },
  () => {
    const tmp = tempDir('nginx-front');
    let nginx: Nginx;
    let trusting: WebFront;
    let distrusting: WebFront;
    let ca = '';
    const seenTrusting: string[] = [];
    const seenDistrusting: string[] = [];
    const e1 = echoEndpoint(SECRET, seenTrusting);
    const e2 = echoEndpoint(SECRET, seenDistrusting);

    before(async () => {
      const cert = makeCert(tmp.path, 'cdn.test');
      ca = cert.cert;
      const start = (trust: string, onUpgrade: UpgradeHandler): Promise<WebFront> =>
        startWebFront({
          port: 0,
          host: '127.0.0.1',
          secretPath: SECRET,
          decoy: builtinDecoy({ seed: 'a' }),
          trustProxy: [trust],
          onUpgrade,
        });
      trusting = await start('127.0.0.3/32', e1.onUpgrade);
      distrusting = await start('127.0.0.9/32', e2.onUpgrade);
      const loc = (prefix: string, port: number): string =>
        wsProxyLocation(prefix, `http://127.0.0.1:${port}/`);
      nginx = await startNginx(`
      listen 127.0.0.1:{{PORT}} ssl;
      ssl_certificate ${cert.certPath};
      ssl_certificate_key ${cert.keyPath};
      ${loc('/trusted/', trusting.port)}
      ${loc('/untrusted/', distrusting.port)}`);
    });
    after(async () => {
      e1.close();
      e2.close();
      await nginx?.stop();
      await trusting?.close();
      await distrusting?.close();
      tmp.remove();
    });

    function dial(prefix: string, payload: Buffer, extra: Record<string, string> = {}): Promise<Buffer> {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(`wss://127.0.0.1:${nginx.port}${prefix}${SECRET.slice(1)}/tcp?ed=1`, {
          ca,
          ...({ servername: 'cdn.test' } as object), // passed on to tls.connect
          localAddress: '127.0.0.2',
          headers: { 'X-Forwarded-For': '198.51.100.1', ...extra },
        });
        ws.on('open', () => ws.send(payload));
        ws.on('message', (m: Buffer) => {
          resolve(m);
          ws.close();
        });
        ws.on('error', reject);
        ws.on('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      });
    }

    test('X-Forwarded-For is believed from a trusted nginx: the client is 127.0.0.2', async () => {
      const payload = Buffer.from('via the cdn');
      assert.deepEqual(await dial('/trusted/', payload), payload);
      assert.deepEqual(seenTrusting, ['127.0.0.2']);
    });

    test('a Forwarded header the client sent (nginx passes it on) does not choose the address', async () => {
      seenTrusting.length = 0;
      const payload = Buffer.from('forged Forwarded');
      assert.deepEqual(await dial('/trusted/', payload, { Forwarded: 'for=198.51.100.2' }), payload);
      assert.deepEqual(seenTrusting, ['127.0.0.2']);
    });

    test('... and ignored when nginx is not trusted: the client is nginx (127.0.0.3)', async () => {
      const payload = Buffer.from('via the cdn, untrusted');
      assert.deepEqual(await dial('/untrusted/', payload), payload);
      assert.deepEqual(seenDistrusting, ['127.0.0.3']);
    });

    test('the decoy is served through nginx', async () => {
      const r = await exchange(nginx.port, 'GET /trusted/ HTTP/1.1\r\nHost: cdn.test\r\n\r\n', {
        tls: { ca, servername: 'cdn.test' },
      });
      const { status, body } = splitResponse(r.text);
      assert.equal(status, 200);
      assert.match(body, /<!DOCTYPE html>/);
    });
  },
);
