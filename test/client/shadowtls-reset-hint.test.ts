/**
 * A ShadowTLS key whose server port resets the handshake (its handshake site cannot be reached
 * from the server): the client's log says what that means once, with code ERR_SHADOWTLS_RESET,
 * naming neither the server nor the password. The dialer gives the error that code (before, the
 * hint matched its message's wording). Control: a reset WebSocket upgrade (ECONNRESET too) gets no
 * ShadowTLS advice, nor does an error that only reads like the dialer's.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { logDialFailure } from '../../src/client/tunnel.js';
import type { ShadowTlsListener } from '../../src/server/shadowtls/listener.js';
import { createLogger } from '../../src/shared/logger.js';
import { dialShadowTls } from '../../src/transport/shadowtls-dialer.js';
import { isShadowTlsReset } from '../../src/transport/shadowtls-reset.js';
import { dialWebSocket } from '../../src/transport/ws-dialer.js';
import { shadowTlsPortWithDeadSite } from '../helpers/shadowtls-dead-site.js';

const PASSWORD = 'reset-hint-password';
const DEST = { type: 'domain' as const, host: 'dest.example', port: 443 };
let listener: ShadowTlsListener | undefined;
const servers: net.Server[] = [];
after(async () => {
  await listener?.close();
  for (const s of servers) s.close();
});

function logged(): { log: ReturnType<typeof createLogger>; lines: () => Array<Record<string, unknown>> } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  return {
    log: createLogger({ level: 'info', destination: out }),
    lines: () =>
      text
        .trim()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

test('a ShadowTLS port whose handshake site is unreachable: one line of advice, no server or password', async () => {
  listener = await shadowTlsPortWithDeadSite(PASSWORD); // its handshake site: nothing listens there
  const port = listener.address.port;
  const { log, lines } = logged();
  for (let i = 0; i < 2; i++) {
    const err = await dialShadowTls({
      address: '127.0.0.1',
      port,
      sni: 'site.example',
      password: PASSWORD,
      connectTimeoutMs: 5000,
    }).then(
      () => assert.fail('the dial succeeded'),
      (e: unknown) => e,
    );
    logDialFailure(err, DEST, log);
  }
  const all = lines();
  // Two "tunnel dial failed" lines (one per connection) and the advice once.
  assert.deepEqual(
    all.map((l) => [l.msg, l.errno ?? l.code]),
    [
      ['tunnel dial failed', 'ERR_SHADOWTLS_RESET'],
      [all[1]!.msg, 'ERR_SHADOWTLS_RESET'],
      ['tunnel dial failed', 'ERR_SHADOWTLS_RESET'],
    ],
  );
  assert.match(
    String(all[1]!.msg),
    /^the ShadowTLS server reset the connection during the TLS handshake \(ERR_SHADOWTLS_RESET\): most often it cannot reach its handshake site \(the key's shadow-tls host=;/,
  );
  const text = JSON.stringify(all);
  assert.ok(!text.includes(PASSWORD) && !text.includes(String(port)) && !text.includes('127.0.0.1'), text);
  assert.ok(!text.includes('site.example') && !text.includes('dest.example'), text);
});

test('control: a reset WebSocket upgrade (ECONNRESET as well) gets no ShadowTLS advice', async () => {
  const srv = net.createServer((s) => s.once('data', () => s.resetAndDestroy()));
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  const { log, lines } = logged();
  const err = await dialWebSocket({ url: `ws://127.0.0.1:${port}/p`, connectTimeoutMs: 5000 }).then(
    () => assert.fail('the upgrade succeeded'),
    (e: unknown) => e,
  );
  logDialFailure(err, DEST, log);
  const all = lines();
  assert.deepEqual(
    all.map((l) => [l.msg, l.errno]),
    [['tunnel dial failed', 'ECONNRESET']],
  );
  assert.ok(!JSON.stringify(all).includes('ShadowTLS'), JSON.stringify(all));
});

test("the code, not the wording: an error that only reads like the dialer's is no ShadowTLS reset", () => {
  const lookalike = new Error('ShadowTLS handshake failed: read ECONNRESET', {
    cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
  });
  assert.equal(isShadowTlsReset(lookalike), false);
  const coded = new Error('any wording', {
    cause: Object.assign(new Error('x'), { code: 'ERR_SHADOWTLS_RESET' }),
  });
  assert.equal(isShadowTlsReset(coded), true);
});
