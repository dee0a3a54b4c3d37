/**
 * nginx's send_timeout on the web front (send-timeout.ts): a client that asks for a large file
 * and stops reading loses its connection once nothing moves for the timeout (shortened here);
 * a client that reads slowly, with pauses shorter than the timeout, gets the whole file.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { dirDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { tempDir } from './fixtures.js';

const SEND_TIMEOUT_MS = 800;
const SIZE = 12 * 1024 * 1024;
const tmp = tempDir('send-timeout');
let front: WebFront;
before(async () => {
  writeFileSync(join(tmp.path, 'big.bin'), Buffer.alloc(SIZE, 7));
  front = await startWebFront({
    port: 0,
    host: '127.0.0.1',
    secretPath: '/s3cret-path',
    decoy: dirDecoy(tmp.path),
    onUpgrade: () => false,
    sendTimeoutMs: SEND_TIMEOUT_MS,
  });
});
after(async () => {
  await front?.close();
  tmp.remove();
});

function get(): net.Socket {
  const s = net.connect(front.port, '127.0.0.1');
  s.on('error', () => {});
  s.write('GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n');
  return s;
}

test('a client that stops reading is closed after the send timeout', async () => {
  const s = get();
  s.pause();
  // The server's close waits behind the bytes already in the kernel: the client sees it once it
  // reads again, as a body cut short (on a connection kept open it would get every byte).
  await new Promise((r) => setTimeout(r, 4 * SEND_TIMEOUT_MS));
  let got = 0;
  s.on('data', (d: Buffer) => (got += d.length));
  s.resume();
  const closed = once(s, 'close');
  const kept = new Promise((r) => setTimeout(r, 10_000, 'still open'));
  assert.notEqual(await Promise.race([closed, kept]), 'still open', 'the server closed the connection');
  assert.ok(got < SIZE, `received ${got} bytes, less than the ${SIZE}-byte body`);
  s.destroy();
});

test('a slow reader, pausing less than the timeout, gets the whole file', async () => {
  const s = get();
  let got = 0;
  s.on('data', (d: Buffer) => {
    got += d.length;
    s.pause();
    setTimeout(() => s.resume(), 25);
  });
  const started = Date.now();
  // Headers and body: the body's length is known, so stop when it has all come.
  while (got < SIZE && !s.destroyed && Date.now() - started < 30_000)
    await new Promise((r) => setTimeout(r, 50));
  assert.ok(got >= SIZE, `received ${got} of ${SIZE} bytes`);
  assert.ok(Date.now() - started > 2 * SEND_TIMEOUT_MS, 'slower than the timeout: the test means something');
  s.destroy();
});
