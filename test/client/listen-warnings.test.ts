/**
 * The client warns when a listener without authentication is reachable beyond loopback: SOCKS5
 * and HTTP without --auth, and the DNS server (--dns) always (an open resolver). The addresses
 * are TEST-NET-1 (192.0.2.1), not on any interface here: the bind fails after the warning, so
 * nothing ever listens beyond loopback during the test.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { startClient, type ClientOptions } from '../../src/client/index.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { createLogger } from '../../src/shared/logger.js';

const KEY = formatSsUrl({ method: 'aes-128-gcm', password: 'listen-warnings', host: '127.0.0.1', port: 9 });
const AWAY = '192.0.2.1:0';

/** Start a client with `opts`; the warnings it logged, and whether it started. */
async function warnings(opts: Partial<ClientOptions>): Promise<{ warned: string[]; started: boolean }> {
  const warned: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        const l = JSON.parse(line) as { level: number; msg?: string };
        if (l.level === 40 && l.msg) warned.push(l.msg);
      }
      cb();
    },
  });
  const log = createLogger({ level: 'warn', destination: out });
  try {
    const c = await startClient({ key: KEY, socks: '127.0.0.1:0', log, ...opts } as ClientOptions);
    await c.close();
    return { warned, started: true };
  } catch {
    return { warned, started: false };
  }
}

test('a DNS server beyond loopback is warned about, as SOCKS5 and HTTP without auth are', async () => {
  const dns = await warnings({
    dns: { listen: AWAY, mode: 'stub', upstream: { host: '127.0.0.1', port: 9 } },
  });
  assert.equal(dns.started, false, 'TEST-NET-1 is not an address of this host');
  assert.deepEqual(dns.warned, [
    'DNS server listens beyond loopback: anyone who reaches it can resolve through it',
  ]);
  assert.deepEqual((await warnings({ socks: AWAY })).warned, [
    'SOCKS5 proxy listens beyond loopback without authentication',
  ]);
  assert.deepEqual((await warnings({ http: AWAY })).warned, [
    'HTTP proxy listens beyond loopback without authentication',
  ]);
});

test('loopback listeners give no warning', async () => {
  const r = await warnings({
    http: '127.0.0.1:0',
    dns: { listen: '127.0.0.1:0', mode: 'stub', upstream: { host: '127.0.0.1', port: 9 } },
  });
  assert.equal(r.started, true);
  assert.deepEqual(r.warned, []);
});
