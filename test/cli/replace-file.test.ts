/**
 * `replaceFile` / `replaceFileSync` (src/shared/data-file.ts) with the names a user gives: a file
 * name up to the file system's 255 bytes is written (the temporary name beside it used to add 27
 * characters, so a name over ~228 failed with ENAMETOOLONG), and a step that fails is reported
 * about the file the user named, never the temporary file (which they never named and which is
 * gone by then).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeWhole } from '../../src/cli/commands/output-file.js';
import { replayStateFile } from '../../src/server/replay-state.js';
import { replaceFile, replaceFileSync, tempPrefix } from '../../src/shared/data-file.js';
import { tempDir } from '../api/helpers.js';

const WRITES = [
  { name: 'replaceFile', write: (f: string, text: string) => replaceFile(f, text) },
  { name: 'replaceFileSync', write: (f: string, text: string) => replaceFileSync(f, text) },
];

/** Names of 255 bytes (NAME_MAX): ASCII, and two- and three-byte characters cut near the limit. */
const LONG_NAMES = [
  'a'.repeat(255),
  `${'é'.repeat(127)}x`, // 255 bytes
  `${'語'.repeat(85)}`, // 255 bytes
];

for (const { name, write } of WRITES) {
  test(`${name}: a file name of 255 bytes is written; nothing else is left`, async (t) => {
    const dir = tempDir(t);
    for (const base of LONG_NAMES) {
      assert.equal(Buffer.byteLength(base), 255);
      const file = join(dir, base);
      await write(file, 'one');
      await write(file, 'two'); // over an existing file too
      assert.equal(readFileSync(file, 'utf8'), 'two');
    }
    assert.deepEqual(readdirSync(dir).sort(), [...LONG_NAMES].sort());
  });

  test(`${name}: a failed rename names the file, not the temporary file`, async (t) => {
    const dir = tempDir(t);
    const file = join(dir, 'out.json');
    mkdirSync(file);
    writeFileSync(join(file, 'x'), ''); // a non-empty directory: the rename over it fails
    const err = await Promise.resolve()
      .then(() => write(file, 'secret'))
      .then(
        () => assert.fail('written'),
        (e: unknown) => e as NodeJS.ErrnoException,
      );
    assert.match(err.message, /^E[A-Z]+: /);
    assert.ok(err.message.includes(`'${file}'`), err.message);
    assert.doesNotMatch(`${err.message}\n${err.stack}`, /\.tmp/);
    assert.equal(err.path, file);
    assert.equal((err as { dest?: string }).dest, undefined);
    assert.deepEqual(readdirSync(dir), ['out.json']);
  });

  test(`${name}: a file in a directory that is not there: the error names the file`, async (t) => {
    const file = join(tempDir(t), 'missing', 'out.json');
    const err = await Promise.resolve()
      .then(() => write(file, 'secret'))
      .then(
        () => assert.fail('written'),
        (e: unknown) => e as NodeJS.ErrnoException,
      );
    assert.equal(err.code, 'ENOENT');
    assert.equal(err.message, `ENOENT: no such file or directory, write '${file}'`);
    assert.equal(err.path, file);
  });
}

test('an output file (probe --json) with a 255-byte name is written', async (t) => {
  const file = join(tempDir(t), 'r'.repeat(250) + '.json');
  await writeWhole(file, '{}\n');
  assert.equal(readFileSync(file, 'utf8'), '{}\n');
});

test('the replay state with a long name: saved, and a crashed save at its cut name swept', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 's'.repeat(250)); // FILE.prev is 255 bytes
  const left = join(dir, `${tempPrefix(file)}0123456789abcdef.tmp`);
  writeFileSync(left, 'left by a crashed save');
  const store = replayStateFile(file);
  assert.equal(await store.read(), undefined);
  assert.deepEqual(readdirSync(dir), [], 'the stale temporary file is removed');
  await store.write(Buffer.from('one'));
  await store.write(Buffer.from('two'));
  assert.equal(readFileSync(file, 'utf8'), 'two');
  assert.equal(readFileSync(`${file}.prev`, 'utf8'), 'one');
});

test("tempPrefix: NAME. for a short name; a long one cut at a character's start", () => {
  assert.equal(tempPrefix('/d/replay.bin'), 'replay.bin.');
  assert.equal(tempPrefix(join('/d', 'a'.repeat(255))), `${'a'.repeat(200)}.`);
  // 'é' is 2 bytes: 200 bytes end on a character's end; '語' is 3: cut back to 198.
  assert.equal(tempPrefix(`/d/${'é'.repeat(127)}`), `${'é'.repeat(100)}.`);
  assert.equal(tempPrefix(`/d/${'語'.repeat(85)}`), `${'語'.repeat(66)}.`);
});
