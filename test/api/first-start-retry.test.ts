/**
 * A first start that is refused before it serves (its key port or API port held by another
 * program) makes no key: the operator fixes the flag and starts again, and that start is the
 * first one. It makes the initial key on the port it listens on and prints the first start's
 * banner (the access config and the key, also to a log: under systemd the journal is where the
 * operator reads them). Before, the refused start had already made the key on the refused port:
 * the retry listed it as "cannot listen on key port …" forever and printed a restart's banner,
 * with no secret in the journal.
 *
 * The listeners that start after the key is made (--dynamic-listen, the web front) can still
 * refuse the start: the data directory keeps a mark (first-start.pending) from the moment the
 * first start makes its certificate or key until it has served, so the retry is still the first
 * start and prints the key. Before, it printed the restart's banner. A mark an earlier version
 * left ({"keyId":…}, before an upgrade) names the key too: before, it was read as a bare mark and
 * the retry's banner left the initial key out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { LocalKeys } from '../../src/cli/commands/keys/local.js';
import { startManaged, type ManagedFlags } from '../../src/cli/managed.js';
import { silentLogger } from '../../src/shared/logger.js';
import { freePort } from '../helpers/net.js';
import { flags } from './managed-helpers.js';
import { tempDir } from './helpers.js';

async function hold(port: number): Promise<Server> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  return s;
}

/** Four free loopback ports, one after the other. */
async function freePorts(): Promise<[number, number, number, number]> {
  return [await freePort(), await freePort(), await freePort(), await freePort()];
}

for (const held of ['key port', 'API port'] as const) {
  test(`a first start refused because its ${held} is taken makes no key; the retry is the first start`, async (t) => {
    const dir = tempDir(t);
    const [taken, free, apiPort] = [await freePort(), await freePort(), await freePort()];
    const base: ManagedFlags = { ...flags(dir), metrics: false };
    const holder = await hold(taken);
    t.after(() => new Promise<void>((r) => holder.close(() => r())));
    const refused: ManagedFlags =
      held === 'key port'
        ? { ...base, port: String(taken), apiPort: String(apiPort) }
        : { ...base, port: String(free), apiPort: String(taken) };
    await assert.rejects(startManaged(refused, silentLogger, { drawQr: false }), /cannot listen/);

    const retry: ManagedFlags = { ...base, port: String(free), apiPort: String(apiPort) };
    const m = await startManaged(retry, silentLogger, { drawQr: false });
    t.after(() => m.close());
    assert.equal(m.firstStart, true, 'the retry prints the first start banner');
    assert.match(m.logBanner, /^Initial key \(a secret/m);
    assert.match(m.logBanner, /^\{"apiUrl":/m);
    const keys = await m.store.listKeys();
    assert.equal(keys.length, 1);
    assert.equal(keys[0]!.port, free, 'the initial key is on the port the server listens on');
    assert.doesNotMatch(m.banner, /cannot listen on key port/);
  });
}

for (const held of ['dynamic-key port', 'web port'] as const) {
  test(`a first start refused because its ${held} is taken (after the key is made): the retry is the first start`, async (t) => {
    const dir = tempDir(t);
    const [taken, free, port, apiPort] = await freePorts();
    const base: ManagedFlags = {
      ...flags(dir),
      metrics: false,
      port: String(port),
      apiPort: String(apiPort),
    };
    const holder = await hold(taken);
    t.after(() => new Promise<void>((r) => holder.close(() => r())));
    const at = (p: number): ManagedFlags =>
      held === 'dynamic-key port'
        ? { ...base, dynamicListen: `127.0.0.1:${p}` }
        : { ...base, webPort: String(p), webHost: '127.0.0.1' };
    await assert.rejects(startManaged(at(taken), silentLogger, { drawQr: false }), {
      message:
        held === 'dynamic-key port'
          ? `cannot serve dynamic keys on 127.0.0.1:${taken}: EADDRINUSE (another process listens there); use --dynamic-listen`
          : /^cannot listen on web port/,
    });

    const m = await startManaged(at(free), silentLogger, { drawQr: false });
    t.after(() => m.close());
    assert.equal(m.firstStart, true, 'the retry prints the first start banner');
    assert.match(m.logBanner, /^\{"apiUrl":/m);
    const keys = await m.store.listKeys();
    assert.equal(keys.length, 1, 'the refused start made the key; the retry makes none');
    assert.match(m.logBanner, /^ {2}ss:\/\//m, "the key's URL is in the first start's log banner");
    assert.match(m.logBanner, /^Initial key \(a secret/m, "the key this data directory's first start made");
    await m.close();

    const again = await startManaged(at(free), silentLogger, { drawQr: false });
    t.after(() => again.close());
    assert.equal(again.firstStart, false, 'the start after a served first start is a restart');
  });
}

test("an earlier version's first-start mark ({keyId}) still names the initial key after an upgrade", async (t) => {
  const dir = tempDir(t);
  const [taken, free, port, apiPort] = await freePorts();
  const base: ManagedFlags = { ...flags(dir), metrics: false, port: String(port), apiPort: String(apiPort) };
  const holder = await hold(taken);
  t.after(() => new Promise<void>((r) => holder.close(() => r())));
  const at = (p: number): ManagedFlags => ({ ...base, dynamicListen: `127.0.0.1:${p}` });
  await assert.rejects(startManaged(at(taken), silentLogger, { drawQr: false }), /cannot serve dynamic keys/);
  // The refused start as session 12's version left it: the key by its id.
  const keys = await LocalKeys.open(dir, undefined, true);
  const [key] = await keys.list().finally(() => keys.close());
  writeFileSync(join(dir, 'first-start.pending'), `${JSON.stringify({ keyId: key!.id })}\n`);

  const m = await startManaged(at(free), silentLogger, { drawQr: false });
  t.after(() => m.close());
  assert.equal(m.firstStart, true, 'the retry prints the first start banner');
  assert.match(m.logBanner, /^Initial key \(a secret/m, 'the key the refused start made is the initial key');
  assert.match(m.logBanner, /^ {2}ss:\/\//m, "the key's URL is in the first start's log banner");
});
