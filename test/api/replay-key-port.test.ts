/**
 * Managed mode: a key on another port than the primary one (Outline's per-key ports, e.g. after
 * `PUT /server/port-for-new-access-keys` and a restart with the old `--port`) is served by a data
 * plane on the main thread. Its salts must reach the replay-state file like the primary port's:
 * a connection recorded on that port before a restart and replayed after it gets nothing and
 * reaches no destination. Before, those planes kept their filters in memory only, so every
 * restart forgot them and answered the capture. Controls: the replay is refused before the
 * restart too, and a first write the server never saw is served after it (so the refusal is the
 * filter's, not the port's).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { startManaged, type ManagedFlags } from '../../src/cli/managed.js';
import { silentLogger } from '../../src/shared/logger.js';
import { freePort, rawProbe } from '../helpers/net.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';
import { api, countingEcho, flags, type Json } from './managed-helpers.js';
import { tempDir } from './helpers.js';

test('managed: a key on an additional port keeps its replay filter across a restart', async (t) => {
  const dir = tempDir(t);
  const echo = await countingEcho(t);
  const [p1, p2] = [await freePort(), await freePort()];
  const f: ManagedFlags = { ...flags(dir), port: String(p1), metrics: false };
  let m = await startManaged(f, silentLogger);
  let closed = false;
  t.after(() => (closed ? undefined : m.close()));
  const cfg = JSON.parse(m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'))!) as {
    apiUrl: string;
    certSha256: string;
  };
  const made = await api(cfg, 'POST', '/access-keys', { name: 'other port', port: p2 });
  assert.equal(made.status, 201, made.body);
  const key = JSON.parse(made.body) as Json;
  const opts = { method: String(key.method), password: String(key.password) };
  const target = { host: '127.0.0.1', port: echo.port };
  await waitFor(() => m.pool.ports.includes(p2), { timeoutMs: 5000, message: 'listener on the key port' });

  const tun = await openTestTunnel({ ...opts, port: p2, target, initial: Buffer.from('hello') });
  assert.equal((await tun.read(5)).toString(), 'hello');
  tun.end();
  await tun.closed;
  const recorded = tun.sentWire[0]!;
  assert.equal(echo.count(), 1);
  assert.equal((await rawProbe(p2, recorded, 800)).received, 0, 'replayed before the restart');
  assert.equal(echo.count(), 1, 'the replay before the restart reached the origin');

  await m.close();
  closed = true;
  m = await startManaged(f, silentLogger);
  closed = false;
  await waitFor(() => m.pool.ports.includes(p2), { timeoutMs: 5000, message: 'key port after restart' });

  assert.equal((await rawProbe(p2, recorded, 1200)).received, 0, 'the replay after a restart got an answer');
  assert.equal(echo.count(), 1, 'the replay after a restart reached the origin');

  // Control: a genuine connection the server never saw is served on the same port.
  const fresh = await openTestTunnel({ ...opts, port: p2, target, initial: Buffer.from('again') });
  assert.equal((await fresh.read(5)).toString(), 'again');
  fresh.end();
  await fresh.closed;
  assert.equal(echo.count(), 2);
});
