/**
 * A dynamic key whose WebSocket endpoint is wss://IP: no IP address goes out as the TLS server
 * name (RFC 6066), so Node prints no DEP0123 warning when the client dials it (it did: the body's
 * reader set servername to the IP without the check the dialler makes). Control: the same dial
 * with the IP as servername draws DEP0123 (Node warns once per process, so the control runs last).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { parseDynamicKeyBody } from '../../src/client/dynamic-key.js';
import { openWebSocket } from '../../src/transport/ws-dialer.js';
import { which } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { makeCert } from '../web/fixtures.js';

test(
  'dynamic key with a wss://IP endpoint: no IP as TLS server name, no DEP0123',
  { skip: skipUnless(which('openssl') !== undefined, 'openssl missing (apt-get install openssl)') },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-dk-ip-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const c = makeCert(dir, '127.0.0.1', 'ip');
    const names: (string | false)[] = [];
    const srv = tls.createServer({ cert: c.cert, key: c.key }, (s) => s.destroy());
    srv.on('tlsClientError', () => {});
    srv.on('secureConnection', (s: tls.TLSSocket) => names.push(s.servername ?? false));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => srv.close(() => r())));
    const port = (srv.address() as AddressInfo).port;
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => void warnings.push(w.code ?? w.name);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));

    const body = parseDynamicKeyBody(
      JSON.stringify({
        transport: {
          $type: 'shadowsocks',
          endpoint: { $type: 'websocket', url: `wss://127.0.0.1:${port}/p` },
          cipher: 'chacha20-ietf-poly1305',
          secret: 'pw-dk-ip',
        },
      }),
    );
    assert.equal(body.kind, 'endpoints');
    const ws = body.kind === 'endpoints' ? body.endpoints[0]!.websocket! : assert.fail();
    assert.equal(ws.servername, undefined);
    // A real dial (the certificate is not trusted here: the dial fails after the handshake).
    const dial = (servername?: string): Promise<unknown> =>
      openWebSocket({
        ...ws,
        ...(servername ? { servername } : {}),
        ca: c.cert,
        connectTimeoutMs: 5000,
      }).then(
        (s) => s.terminate(),
        (e: unknown) => e,
      );
    await dial();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(warnings, [], 'no warning for the IP endpoint');
    assert.deepEqual(names, [false], 'no server name sent');

    // Control: an IP as servername draws Node's DEP0123.
    await dial('127.0.0.1');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(warnings, ['DEP0123']);
  },
);
