/**
 * A first start killed (SIGKILL, out of memory, a power cut) after it made the API certificate or
 * the store's first key, but before it served: the next start is still the first, so its banner
 * (the access config and the initial key, also to a log: under systemd the journal is where the
 * operator reads them) is printed once. Before, the first-start mark was written after each was
 * made: a crash between them left a certificate or key and no mark, and the next start printed a
 * restart's banner, with neither the access config nor the key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CERT_FILE } from '../../src/api/tls.js';
import { startManaged } from '../../src/cli/managed.js';
import { createAccessKeys, openStore, parseStoreLocation } from '../../src/store/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { cleanEnv } from '../helpers/clean-env.js';
import { freePort } from '../helpers/net.js';
import { flags } from './managed-helpers.js';
import { tempDir } from './helpers.js';

const CHILD = fileURLToPath(new URL('../helpers/managed-crash-child.ts', import.meta.url));

/** Runs the child on `dir` and waits for it to kill itself at `at`. */
async function crashAt(dir: string, at: 'certificate' | 'key', port: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, at, String(port)], {
    env: cleanEnv(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const signal = await new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, s) => r(s)));
  assert.equal(signal, 'SIGKILL', `the child was to die at "${at}": ${err}`);
}

test('a first start killed right after making its key: the next start is the first and prints the key', async (t) => {
  const dir = tempDir(t);
  const port = await freePort(); // both starts on one port: the key's
  await crashAt(dir, 'key', port);
  const m = await startManaged({ ...flags(dir), port: String(port), metrics: false }, silentLogger, {
    drawQr: false,
  });
  t.after(() => m.close());
  assert.equal(m.firstStart, true, "the start after the crash prints the first start's banner");
  assert.match(m.logBanner, /^\{"apiUrl":/m, 'the access config is in the log banner');
  assert.match(m.logBanner, /^Initial key \(a secret/m, 'the initial key, as this data directory made it');
  const keys = await m.store.listKeys();
  assert.equal(keys.length, 1, 'the killed start made the key; this one makes none');
  assert.equal(keys[0]!.port, m.plane.address.port, 'the key is on the port the server listens on');
  assert.ok(
    m.logBanner.includes(`:${m.plane.address.port}/`),
    "the key's URL (its port) is in the log banner",
  );
  await m.close();

  const again = await startManaged({ ...flags(dir), port: String(port), metrics: false }, silentLogger, {
    drawQr: false,
  });
  t.after(() => again.close());
  assert.equal(again.firstStart, false, 'the start after a served first start is a restart');
});

test('a first start (on a store that has keys) killed right after making its certificate: the next start is the first', async (t) => {
  const dir = tempDir(t);
  // `ladder keys add --data-dir` before the server's first start (or a fleet node joining a store).
  const store = await openStore(parseStoreLocation(undefined, dir));
  await createAccessKeys(store, { name: 'made before', method: 'chacha20-ietf-poly1305', port: 4444 });
  await store.close();
  await crashAt(dir, 'certificate', 0);
  assert.ok(existsSync(join(dir, CERT_FILE)), 'the crash came after the certificate was made');

  const m = await startManaged({ ...flags(dir), metrics: false }, silentLogger, { drawQr: false });
  t.after(() => m.close());
  assert.equal(m.firstStart, true, "the start after the crash prints the first start's banner");
  assert.match(m.logBanner, /^\{"apiUrl":/m, 'the access config is in the log banner');
  // Without metrics (--no-metrics) the title does not promise them.
  assert.match(m.banner, /^Ladder server — managed mode \(key store, management API\)\n/);
  await m.close();

  const again = await startManaged({ ...flags(dir), metrics: false }, silentLogger, { drawQr: false });
  t.after(() => again.close());
  assert.equal(again.firstStart, false, 'the start after a served first start is a restart');
  assert.doesNotMatch(again.publicBanner, /"apiUrl"/, "a restart's log banner has no access config");
});
