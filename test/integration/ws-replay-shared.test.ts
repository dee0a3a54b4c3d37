/**
 * Managed mode: the web front checks SIP004 salts against the raw port's replay filters (the
 * data-plane workers' shared ones). A connection recorded on the raw port and replayed over a
 * WebSocket to the web front gets nothing and reaches no destination. Negative control: an
 * equally genuine first write that never went to the raw port is served over the same WebSocket
 * path (so the refusal is the shared filter's, not the replay's form).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { startManaged } from '../../src/cli/managed.js';
import { silentLogger } from '../../src/shared/logger.js';
import { api, countingEcho, flags, type Json } from '../api/managed-helpers.js';
import { tempDir } from '../api/helpers.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { sleep } from '../helpers/wait.js';

/** The first write of a genuine connection that went nowhere (a listener that only reads). */
async function unsentFirstWrite(opts: {
  method: string;
  password: string;
  target: { host: string; port: number };
}): Promise<Buffer> {
  const hole = net.createServer((s) => s.resume());
  await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
  try {
    const tun = await openTestTunnel({
      ...opts,
      port: (hole.address() as AddressInfo).port,
      initial: Buffer.from('fresh'),
    });
    tun.destroy();
    return tun.sentWire[0]!;
  } finally {
    await new Promise<void>((r) => hole.close(() => r()));
  }
}

/** Send `wire` as one binary message on a new WebSocket; every byte that comes back within `ms`. */
async function overWebSocket(url: string, wire: Buffer, ms: number): Promise<number> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let got = 0;
  ws.on('message', (m: Buffer) => (got += m.length));
  ws.on('error', () => undefined);
  ws.send(wire);
  await sleep(ms);
  ws.terminate();
  return got;
}

test('managed: a raw-port connection replayed to the web front is refused (shared replay filters)', async (t) => {
  const dir = tempDir(t);
  const echo = await countingEcho(t);
  const m = await startManaged({ ...flags(dir), webPort: '0', webHost: '127.0.0.1' }, silentLogger);
  t.after(() => m.close());
  assert.ok(m.workers > 0, 'the raw port runs in worker threads');
  const line = m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'));
  assert.ok(line);
  const cfg = JSON.parse(line) as { apiUrl: string; certSha256: string };
  const keys = JSON.parse((await api(cfg, 'GET', '/access-keys')).body) as { accessKeys: Json[] };
  const key = keys.accessKeys[0]!;
  const method = String(key.method);
  const password = String(key.password);
  const target = { host: '127.0.0.1', port: echo.port };
  const url = `ws://127.0.0.1:${m.web!.service.front.port}${m.web!.settings.secretPath}/tcp`;

  // A genuine connection on the raw port, recorded.
  const tun = await openTestTunnel({
    port: m.plane.address.port,
    method,
    password,
    target,
    initial: Buffer.from('hello'),
  });
  assert.equal((await tun.read(5)).toString(), 'hello');
  tun.end();
  await tun.closed;
  const recorded = tun.sentWire[0]!;
  assert.equal(echo.count(), 1);

  // Replayed to the web front: nothing back, no second connection to the origin.
  assert.equal(await overWebSocket(url, recorded, 1500), 0, 'the replay got bytes back');
  assert.equal(echo.count(), 1, 'the replay reached the origin');

  // Control: a first write the raw port never saw is served over the web front.
  const fresh = await unsentFirstWrite({ method, password, target });
  assert.ok(
    (await overWebSocket(url, fresh, 1500)) > 0,
    'a fresh connection over the web front got no answer',
  );
  assert.equal(echo.count(), 2);
});
