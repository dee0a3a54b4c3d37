import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { startManaged } from '../../src/cli/managed.js';
import { startClient } from '../../src/client/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { socks5Connect } from '../helpers/socks5.js';
import { sleep } from '../helpers/wait.js';
import { tempDir } from './helpers.js';
import { api, echoServer, flags, type Json } from './managed-helpers.js';

/** Send `text` through the client's SOCKS5 port to the echo origin; resolves with what came back, or undefined after `ms`. */
async function echoVia(
  socksPort: number,
  echoPort: number,
  text: string,
  ms = 5000,
): Promise<string | undefined> {
  const s: Socket = await socks5Connect({ proxyPort: socksPort, host: '127.0.0.1', port: echoPort });
  try {
    let got = '';
    const done = new Promise<string>((resolve) => {
      s.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.length >= text.length) resolve(got);
      });
    });
    s.on('error', () => undefined);
    s.resume(); // socks5Connect hands the socket over paused
    s.write(text);
    return await Promise.race([done, sleep(ms).then(() => undefined)]);
  } finally {
    s.destroy();
  }
}

test('managed server: two SIP023 multi-user 2022 keys and a SIP004 key on one port, each through ladder client; a deleted 2022 key stops, the others keep working', async (t) => {
  const dir = tempDir(t);
  const echoPort = await echoServer(t);
  const m = await startManaged(flags(dir), silentLogger, { usageFlushMs: 200, enforceIntervalMs: 300 });
  t.after(() => m.close());
  const line = m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'));
  assert.ok(line);
  const cfg = JSON.parse(line) as { apiUrl: string; certSha256: string };

  const create = async (body: Json): Promise<Json> => {
    const r = await api(cfg, 'POST', '/access-keys', body);
    assert.equal(r.status, 201, r.body);
    return JSON.parse(r.body) as Json;
  };
  const alice = await create({ name: 'alice', method: '2022-blake3-aes-128-gcm' });
  const bob = await create({ name: 'bob', method: '2022-blake3-aes-128-gcm' });
  const carol = await create({ name: 'carol', method: 'chacha20-ietf-poly1305' });
  const port = m.plane.address.port;
  for (const k of [alice, bob, carol]) assert.equal(k.port, port, 'every key on the one port');
  assert.equal(
    String(alice.password).split(':')[0],
    String(bob.password).split(':')[0],
    'one identity group',
  );
  assert.equal(alice.multiUser, true);

  const server = JSON.parse((await api(cfg, 'GET', '/server')).body) as Json;
  assert.equal(server.metricsEnabled, true, 'Prometheus is served');
  assert.match(String(server.version), /^1\.12\.0\+ladder\./);

  const clients = new Map<string, number>();
  for (const k of [alice, bob, carol]) {
    const c = await startClient({ key: String(k.accessUrl), socks: '127.0.0.1:0' });
    t.after(() => c.close());
    clients.set(String(k.name), c.socksAddress!.port);
  }
  await sleep(100); // the enforcer hands the new keys to the data plane
  for (const [name, socks] of clients) {
    assert.equal(await echoVia(socks, echoPort, `hello from ${name}`), `hello from ${name}`, name);
  }

  assert.equal((await api(cfg, 'DELETE', `/access-keys/${String(alice.id)}`)).status, 204);
  assert.equal(
    await echoVia(clients.get('alice')!, echoPort, 'still there?', 1500),
    undefined,
    'deleted key refused',
  );
  assert.equal(
    await echoVia(clients.get('bob')!, echoPort, 'bob again'),
    'bob again',
    'other 2022 key works',
  );
  assert.equal(
    await echoVia(clients.get('carol')!, echoPort, 'carol again'),
    'carol again',
    'SIP004 key works',
  );
});
