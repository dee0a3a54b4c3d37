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
  assert.equal(ladderCommand({ PATH: `${linked}:${other}` }, dir), 'ladder');
  // The shell runs the first `ladder` on PATH: another one ahead of this copy shadows it.
  assert.notEqual(ladderCommand({ PATH: `${other}:${linked}` }, dir), 'ladder');
  // `npx ladder` in the checkout runs a copy it put on PATH in npm's cache; the user's shell has
  // no such entry, so the banners say `npx ladder`, not `ladder`.
  const npx = join(dir, '_npx', 'abc', 'node_modules', '.bin');
  mkdirSync(npx, { recursive: true });
  symlinkSync(BIN, join(npx, 'ladder'));
  assert.equal(ladderCommand({ PATH: `${npx}:${other}`, npm_lifecycle_event: 'npx' }, ROOT), 'npx ladder');
  assert.equal(ladderCommand({ PATH: `${npx}:${linked}`, npm_lifecycle_event: 'npx' }, ROOT), 'ladder');
  assert.equal(ladderCommand({ PATH: other }, ROOT), 'npx ladder', 'an unrelated ladder on PATH');
  assert.equal(ladderCommand({ PATH: '' }, dir), `node ${/\s/.test(BIN) ? JSON.stringify(BIN) : BIN}`);
});
