// A key pasted wrong (nothing, its quotes, the README's shortened `ss://…`, its start cut off)
// gets one line from the real CLI saying what happened, exit 2, none of the key.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { oneUsageLine, runLadder } from '../helpers/ladder-run.js';
import { keyPasteProblem } from '../../src/cli/key-paste.js';

const BODY = 'Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpwYXN0ZS10ZXN0LXNlY3JldA'; // chacha20-ietf-poly1305:paste-test-secret
const KEY = `ss://${BODY}@127.0.0.1:9/?outline=1#k`;

const CASES: Array<{ key: string; re: RegExp }> = [
  { key: '', re: /^ladder: --key is empty \(a shell variable that held no key\?\)/ },
  {
    key: `"${KEY}"`,
    re: /^ladder: --key starts or ends with a quote or bracket that is not part of the key/,
  },
  { key: `'${KEY}`, re: /^ladder: --key starts or ends with a quote/ },
  { key: 'ss://…', re: /^ladder: --key holds "…", a key shortened as the README shows one/ },
  { key: `ss://${BODY.slice(0, 20)}...@127.0.0.1:9`, re: /^ladder: --key holds "…"/ },
  { key: `ss:/${KEY.slice(5)}`, re: /^ladder: --key starts with "ss:" but not "ss:\/\/"/ },
  {
    key: KEY.slice(5),
    re: /^ladder: --key does not start with ss:\/\/ .*the start of the key was not copied\?$/,
  },
];

test('client: a key pasted wrong is one line saying how, exit 2, none of the key', async () => {
  for (const { key, re } of CASES) {
    const r = await runLadder(['client', '--key', key, '--socks', '127.0.0.1:0'], { killAfterMs: 30_000 });
    oneUsageLine(r, JSON.stringify(key), re);
    assert.ok(!r.stderr.includes(BODY.slice(8, 24)), `key echoed: ${r.stderr}`);
  }
});

test('client: the second of two keys and a config file key are named in the line', async () => {
  const two = await runLadder(['client', '--key', KEY, '--key', '', '--socks', '127.0.0.1:0'], {
    killAfterMs: 30_000,
  });
  oneUsageLine(two, 'second --key', /^ladder: --key #2 is empty/);
  const dir = mkdtempSync(join(tmpdir(), 'ladder-paste-'));
  try {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ keys: ['ss://…'], socks: '127.0.0.1:0' }));
    const r = await runLadder(['client', '--config', file], { killAfterMs: 30_000 });
    oneUsageLine(r, 'config keys[0]', /^ladder: .*c\.json: keys\[0\] holds "…"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a key whose #name holds dots or quotes is a key, not a bad paste (review21)', () => {
  for (const name of ['Office...', "'Home'", 'a…b', 'x"'])
    assert.equal(keyPasteProblem(`${KEY}${name}`), undefined, name);
  // Quotes around the whole key, name and all, are still a paste gone wrong.
  assert.match(keyPasteProblem(`'${KEY}Home'`) ?? '', /quote/);
  assert.match(keyPasteProblem(`ss://${BODY}...#k`) ?? '', /shortened/);
});
