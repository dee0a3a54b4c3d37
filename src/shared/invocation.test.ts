import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ladderCommand } from './invocation.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'ladder.js');

test('ladderCommand: `ladder` when PATH has this copy, `npx ladder` in the checkout, else node with the path', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-path-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const other = join(dir, 'other');
  const linked = join(dir, 'linked');
  for (const d of [other, linked]) mkdirSync(d); // two bin dirs
  symlinkSync('/bin/true', join(other, 'ladder')); // some other `ladder`
  symlinkSync(BIN, join(linked, 'ladder')); // what `npm link` makes (through more links)

  assert.equal(ladderCommand({ PATH: linked }, dir), 'ladder');
  assert.equal(ladderCommand({ PATH: `${other}:${linked}` }, dir), 'ladder');
  assert.equal(ladderCommand({ PATH: other }, ROOT), 'npx ladder', 'an unrelated ladder on PATH');
  assert.equal(ladderCommand({ PATH: '' }, dir), `node ${/\s/.test(BIN) ? JSON.stringify(BIN) : BIN}`);
});
