import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startEcho } from '../helpers/net.js';
import { echoVia } from '../helpers/transfer.js';
import { sha256Hex } from '../helpers/hash.js';
import { startLadderClient, startLadderServer } from '../helpers/peers.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { waitFor } from '../helpers/wait.js';

// The 2022 edition as users run it: `ladder server --method 2022-… --password PSK` and
// `ladder client --key ss://2022-…`, both through the CLI, 1 MiB echoed byte-identical.
for (const method of [
  '2022-blake3-aes-128-gcm',
  '2022-blake3-aes-256-gcm',
  '2022-blake3-chacha20-poly1305',
]) {
  test(`CLI end to end with ${method}`, async (t) => {
    const psk = randomBytes(method.includes('128') ? 16 : 32).toString('base64');
    const echo = await startEcho();
    t.after(() => echo.close());
    const server = await startLadderServer({ extraArgs: ['--method', method, '--password', psk, '--udp'] });
    t.after(() => server.stop());
    // The port accepts a moment before the banner is written: wait for it (bounded).
    await waitFor(() => /TCP and UDP/.test(server.output()), {
      timeoutMs: 5000,
      intervalMs: 50,
      message: 'the TCP and UDP banner',
    });
    assert.match(server.output(), /TCP and UDP/);
    const key = formatSsUrl({ method, password: psk, host: '127.0.0.1', port: server.port });
    const client = await startLadderClient({ key });
    t.after(() => client.stop());
    const body = randomBytes(1 << 20);
    const r = await echoVia({ proxyPort: client.socksPort }, { host: '127.0.0.1', port: echo.port }, body);
    assert.equal(r.bytes, body.length);
    assert.equal(r.gotSha.toString('hex'), sha256Hex(body));
    assert.ok(r.sentSha.equals(r.gotSha));
  });
}

test('CLI refuses a 2022 PSK of the wrong length in one line, without echoing it', async () => {
  const { spawnSync } = await import('node:child_process');
  const { LADDER_BIN } = await import('../helpers/peers.js');
  const { cleanEnv } = await import('../helpers/clean-env.js');
  const bad = randomBytes(20).toString('base64');
  const r = spawnSync(
    process.execPath,
    [LADDER_BIN, 'server', '--method', '2022-blake3-aes-256-gcm', '--password', bad, '--port', '0'],
    {
      encoding: 'utf8',
      env: cleanEnv(),
      timeout: 30_000,
    },
  );
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--password: .*needs exactly 32/);
  assert.ok(!r.stderr.includes(bad));
  assert.equal(
    r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('ladder:')).length,
    1,
  );
});
