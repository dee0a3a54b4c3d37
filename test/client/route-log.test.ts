/**
 * `--log-level debug` tells, per connection, which route a destination took and why (the rule and
 * its line, or the mode), with the destination: a user can check that a rules file does what they
 * meant. At the default level no such line (destinations are private). Real parts: a Ladder data
 * plane and an echo server on loopback, the client's SOCKS5 front (native where the addon is).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRuleList } from '../../src/client/routing/rules.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { startDataPlane } from '../../src/server/index.js';
import { startEcho } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';
import { waitFor } from '../helpers/wait.js';
import { clientLogging } from '../helpers/client-logging.js';

const SECRET = 'route-log-secret';

test('debug: one line per connection with its route, why and the destination; none at info', async (t) => {
  const plane = await startDataPlane({
    keys: [{ id: 'k', method: 'aes-256-gcm', secret: SECRET }],
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
  });
  t.after(() => plane.close());
  const echo = await startEcho();
  t.after(() => echo.close());
  const key = formatSsUrl({
    method: 'aes-256-gcm',
    password: SECRET,
    host: '127.0.0.1',
    port: plane.address.port,
  });

  /** The client's log after one echoed connection to the echo server. */
  const logOf = async (level: 'debug' | 'info', rules?: string, route?: 'auto'): Promise<string> => {
    const { client, text } = await clientLogging(key, level, {
      ...(rules ? { rules: parseRuleList(rules, 'my.rules') } : {}),
      ...(route ? { route } : {}),
    });
    try {
      const s = await socks5Connect({
        proxyPort: client.socksAddress!.port,
        host: '127.0.0.1',
        port: echo.port,
        earlyData: Buffer.from('ping'),
      });
      s.resume();
      await new Promise<void>((r) => s.once('data', () => r()));
      s.destroy();
      if (level === 'debug')
        await waitFor(() => text().includes('route '), { timeoutMs: 3000 }).catch(() => {});
    } finally {
      await client.close();
    }
    return text();
  };
  const dest = `127.0.0.1:${echo.port}`;
  const routeLines = (text: string): string[] =>
    text
      .split('\n')
      .filter((l) => l.includes('"msg":"route '))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);

  assert.deepEqual(routeLines(await logOf('debug')), [`route ${dest}: proxy (--route proxy)`]);
  assert.deepEqual(routeLines(await logOf('debug', '# mine\nip-cidr,127.0.0.0/8,proxy\n')), [
    `route ${dest}: proxy (rule at line 2: ip-cidr,127.0.0.0/8)`,
  ]);
  assert.deepEqual(routeLines(await logOf('debug', 'final,direct\n', 'auto')), [
    `route ${dest}: direct (the rules' final route)`,
  ]);
  // The default level: no route line, no destination.
  const info = await logOf('info', 'ip-cidr,127.0.0.0/8,proxy\n');
  assert.deepEqual(routeLines(info), []);
  assert.ok(!info.includes(String(echo.port)), info);
});

test('debug: the server closing a tunnel without data is told with the destination', async (t) => {
  // The server refuses private destinations (no allowPrivateDestinations): it closes at once.
  const plane = await startDataPlane({
    keys: [{ id: 'k', method: 'aes-256-gcm', secret: SECRET }],
    port: 0,
    host: '127.0.0.1',
  });
  t.after(() => plane.close());
  const key = formatSsUrl({
    method: 'aes-256-gcm',
    password: SECRET,
    host: '127.0.0.1',
    port: plane.address.port,
  });
  const { client, text } = await clientLogging(key, 'debug');
  t.after(() => client.close());
  const s = await socks5Connect({
    proxyPort: client.socksAddress!.port,
    host: '10.9.8.7',
    port: 4321,
    earlyData: Buffer.from('x'),
  });
  s.resume();
  s.on('error', () => {});
  await waitFor(() => text().includes('tunnel to 10.9.8.7:4321'), { timeoutMs: 5000 }).catch(() => {});
  s.destroy();
  assert.match(text(), /"msg":"tunnel to 10\.9\.8\.7:4321: the server closed it without data/, text());
});
