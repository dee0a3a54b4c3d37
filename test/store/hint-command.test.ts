// The restore and repair hints a person sees name the command the way this ladder can be run
// from where they are (ladderCommand): `npx ladder` in the checkout, `node /path/bin/ladder.js`
// elsewhere (not `ladder`, which is not on PATH unless linked). A lost store (its marker without
// its database) and a damaged API certificate, each refused by the real CLI from both places.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ladderCommand } from '../../src/shared/invocation.js';
import { tempDir } from '../api/helpers.js';
import { managedServerArgs, runLadder } from '../helpers/ladder-run.js';
import { LADDER_BIN, REPO_ROOT } from '../helpers/peers.js';

test('restore and rotate-cert hints name the command as it can be run from here', async (t) => {
  const elsewhere = tempDir(t);
  const asHere = ladderCommand(process.env, elsewhere);
  assert.notEqual(asHere, 'ladder', 'this test needs `ladder` not on PATH as this copy');
  assert.equal(asHere, `node ${LADDER_BIN}`);

  const dir = tempDir(t);
  const add = await runLadder(['keys', '--init', '--data-dir', dir, 'add', '--no-qr']);
  assert.equal(add.code, 0, add.stderr);
  rmSync(join(dir, 'ladder.db')); // the marker stays: a lost store
  for (const [cwd, cmd] of [
    [elsewhere, `node ${LADDER_BIN}`],
    [REPO_ROOT, 'npx ladder'],
  ] as const) {
    const r = await runLadder(['keys', '--data-dir', dir, 'list'], { cwd });
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(`restore a backup with: ${cmd} store restore BACKUP --store `), r.stderr);
  }

  const certDir = tempDir(t);
  writeFileSync(join(certDir, 'api-cert.pem'), 'not a certificate\n');
  writeFileSync(join(certDir, 'api-key.pem'), '');
  const r = await runLadder(managedServerArgs(certDir), { cwd: elsewhere, killAfterMs: 30_000 });
  assert.equal(r.code, 2, r.stderr);
  assert.ok(r.stderr.includes(`node ${LADDER_BIN} server rotate-cert --data-dir `), r.stderr);
});
