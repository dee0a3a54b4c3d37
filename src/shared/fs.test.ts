import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDirs } from './fs.js';

test('makeDirs: nested directories with the mode, an existing one is fine, a file is not', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'ladder-fs-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const deep = join(root, 'a', 'b', 'c');
  makeDirs(deep);
  assert.ok(statSync(deep).isDirectory());
  assert.equal(statSync(join(root, 'a')).mode & 0o777, 0o700);
  makeDirs(deep);
  writeFileSync(join(root, 'f'), '');
  assert.throws(() => makeDirs(join(root, 'f')), { code: 'EEXIST' });
});

test(
  'makeDirs fails at once where the kernel refuses with ENOENT (/proc), instead of looping',
  {
    skip: !existsSync('/proc/self') && 'no procfs',
  },
  () => {
    const start = Date.now();
    assert.throws(() => makeDirs('/proc/nope/deeper'), { code: 'ENOENT' });
    assert.ok(Date.now() - start < 1000);
  },
);
