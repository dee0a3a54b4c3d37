/**
 * `ladder keys rotate ID --password -` reads the new secret from standard input (one line), so it
 * is not in the process list: the real CLI with a pipe, then the store's secret is the line
 * (before, "-" was taken as the secret itself). An empty input is refused in one line, and the
 * key keeps its secret. The terminal path (a prompt, no echo) with a stand-in terminal.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { readSecretLine } from '../../src/cli/secret-input.js';
import { runLadder } from '../helpers/ladder-run.js';

interface ListedKey {
  id: string;
  password: string;
}

async function secretOf(dir: string, id: string): Promise<string> {
  const r = await runLadder(['keys', '--data-dir', dir, 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as ListedKey[]).find((k) => k.id === id)!.password;
}

test('keys rotate --password - takes the secret from a pipe, not the command line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-rotate-stdin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const add = await runLadder(['keys', '--init', '--data-dir', dir, 'add', '--name', 'a', '--no-qr']);
  assert.equal(add.code, 0, add.stderr);
  const id = (
    JSON.parse((await runLadder(['keys', '--data-dir', dir, 'list', '--json'])).stdout) as ListedKey[]
  )[0]!.id;

  const rotated = await runLadder(['keys', '--data-dir', dir, 'rotate', id, '--password', '-'], {
    stdin: 'piped-secret-42\r\nsecond line ignored\n',
  });
  assert.equal(rotated.code, 0, rotated.stderr);
  assert.match(rotated.stdout + rotated.stderr, /rotated /);
  assert.equal(await secretOf(dir, id), 'piped-secret-42');
  assert.ok(!(rotated.stdout + rotated.stderr).includes('piped-secret-42'), 'the secret is not echoed');

  const empty = await runLadder(['keys', '--data-dir', dir, 'rotate', id, '--password', '-'], { stdin: '' });
  assert.equal(empty.code, 2, empty.stderr);
  assert.match(empty.stderr.trim(), /^ladder: --password -: nothing on standard input/);
  assert.equal(empty.stderr.trim().split('\n').length, 1, empty.stderr);
  assert.equal(await secretOf(dir, id), 'piped-secret-42', 'nothing changed');

  // --password SECRET still works.
  const given = await runLadder(['keys', '--data-dir', dir, 'rotate', id, '--password', 'given-secret-7']);
  assert.equal(given.code, 0, given.stderr);
  assert.equal(await secretOf(dir, id), 'given-secret-7');
});

/** A stand-in terminal: records raw mode, gets keystrokes pushed. */
function fakeTerminal(): {
  input: PassThrough & { isTTY: boolean; setRawMode: (r: boolean) => void };
  raw: boolean[];
} {
  const raw: boolean[] = [];
  const input = Object.assign(new PassThrough(), {
    isTTY: true,
    setRawMode: (r: boolean) => void raw.push(r),
  });
  return { input, raw };
}

test('on a terminal --password - prompts, does not echo, and takes backspace', async () => {
  const { input, raw } = fakeTerminal();
  const shown = new PassThrough();
  let out = '';
  shown.on('data', (c: Buffer) => (out += c.toString()));
  const line = readSecretLine('--password -', input, shown);
  input.write('sekrit');
  input.write('\u007fT\r');
  assert.equal(await line, 'sekriT');
  assert.deepEqual(raw, [true, false], 'raw mode on while typing, off after');
  assert.match(out, /type the secret/);
  assert.ok(!out.includes('sekri'), 'the typing is not echoed');

  const t2 = fakeTerminal();
  const cancelled = readSecretLine('--password -', t2.input, new PassThrough());
  t2.input.write('abc\u0003');
  await assert.rejects(cancelled, /--password -: cancelled/);
  assert.deepEqual(t2.raw, [true, false]);
});
