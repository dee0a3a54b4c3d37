import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLadderClient, startLadderServer } from '../helpers/peers.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../../src/transport/udp-socks5.js';
import { waitFor } from '../helpers/wait.js';

// UDP as users run it: `ladder server --udp` and `ladder client --udp`, both through the CLI,
// an application speaking SOCKS5 UDP ASSOCIATE to the client; DNS-sized and 1,400-byte
// datagrams echoed byte for byte. Negative control: without --udp the client refuses the
// ASSOCIATE command.
for (const method of ['chacha20-ietf-poly1305', '2022-blake3-aes-256-gcm'] as const) {
  test(`CLI --udp end to end with ${method}: 300 x 64 B and 300 x 1,400 B, none lost or corrupted`, async (t) => {
    const password = method.startsWith('2022-')
      ? randomBytes(32).toString('base64')
      : `udp-${randomBytes(6).toString('hex')}`;
    const echo = await startUdpEcho();
    t.after(() => echo.close());
    const server = await startLadderServer({
      extraArgs: ['--method', method, '--password', password, '--udp'],
    });
    t.after(() => server.stop());
    const key = formatSsUrl({ method, password, host: '127.0.0.1', port: server.port });
    const client = await startLadderClient({ key, extraArgs: ['--udp'] });
    t.after(() => client.stop());
    await waitFor(() => /SOCKS5 UDP/.test(client.output()), {
      timeoutMs: 5000,
      intervalMs: 50,
      message: 'the SOCKS5 UDP banner',
    });
    assert.match(client.output(), /SOCKS5 UDP\s+on 127\.0\.0\.1:\d+ \(UDP ASSOCIATE\)/);
    assert.ok(!client.output().includes(password), 'the banner does not print the key');
    const assoc = await socks5UdpAssociate(client.socksPort);
    t.after(() => assoc.close());
    const target = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.port };
    for (const size of [64, 1400]) {
      const r = await udpEchoRun(assoc, target, 300, size, {
        window: 8,
        lossTimeoutMs: 2000,
        deadlineMs: 30_000,
      });
      assert.equal(r.corrupted, 0, `${size} B: corrupted echoes`);
      assert.equal(r.received, 300, `${size} B: ${r.sent - r.received} lost`);
    }
  });
}

test('CLI without --udp refuses SOCKS5 UDP ASSOCIATE (negative control); "udp": true in --config turns it on', async (t) => {
  const password = `udp-${randomBytes(6).toString('hex')}`;
  const method = 'aes-128-gcm';
  const server = await startLadderServer({
    extraArgs: ['--method', method, '--password', password, '--udp'],
  });
  t.after(() => server.stop());
  const key = formatSsUrl({ method, password, host: '127.0.0.1', port: server.port });
  const plain = await startLadderClient({ key });
  t.after(() => plain.stop());
  await assert.rejects(socks5UdpAssociate(plain.socksPort, '127.0.0.1', 5000), /UDP ASSOCIATE refused/);

  const dir = mkdtempSync(join(tmpdir(), 'ladder-udp-cli-'));
  const cfg = join(dir, 'client.json');
  writeFileSync(cfg, JSON.stringify({ keys: [key], udp: true }));
  const viaConfig = await startLadderClient({ key, extraArgs: ['--config', cfg] });
  t.after(() => viaConfig.stop());
  const echo = await startUdpEcho();
  t.after(() => echo.close());
  const assoc = await socks5UdpAssociate(viaConfig.socksPort);
  t.after(() => assoc.close());
  const r = await udpEchoRun(assoc, { type: 'ipv4', host: '127.0.0.1', port: echo.port }, 50, 100, {
    window: 4,
    lossTimeoutMs: 2000,
  });
  assert.equal(r.received, 50);
  assert.equal(r.corrupted, 0);
});
