// Flags that were accepted and then ignored, or named their source twice, through the real CLI
// (node bin/ladder.js): each is now refused in one line (exit 2) or honoured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../api/helpers.js';
import { escapeRe as esc, oneUsageLine, runLadder } from '../helpers/ladder-run.js';

const KEY = 'ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpKUjAyaXlKYXZPVXpKTWtiUWxGUE9iQTlGUTJyX2pZVg@192.0.2.2:8388';

test('client --status with flags it would ignore is refused, naming them as given; --state-dir is its own', async (t) => {
  const dir = tempDir(t);
  const cases: Array<[string[], string]> = [
    [['--key', KEY], '--key'],
    [['--no-socks', '--http', '127.0.0.1:0'], '--no-socks, --http'],
    [['--socks', '127.0.0.1:0', '--shape', '--log-level', 'debug'], '--socks, --shape, --log-level'],
  ];
  for (const [args, named] of cases) {
    const r = await runLadder(['client', '--status', '--state-dir', dir, ...args], { killAfterMs: 20_000 });
    oneUsageLine(r, args.join(' '), new RegExp(`^ladder: --status .*: drop ${esc(named)}$`));
  }
  const ok = await runLadder(['client', '--status', '--state-dir', dir], { killAfterMs: 20_000 });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^no ladder client status in /);
});
