// README's "Commands" list names every command and subcommand ladder registers (keys rotate and
// server rotate-cert were missing), and the options a newcomer otherwise meets only in --help.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandTree } from '../helpers/command-tree.js';
import { REPO_ROOT } from '../helpers/peers.js';

/** The code block under README's "## Commands". */
function commandsBlock(): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const m = /^## Commands\n+```\n([\s\S]*?)\n```/m.exec(readme);
  assert.ok(m, 'README has a Commands block');
  return m[1]!;
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('README Commands names every command and subcommand', async () => {
  const block = commandsBlock();
  const missing: string[] = [];
  for (const { path } of await commandTree()) {
    const [top, ...rest] = path.map(esc);
    const named =
      rest.length === 0
        ? new RegExp(`^ladder ${top}\\b`, 'm')
        : // `ladder server rotate-cert …`, `ladder keys   add|list|rotate|…`, `ladder store  backup FILE|restore FILE|…`
          new RegExp(`^ladder ${top}(?:\\s[^\\n]*?)?(?:\\s|\\|)${rest.join(' ')}(?:\\||\\s|$)`, 'm');
    if (!named.test(block)) missing.push(path.join(' '));
  }
  assert.deepEqual(missing, []);
});

test('README Commands shows the options only --help told: keys --insecure, client --no-socks', () => {
  const block = commandsBlock();
  assert.match(block, /^ladder keys\b[^\n]*\n?[^\n]*--insecure/m);
  assert.match(block, /--no-socks/);
});
