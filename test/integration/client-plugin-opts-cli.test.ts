/**
 * `ladder client` with v2ray-plugin options a newcomer gets wrong or another tool adds: a near
 * miss of an option the client reads (`hots=`) stops it with one line and "did you mean" (it used
 * to start and dial cloudfront.com's name); options it does not use start it with a warning naming
 * each option, never its value, the password or the key. Control: the same key spelt right starts
 * without a warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { run, waitForStdout } from '../helpers/cli-run.js';
import { runLadder } from '../helpers/ladder-run.js';

const PASSWORD = 'pw-7f3a9c1e5d';
const key = (opts: string): string =>
  formatSsUrl({
    method: 'aes-256-gcm',
    password: PASSWORD,
    host: '127.0.0.1',
    port: 9,
    plugin: 'v2ray-plugin',
    pluginOptions: `mode=websocket;path=/s3cret-path;${opts}`,
  });

test('a misspelt v2ray-plugin option stops the client: one line, did you mean, no secret', async () => {
  const r = await runLadder(['client', '--key', key('hots=127.0.0.1'), '--socks', '127.0.0.1:0']);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr.trim(),
    /^ladder: --key: .*v2ray-plugin option "hots" is unknown: did you mean "host"\?$/,
  );
  for (const secret of [PASSWORD, 's3cret-path']) assert.ok(!r.stderr.includes(secret));
});

async function startWarnings(opts: string): Promise<string> {
  const r = run(['client', '--key', key(opts), '--socks', '127.0.0.1:0']);
  try {
    await waitForStdout(r, /SOCKS5 proxy on/);
    return r.stderr();
  } finally {
    r.child.kill('SIGTERM');
    await r.exit;
  }
}

test('v2ray-plugin options the client does not use are named in a warning at start', async () => {
  const err = await startWarnings('host=127.0.0.1;loglevel=none;fastOpen;skip-cert-verify=s3cret-value');
  const warnings = err
    .split('\n')
    .filter((l) => l.includes('v2ray-plugin option'))
    .map((l) => JSON.parse(l) as { msg: string; level: number });
  assert.deepEqual(
    warnings.map((w) => [w.level, w.msg]),
    [
      [
        40,
        `key of endpoint 1: v2ray-plugin option "loglevel" is ignored (it only matters to v2ray-plugin's own process)`,
      ],
      [
        40,
        `key of endpoint 1: v2ray-plugin option "fastOpen" is ignored (it only matters to v2ray-plugin's own process)`,
      ],
      [40, 'key of endpoint 1: v2ray-plugin option "skip-cert-verify" is not a v2ray-plugin option; ignored'],
    ],
  );
  for (const secret of [PASSWORD, 's3cret', '127.0.0.1:9']) assert.ok(!err.includes(secret), secret);
  // Control: the options spelt right, nothing extra: no warning.
  assert.ok(!(await startWarnings('host=127.0.0.1')).includes('v2ray-plugin option'));
});
