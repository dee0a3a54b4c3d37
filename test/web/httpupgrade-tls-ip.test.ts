/**
 * The HTTPUpgrade dialer over TLS to a front addressed by IP (the key a server without a name
 * prints: host=ADDRESS, so no SNI): the certificate, for that address and trusted through the key's
 * CA, is checked against the dialled address, as the WebSocket dialer checks it. Before, Node
 * checked it against 'localhost' (no host was given beside the socket) and the dial failed with
 * ERR_TLS_CERT_ALTNAME_INVALID while the WebSocket key to the same front worked. Control: a
 * certificate for another address is still refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dialHttpUpgrade } from '../../src/transport/httpupgrade-dialer.js';
import { dialWebSocket } from '../../src/transport/ws-dialer.js';
import { startWsTestServer } from '../helpers/web-server.js';
import { makeCert, opensslSkip, tempDir } from './fixtures.js';

const KEY = { id: 'k', method: 'aes-128-gcm', secret: 'httpupgrade-tls-ip' } as const;

test(
  'HTTPUpgrade+TLS to a front at 127.0.0.1 with a certificate for that address',
  { skip: opensslSkip() },
  async (t) => {
    const dir = tempDir('httpupgrade-tls-ip');
    t.after(() => dir.remove());
    const cert = makeCert(dir.path, '127.0.0.1');
    const other = makeCert(dir.path, '127.0.0.2', 'other');
    const srv = await startWsTestServer({ keys: [KEY], front: { tls: { cert: cert.cert, key: cert.key } } });
    t.after(() => srv.close());
    const base = `wss://127.0.0.1:${srv.webPort}${srv.secretPath}`;
    const ws = await dialWebSocket({ url: base, host: '127.0.0.1', ca: cert.cert });
    ws.destroy();
    const up = await dialHttpUpgrade({ url: `${base}/up`, host: '127.0.0.1', ca: cert.cert });
    up.destroy();
    // Control: trusted, but for 127.0.0.2.
    const srv2 = await startWsTestServer({
      keys: [KEY],
      front: { tls: { cert: other.cert, key: other.key } },
    });
    t.after(() => srv2.close());
    await assert.rejects(
      dialHttpUpgrade({
        url: `wss://127.0.0.1:${srv2.webPort}${srv2.secretPath}/up`,
        host: '127.0.0.1',
        ca: other.cert,
      }),
      (err: { cause?: { code?: string } }) => err.cause?.code === 'ERR_TLS_CERT_ALTNAME_INVALID',
    );
  },
);
