/**
 * `ladder client --udp` to a server that relays no UDP (an unmanaged server without --udp):
 * datagrams vanish, and before neither side said so. Now, once an association has sent datagrams
 * for a while (10 s by default; 400 ms here) without one reply, the client's log says once per
 * endpoint that the server may not relay UDP, naming no server, destination or address. Control:
 * the same client against a server that relays UDP logs nothing.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { startClient } from '../../src/client/index.js';
import { createUdpAssociate } from '../../src/client/udp-associate.js';
import type { RuntimeKey } from '../../src/shared/control.js';
import { createLogger } from '../../src/shared/logger.js';
import { socks5UdpAssociate } from '../../src/transport/udp-socks5.js';
import type { Dialer } from '../../src/transport/dialer.js';
import { startTestServer, type TestDataPlane } from '../helpers/data-plane.js';

const KEY: RuntimeKey = { id: 'u', method: 'aes-256-gcm', secret: 'udp-no-reply-password' };
const WARN_MS = 400;
const noDial: Dialer = { dial: () => Promise.reject(new Error('no TCP in this test')) };
const servers: TestDataPlane[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

/** Two associations, each sending a datagram every 100 ms for `ms`; the log's lines. */
async function sendThrough(server: TestDataPlane, ms: number): Promise<{ lines: string[]; replies: number }> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const udpAssociate = createUdpAssociate({
    server: { host: '127.0.0.1', port: server.port, method: KEY.method, password: KEY.secret },
    logger: createLogger({ level: 'info', destination: out }),
    noReplyWarnMs: WARN_MS,
  });
  const client = await startClient({ dialer: noDial, socks: '127.0.0.1:0', udpAssociate });
  let replies = 0;
  try {
    const target = { type: 'ipv4' as const, host: '127.0.0.1', port: server.echo.port };
    for (let round = 0; round < 2; round++) {
      const assoc = await socks5UdpAssociate(client.socksAddress!.port);
      assoc.onMessage = () => replies++;
      for (let i = 0; i < ms / 100; i++) {
        assoc.send(target, Buffer.from(`ping ${round} ${i}`));
        await new Promise((r) => setTimeout(r, 100));
      }
      assoc.close();
    }
  } finally {
    udpAssociate.closeAll();
    await client.close();
  }
  const lines = text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => String((JSON.parse(l) as { msg: unknown }).msg));
  return { lines, replies };
}

test('a server with no UDP relay: one warning for the endpoint, naming nothing, after the silence', async () => {
  const server = await startTestServer({ keys: [KEY], udp: false, echo: 'udp' });
  servers.push(server);
  const { lines, replies } = await sendThrough(server, WARN_MS * 3);
  assert.equal(replies, 0);
  const warned = lines.filter((l) => l.startsWith('UDP: '));
  assert.deepEqual(warned, [
    'UDP: datagrams sent through the tunnel have had no reply at all for 400 ms: the server may not relay UDP (an unmanaged `ladder server` relays UDP only with --udp; the managed server does by default), or the destinations do not answer; `ladder probe --servers` checks TCP only, so its ok says nothing about UDP',
  ]);
  const all = lines.join('\n');
  assert.ok(!all.includes('127.0.0.1') && !all.includes(String(server.port)), all);
  assert.ok(!all.includes(String(server.echo.port)) && !all.includes(KEY.secret), all);
});

test('control: a server that relays UDP answers, and nothing is said', async () => {
  const server = await startTestServer({ keys: [KEY], udp: true });
  servers.push(server);
  const { lines, replies } = await sendThrough(server, WARN_MS * 3);
  assert.ok(replies > 10, `${replies} replies`);
  assert.deepEqual(
    lines.filter((l) => l.startsWith('UDP: ')),
    [],
  );
});
