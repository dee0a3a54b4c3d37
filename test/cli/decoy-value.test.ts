/**
 * `--decoy` takes builtin, a directory or an http(s) site. A value that is none of them is one
 * line saying which it looked like: a directory that does not exist says so; a URL of another
 * scheme (`ftp://`, `wss://`) says which sites the decoy shows. Before, every one of them was
 * "not a directory", which for `--decoy ftp://mirror` or a mistyped path told nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planWeb } from '../../src/cli/web.js';

async function refusal(decoy: string, file?: { source: string }): Promise<string> {
  const flags = { webPort: '0', ...(file ? {} : { decoy }) };
  const fromFile = file ? { web: { port: 0, decoy }, source: file.source } : undefined;
  try {
    await planWeb(flags, fromFile as never, undefined);
  } catch (err) {
    return (err as Error).message;
  }
  return 'taken';
}

test('--decoy: a missing directory, a file, another scheme, a near miss of builtin; the good forms taken', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-decoy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'index.html');
  writeFileSync(file, '<p>hi</p>');
  assert.equal(await refusal(join(dir, 'nope')), `--decoy ${join(dir, 'nope')}: no such directory`);
  assert.equal(await refusal(file), `--decoy ${file}: not a directory`);
  assert.equal(
    await refusal('ftp://mirror.example/pub'),
    '--decoy ftp://mirror.example/pub: not a directory (a site to show is https://HOST[/PATH], or http:// on this machine or its network)',
  );
  assert.equal(await refusal('bulitin'), '--decoy bulitin: not a directory (did you mean builtin?)');
  // From a config file: its field named, not the flag.
  assert.equal(
    await refusal(join(dir, 'nope'), { source: 'server.json' }),
    `server.json: web.decoy ${join(dir, 'nope')}: no such directory`,
  );
  for (const good of ['builtin', dir, 'https://example.com/', 'http://127.0.0.1:8080']) {
    assert.equal(await refusal(good), 'taken', good);
  }
});
