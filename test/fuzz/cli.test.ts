/**
 * The fuzzers' findings as a person meets them: representative bad inputs (config files with
 * control characters, binary garbage, keys whose plugin options or host hold control characters,
 * a damaged replay state file) through the real CLI (bin/ladder.js on dist). Each must end with
 * one line on stderr naming what and where, no stack trace, no password, and a non-zero exit.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runLadder } from '../helpers/ladder-run.js';

const SECRET = 'Sekrit-pa55word';
const userinfo = Buffer.from(`aes-256-gcm:${SECRET}`).toString('base64url');

test('CLI: bad files and keys end in one line on stderr, no stack, non-zero exit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-fuzz-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, data: string | Buffer): string => {
    writeFileSync(join(dir, name), data);
    return join(dir, name);
  };
  const key = { id: 'a', method: 'aes-256-gcm', password: SECRET };
  const garbage = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 167 + 13) & 0xff));
  const cases: Array<[string[], RegExp]> = [
    // A misspelt field whose name holds a CR: the message used to carry the raw CR.
    [
      [
        'server',
        '--config',
        file('cr.json', `{"keys":[{"id":"a","method":"aes-256-gcm","passw\\rd":"${SECRET}"}]}`),
      ],
      /cr\.json: keys\[0\]: unknown field "passw\\x0dd"/,
    ],
    // JSON broken by a newline inside a literal: V8 names the token as a raw newline.
    [
      ['client', '--config', file('nl.json', '{"udp":tru\ne}')],
      /nl\.json: line \d+, column \d+: unexpected token '\\x0a'/,
    ],
    [['server', '--config', file('bin.json', garbage)], /bin\.json: line 1, column \d+: unexpected token/],
    [
      [
        'server',
        '--config',
        file(
          'dup.json',
          JSON.stringify({
            keys: [
              { ...key, id: 'x\ny' },
              { ...key, id: 'x\ny' },
            ],
          }),
        ),
      ],
      /dup\.json: keys\[1\]/,
    ],
    // A path with a control character in a key's plugin options: was accepted, then dialled.
    [
      ['client', '--key', `ss://${userinfo}@h.example:443?plugin=v2ray-plugin%3Bpath%3D%2Fa%0Ab`],
      /--key: invalid ss:\/\/ URL: v2ray-plugin option "path"/,
    ],
    [
      ['client', '--key', `ss://${userinfo}@h.example:443?plugin=v2ray-plugin%3Bmode%3Dq%0Auic`],
      /--key: invalid ss:\/\/ URL: v2ray-plugin mode "q\\nuic"/,
    ],
    [['client', '--key', `ss://${userinfo}@h%09x:1`], /--key: invalid ss:\/\/ URL: host contains/],
    [
      ['client', '--key', `ss://${userinfo}@h.example:1?plugin=obfs%0Alocal`],
      /--key: .*SIP003 plugin "obfs\\nlocal"/,
    ],
    [
      [
        'server',
        '--config',
        file(
          'rs.json',
          JSON.stringify({
            keys: [key],
            host: '127.0.0.1',
            port: 0,
            replayStateFile: file('state', garbage),
          }),
        ),
      ],
      /replay state .*state is damaged \(not a replay state file\)/,
    ],
  ];
  const runs = await Promise.all(cases.map(([args]) => runLadder(args, { cwd: dir, killAfterMs: 30_000 })));
  runs.forEach((r, i) => {
    const [args, want] = cases[i]!;
    const what = `ladder ${args.join(' ')} -> ${r.code}: ${JSON.stringify(r.stderr)}`;
    assert.notEqual(r.code, 0, what);
    assert.notEqual(r.code, -1, `killed: ${what}`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `not one line: ${what}`);
    assert.match(lines[0]!, /^ladder: /, what);
    assert.match(lines[0]!, want, what);
    assert.doesNotMatch(r.stderr, /\n\s+at |Error:/, what);
    assert.ok(!r.stderr.includes(SECRET), `password in stderr: ${what}`);
    assert.equal(r.stdout, '', what);
  });
});
