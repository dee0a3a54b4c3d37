// `ladder keys` and the config-file errors as a newcomer meets them, through the real CLI
// (node bin/ladder.js): every refusal is one line `ladder: …` with exit code 2, every change
// is confirmed in one line, and nothing a key's name holds reaches the terminal raw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { tempDir } from '../api/helpers.js';
import { runLadder, seeHelp, type LadderRun } from '../helpers/ladder-run.js';

function ladder(args: string[], cwd?: string, killAfterMs?: number): Promise<LadderRun> {
  return runLadder(args, { ...(cwd ? { cwd } : {}), ...(killAfterMs ? { killAfterMs } : {}) });
}

/** Exit 2 with exactly one stderr line matching `re`, nothing on stdout. */
function refused(r: LadderRun, re: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^ladder: /);
  assert.match(lines[0]!, re);
}

/** Exit 0 with exactly one stdout line matching `re`. */
function confirmed(r: LadderRun, re: RegExp): void {
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stdout);
  assert.match(lines[0]!, re);
}

test('a missing store is refused (add, list, url), nothing is created; --init creates it', async (t) => {
  const cwd = tempDir(t);
  const hint = /no key store at \S+ladder\.db: .*--data-dir.*--store.*--api.*--init/;
  refused(await ladder(['keys', 'add', '--name', 'x'], cwd), hint);
  refused(await ladder(['keys', 'list'], cwd), hint);
  refused(await ladder(['keys', 'url', '0'], cwd), hint);
  refused(await ladder(['keys', '--data-dir', join(cwd, 'a', 'b'), 'list'], cwd), hint);
  assert.ok(!existsSync(join(cwd, '.ladder')), 'no store directory created');
  assert.ok(!existsSync(join(cwd, 'a')), '--data-dir not created');
  refused(
    await ladder(['keys', '--init', '--data-dir', join(cwd, 'a', 'b'), 'list'], cwd),
    /cannot create \S+b: its parent directory does not exist/,
  );
  const r = await ladder(['keys', '--init', 'add', '--name', 'Alice', '--no-qr'], cwd);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^created key 0 "Alice"\nss:\/\/\S+#Alice\n$/, 'one URL, no QR code');
  assert.ok(existsSync(join(cwd, '.ladder', 'ladder.db')));
});

test('--data-dir on an unreadable path (/proc/nope) fails at once with one line', async () => {
  // The bound: a trivial command's start-up time on this machine, plus 5 s. Before the fix the
  // CLI spun in Node's recursive mkdir for as long as it was let (over 40 s).
  const baseline = (await ladder(['--version'])).ms;
  for (const init of [[], ['--init']]) {
    const r = await ladder(
      ['keys', ...init, '--data-dir', '/proc/nope', 'list'],
      undefined,
      baseline + 5_000,
    );
    refused(r, init.length ? /cannot create \/proc\/nope: / : /no key store at \/proc\/nope\/ladder\.db/);
    assert.ok(r.ms < baseline + 5_000, `took ${r.ms} ms (start-up ${baseline} ms)`);
  }
});

test("a store path that is a symbolic link to nothing: one line saying so (--init was SQLite's words)", async (t) => {
  const dir = tempDir(t);
  const link = join(dir, 'ladder.db');
  symlinkSync(join(dir, 'gone', 'ladder.db'), link);
  const why = new RegExp(
    `^ladder: ${link}: a symbolic link to ${join(dir, 'gone', 'ladder.db')}, which does not exist \\(expected the SQLite key store\\)$`,
  );
  for (const args of [['list'], ['--init', 'add'], ['--store', `sqlite:${link}`, '--init', 'add']]) {
    const r = await ladder(['keys', '--data-dir', dir, ...args]);
    refused(r, why);
  }
  assert.ok(!existsSync(join(dir, 'gone')), 'nothing created');
});

