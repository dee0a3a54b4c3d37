/**
 * `ladder keys url ID --qr-png FILE`: the picture holds the key (password and server) as plainly
 * as the ss:// URL. Before, qrcode's own toFile wrote it under the umask (0644: every local user
 * could read it, where backups and probe reports are 0600), followed a link planted at its name,
 * and answered a missing directory with "no such file" (of the file it was asked to create).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../api/helpers.js';
import { inproc } from '../api/keys-inproc.js';

const PNG_MAGIC = '89504e470d0a1a0a';

test('keys url --qr-png writes the picture readable by its owner only, never through a link', async (t) => {
  const dir = tempDir(t);
  const d = ['--data-dir', dir];
  let r = await inproc(['keys', '--init', 'add', '--name', 'Alice', ...d]);
  assert.equal(r.code, 0, r.stderr);

  const old = process.umask(0o022);
  t.after(() => process.umask(old));
  const png = join(dir, 'qr.png');
  r = await inproc(['keys', 'url', '0', '--no-qr', '--qr-png', png, ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(png).subarray(0, 8).toString('hex'), PNG_MAGIC);
  assert.equal(statSync(png).mode & 0o777, 0o600, 'the key in a picture is a secret');

  // A link at the name (another user's planted file, or a file of one's own): replaced, not followed.
  const target = join(dir, 'elsewhere.txt');
  writeFileSync(target, 'untouched');
  const linked = join(dir, 'linked.png');
  symlinkSync(target, linked);
  r = await inproc(['keys', 'url', '0', '--no-qr', '--qr-png', linked, ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(target, 'utf8'), 'untouched');
  assert.ok(!lstatSync(linked).isSymbolicLink());
  assert.equal(readFileSync(linked).subarray(0, 8).toString('hex'), PNG_MAGIC);
});

test('keys url --qr-png into a missing directory or onto a directory: one line, no URL printed', async (t) => {
  const dir = tempDir(t);
  const d = ['--data-dir', dir];
  assert.equal((await inproc(['keys', '--init', 'add', '--name', 'Bob', ...d])).code, 0);

  const missing = join(dir, 'no', 'such', 'qr.png');
  let r = await inproc(['keys', 'url', '0', '--qr-png', missing, ...d]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '', 'no secret printed before the refusal');
  assert.equal(
    r.stderr,
    `ladder: --qr-png ${missing}: its directory ${join(dir, 'no', 'such')}: does not exist\n`,
  );

  r = await inproc(['keys', 'url', '0', '--qr-png', dir, ...d]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `ladder: --qr-png ${dir}: is a directory, not a file\n`);
});
