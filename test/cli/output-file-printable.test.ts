/**
 * An output file's path is echoed in its error line (`--json PATH: its directory … does not
 * exist`): a path holding an escape sequence or a newline (pasted, or built by a script) must not
 * reach the terminal raw, where it could clear the screen, set the window title or start a line
 * that looks like ladder's own. Before, checkOutputFile printed it as given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkOutputFile } from '../../src/cli/commands/output-file.js';
import { run } from '../helpers/cli-run.js';
import { tempDir } from '../api/helpers.js';

// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

test('checkOutputFile: a missing directory and a file in the way are named with their controls escaped', (t) => {
  const base = tempDir(t);
  const missing = join(base, 'no\u001b[2Jdir', 'out.json');
  assert.throws(
    () => checkOutputFile(missing, '--json'),
    (err: Error) => {
      assert.ok(!RAW_CONTROL.test(err.message), JSON.stringify(err.message));
      assert.equal(
        err.message,
        `--json ${base}/no\\e[2Jdir/out.json: its directory ${base}/no\\e[2Jdir: does not exist`,
      );
      return true;
    },
  );
  const file = join(base, 'red\u009b31m\nladder: ok');
  writeFileSync(file, 'x');
  assert.throws(
    () => checkOutputFile(join(file, 'out.json'), '--html'),
    (err: Error) => {
      assert.ok(!RAW_CONTROL.test(err.message), JSON.stringify(err.message));
      assert.match(err.message, /red\\x9b31m\\nladder: ok is not a directory$/);
      return true;
    },
  );
  const dir = join(base, 'is\u0007dir');
  mkdirSync(dir);
  assert.throws(() => checkOutputFile(dir, '--decisions'), {
    message: `--decisions ${base}/is\\x07dir: is a directory, not a file`,
  });
});

test('ladder probe --json with an escape sequence in the path: one escaped line, exit 2', async () => {
  const path = '/nonexistent-ux20\u001b]0;pwned\u0007/out.json';
  const r = run(['probe', '--json', path, '--list', 'example.com']);
  const stop = setTimeout(() => r.child.kill(), 20_000);
  const code = await r.exit;
  clearTimeout(stop);
  assert.equal(code, 2, r.stderr());
  assert.ok(!RAW_CONTROL.test(r.stderr()), JSON.stringify(r.stderr()));
  assert.equal(
    r.stderr(),
    'ladder: --json /nonexistent-ux20\\e]0;pwned\\x07/out.json: its directory /nonexistent-ux20\\e]0;pwned\\x07: does not exist\n',
  );
});