test('every change is confirmed in one line; sizes, dates and periods are strict', async (t) => {
  const dir = tempDir(t);
  const k = (...args: string[]) => ladder(['keys', '--data-dir', dir, ...args]);
  const r = await k('--init', 'add', '--name', 'Alice', '--limit', '10GB', '--no-qr');
  assert.match(r.stdout, /^created key 0 "Alice": data limit 9\.31 GiB in any 30 days \(rolling30d\)\n/);

  refused(await k('limit', '0', '10'), /^ladder: limit must be a size with a unit .* like 10GB, got "10"$/);
  refused(await k('limit', '0', '-5GB'), /^ladder: limit must be a positive size like 10GB, got "-5GB"$/);
  refused(await k('limit', '0', '-5'), /^ladder: limit must be a positive size like 10GB, got "-5"$/);
  refused(await k('limit', '0', '10XB'), /unit B, kB, MB, GB, TB, KiB, MiB, GiB or TiB/);
  confirmed(
    await k('limit', '0', '500MiB', '--period', 'monthly'),
    /^key 0 "Alice": data limit 500\.00 MiB per calendar month, UTC \(monthly\) \(period as given\)$/,
  );
  confirmed(
    await k('limit', '0', '1.5TB'),
    /^key 0 "Alice": data limit 1396\.98 GiB per calendar month, UTC \(monthly\) \(period kept from before; change it with --period\)$/,
  );
  confirmed(await k('limit', '0', 'none'), /^key 0 "Alice": data limit removed \(no limit\)$/);
  refused(await k('limit', '0', 'none', '--period', 'daily'), /--period is the window of a data limit/);

  refused(await k('expire', '0', '2027-02-30'), /^ladder: expiry "2027-02-30": February 2027 has 28 days$/);
  refused(await k('expire', '0', '2028-13-01'), /there is no month 13/);
  refused(await k('expire', '0', '2020-01-01'), /expiry 2020-01-01T00:00Z is in the past.*--force/);
  refused(
    await k('expire', '0', '-3d'),
    /expiry must be a date, a date-time or a duration from now like 30d/,
  );
  confirmed(await k('expire', '0', '2020-01-01', '--force'), /^key 0 "Alice": expires 2020-01-01T00:00Z$/);
  confirmed(await k('expire', '0', '2028-02-29T18:30+02:00'), /^key 0 "Alice": expires 2028-02-29T16:30Z$/);
  confirmed(await k('expire', '0', 'never'), /^key 0 "Alice": expiry removed \(never expires\)$/);

  confirmed(await k('disable', '0'), /^key 0 "Alice": disabled$/);
  confirmed(await k('enable', '0'), /^key 0 "Alice": enabled$/);
  // A blank name was taken (the API refuses an empty one): the key then read as unnamed everywhere.
  refused(await k('rename', '0', ''), /^ladder: the new name must not be blank, got ""$/);
  refused(await k('rename', '0', ' \t'), /^ladder: the new name must not be blank, got " \\t"$/);
  confirmed(await k('rename', '0', 'Bob'), /^renamed key 0: "Alice" → "Bob"$/);
  confirmed(await k('rm', '0'), /^deleted key 0 "Bob"$/);
  refused(await k('rm', '0'), /^ladder: no access key with id "0"$/);

  refused(
    await k('list', '--josn'),
    new RegExp(`^ladder: unknown option '--josn' \\(did you mean --json\\?\\) ${seeHelp('keys list')}`),
  );
  refused(
    await k('lst'),
    new RegExp(`^ladder: unknown command 'lst' \\(did you mean list\\?\\) ${seeHelp('keys')}`),
  );
});

