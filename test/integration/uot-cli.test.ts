import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../../src/transport/udp-socks5.js';
import { startLadderClient, startLadderServer } from '../helpers/peers.js';

// UDP-over-TCP through the CLI: `ladder server` without --udp (no UDP relay at all), and
// `ladder client --udp` with a key saying uot=2, or with --udp-over-tcp: the datagrams ride inside
// the tunnel stream and are echoed. Negative control: the same client without either sends them to
// the server's UDP port, where nothing listens, and gets nothing back.
test('CLI --udp as UDP-over-TCP to a server with no UDP relay (uot=2 in the key, --udp-over-tcp)', async (t) => {
  const method = 'aes-256-gcm';
  const password = `uot-${randomBytes(6).toString('hex')}`;
  const echo = await startUdpEcho();
  t.after(() => echo.close());
  const server = await startLadderServer({ extraArgs: ['--method', method, '--password', password] });
  t.after(() => server.stop());
  const plainKey = formatSsUrl({ method, password, host: '127.0.0.1', port: server.port });
  const uotKey = formatSsUrl({ method, password, host: '127.0.0.1', port: server.port, uot: 2 });
  const target = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.port };

  const run = async (key: string, extra: string[]): Promise<number> => {
    const client = await startLadderClient({ key, extraArgs: ['--udp', ...extra] });
    try {
      const assoc = await socks5UdpAssociate(client.socksPort);
      try {
        const r = await udpEchoRun(assoc, target, 50, 100, {
          window: 4,
          lossTimeoutMs: 1500,
          deadlineMs: 20_000,
        });
        assert.equal(r.corrupted, 0);
        return r.received;
      } finally {
        assoc.close();
      }
    } finally {
      await client.stop();
    }
  };
  assert.equal(await run(uotKey, []), 50, 'key with uot=2');
  assert.equal(await run(plainKey, ['--udp-over-tcp']), 50, '--udp-over-tcp');
  assert.equal(await run(plainKey, []), 0, 'negative control: raw UDP to a server without a UDP relay');
});