test('key names are escaped wherever the CLI prints them', async (t) => {
  const dir = tempDir(t);
  const store = await openStore(parseStoreLocation(undefined, dir), {
    defaults: { hostname: '127.0.0.1', port: 8388 },
  });
  const evil = 'a\u001b[2J\u001b]0;owned\u0007\nladder: fake\u0000\u009b31m\u202Eb';
  await store.createKey({
    id: '0',
    name: evil,
    secret: 'p'.repeat(22),
    port: 8388,
    method: 'chacha20-ietf-poly1305',
  });
  await store.close();
  // eslint-disable-next-line no-control-regex
  const raw = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/;
  const list = await ladder(['keys', '--data-dir', dir, 'list']);
  assert.equal(list.code, 0, list.stderr);
  assert.ok(!raw.test(list.stdout), JSON.stringify(list.stdout));
  assert.equal(list.stdout.trimEnd().split('\n').length, 2, 'the name does not start a new line');
  assert.match(list.stdout, /a\\e\[2J\\e\]0;owned\\x07\\nladder: fake\\x00\\x9b31m\\u\{202e\}b/);
  const json = await ladder(['keys', '--data-dir', dir, 'list', '--json']);
  assert.ok(!raw.test(json.stdout), JSON.stringify(json.stdout));
  assert.equal((JSON.parse(json.stdout) as { name: string }[])[0]!.name, evil, 'still the same JSON');
  const disabled = await ladder(['keys', '--data-dir', dir, 'disable', '0']);
  assert.ok(
    !raw.test(disabled.stdout) && disabled.stdout.trimEnd().split('\n').length === 1,
    disabled.stdout,
  );
});

test('config files: one vocabulary for a missing file and a JSON error, client and server alike', async (t) => {
  const dir = tempDir(t);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{\n  "keys": [],\n  "socks": x\n}\n');
  const missing = join(dir, 'nope.json');
  for (const cmd of ['client', 'server']) {
    refused(await ladder([cmd, '--config', missing]), new RegExp(`^ladder: ${missing}: no such file$`));
    refused(
      await ladder([cmd, '--config', bad]),
      new RegExp(`^ladder: ${bad}: line 3, column 12: unexpected token 'x'$`),
    );
  }
  // A missing rules file says where its name came from: the flag, or the config file's field.
  const key = 'ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpwdw@127.0.0.1:9#k';
  refused(
    await ladder(['client', '--key', key, '--rules', missing]),
    new RegExp(`^ladder: --rules ${missing}: no such file$`),
  );
  const withRules = join(dir, 'c.json');
  writeFileSync(withRules, JSON.stringify({ keys: [key], rules: 'nope.txt' }));
  refused(
    await ladder(['client', '--config', withRules]),
    new RegExp(`^ladder: ${withRules}: "rules": ${join(dir, 'nope.txt')}: no such file$`),
  );
});

test('help: examples and --init in keys --help, --no-qr on add, one method list, numbers unquoted', async () => {
  const keys = await ladder(['keys', '--help']);
  assert.match(keys.stdout, /Examples:\n {2}ladder keys add/);
  assert.match(keys.stdout, /--init/);
  const add = await ladder(['keys', 'add', '--help']);
  assert.match(add.stdout, /--no-qr/);
  assert.match(
    add.stdout.replace(/\s+/g, ' '),
    /aes-256-gcm.*2022-blake3-aes-128-gcm.*2022-blake3-chacha20-poly1305/,
  );
  const client = await ladder(['client', '--help']);
  assert.match(client.stdout, /\(default: 50\)/);
  assert.ok(!/default: "\d+"/.test(client.stdout), client.stdout);
});

test('a parse error names the help of the command that was run; bare commands exit 2 after their help', async () => {
  refused(
    await ladder(['lab', 'run', '--bogus']),
    new RegExp(`^ladder: unknown option '--bogus' ${seeHelp('lab run')}`),
  );
  refused(
    await ladder(['probe', '--list']),
    new RegExp(`^ladder: option '--list <file\\|url\\.\\.\\.>' argument missing ${seeHelp('probe')}`),
  );
  refused(await ladder(['--bogus']), new RegExp(`^ladder: unknown option '--bogus' ${seeHelp('')}`));
  for (const bare of [[], ['keys'], ['lab'], ['store']]) {
    const r = await ladder(bare);
    assert.equal(r.code, 2, `${bare.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^Usage: ladder/, 'the help, on stderr');
    assert.doesNotMatch(r.stderr, /outputHelp/);
  }
});

test("keys limit's help says what a bare 0 means (the Outline API's 0-byte limit blocks a key)", async () => {
  const r = await ladder(['keys', 'limit', '--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout.replace(/\s+/g, ' '),
    /0: a bare 0 removes the limit; it does not block the key, use disable/,
  );
  const all = await ladder(['keys', '--help']);
  assert.match(all.stdout, /limit 2 none +# remove the limit \(so do off and 0; a 0-byte limit set/);
});
