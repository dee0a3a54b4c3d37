/**
 * `ladder probe`: what it says about input it cannot use, before measuring anything. Each bad
 * value is one line naming the flag or item, exit 2, no stack trace; the controls (a good value
 * in the same place) get past that check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cleanEnv } from '../helpers/clean-env.js';

const ladder = (args: string[]) =>
  spawnSync(process.execPath, ['bin/ladder.js', ...args], {
    encoding: 'utf8',
    env: cleanEnv({ LADDER_DIST: '0' }),
    timeout: 60_000,
  });

const oneLine = (stderr: string, re: RegExp): void => {
  assert.match(stderr, re);
  assert.equal(stderr.split('\n').length, 2, `one line: ${stderr}`);
  assert.doesNotMatch(stderr, /unexpected error|at .*\.ts:\d+/);
};

test('probe --list: a malformed URL item is one line naming it (exit 2), not a stack trace', () => {
  for (const [item, re] of [
    ['http://', /^ladder: --list: not a URL: "http:\/\/"\n$/],
    ['http://exa mple.com/', /^ladder: --list: not a URL: "http:\/\/exa mple\.com\/"\n$/],
    ['https://[::1', /^ladder: --list: not a URL: "https:\/\/\[::1"\n$/],
    ['ftp://x', /^ladder: --list: only http and https URLs can be measured \(got ftp:\)\n$/],
  ] as const) {
    const r = ladder(['probe', '--list', item]);
    assert.equal(r.status, 2, `${item}: ${r.stderr}`);
    oneLine(r.stderr, re);
  }
  // Control: a file that is not there is still named as a file.
  const f = ladder(['probe', '--list', '/nonexistent/list.txt']);
  assert.equal(f.status, 2, f.stderr);
  oneLine(f.stderr, /^ladder: \/nonexistent\/list\.txt: no such file\n$/);
});

test('probe --json/--html: a path that cannot be written is refused before any measurement', () => {
  for (const flag of ['--json', '--html']) {
    const r = ladder(['probe', '--list', 'http://127.0.0.1:9/', flag, '/nonexistent/dir/out']);
    assert.equal(r.status, 2, r.stderr);
    oneLine(
      r.stderr,
      new RegExp(`^ladder: ${flag} /nonexistent/dir/out: its directory /nonexistent/dir: does not exist\n$`),
    );
    assert.equal(r.stdout, '', 'nothing measured');
    const d = ladder(['probe', '--list', 'http://127.0.0.1:9/', flag, '/tmp']);
    assert.equal(d.status, 2, d.stderr);
    oneLine(d.stderr, new RegExp(`^ladder: ${flag} /tmp: is a directory, not a file\n$`));
  }
});

test('probe --dns / --control-resolver: a name is refused (one line naming the flag); IP addresses pass', () => {
  for (const flag of ['--dns', '--control-resolver']) {
    for (const bad of ['nope', 'nope:53', 'dns.example:53']) {
      const r = ladder(['probe', '--list', 'http://127.0.0.1:9/', flag, bad]);
      assert.equal(r.status, 2, `${flag} ${bad}: ${r.stderr}`);
      oneLine(
        r.stderr,
        new RegExp(`^ladder: ${flag} "${bad}": expected the resolver's IP address \\(IPv4 or IPv6`),
      );
      assert.equal(r.stdout, '', 'nothing measured');
    }
  }
  // Controls: addresses with and without a port get past the check; the URL is an IP literal, so
  // no resolver is asked and the run ends at once (nothing listens on port 9).
  for (const good of ['127.0.0.1', '127.0.0.1:5353', '::1', '[::1]:5353']) {
    const r = ladder(['probe', '--list', 'http://127.0.0.1:9/', '--dns', good, '--control-resolver', good]);
    assert.equal(r.status, 0, `${good}: ${r.stderr}`);
    assert.match(r.stdout, /^0 of 1 blocked \(1 unknown: no control to compare with \(--via not given\)\)\n/);
    assert.ok(r.stdout.endsWith('\nBlocked or unknown:\n  unknown  http://127.0.0.1:9/\n'), r.stdout);
  }
});

test('probe: a URL given without --list says where it goes, not "Expected 0 arguments but got 1"', () => {
  const r = ladder(['probe', 'http://127.0.0.1:9/', '--via', 'ss://YWVzLTI1Ni1nY206eA@127.0.0.1:9']);
  assert.equal(r.status, 2, r.stderr);
  oneLine(
    r.stderr,
    /^ladder: probe: "http:\/\/127\.0\.0\.1:9\/" needs a flag before it: --list http:\/\/127\.0\.0\.1:9\/ \(URLs and list files\), or --servers \(keys\)\n$/,
  );
  assert.equal(r.stdout, '', 'nothing measured');
});

test('probe: a key given without --servers is not repeated (its password stays off the terminal and logs)', () => {
  // ss:// and ssconf:// keys are secrets here (argv-secrets.ts stars them out of /proc); a URL's
  // user:password too.
  for (const [stray, want] of [
    [
      'ss://YWVzLTI1Ni1nY206c2VjcmV0UGFzcw@127.0.0.1:9',
      /^ladder: probe: a key needs --servers before it: ladder probe --servers KEY \(the key is not repeated here\)\n$/,
    ],
    [
      'ssconf://example.org/Sekrit-Token-4711',
      /^ladder: probe: a key needs --servers before it: ladder probe --servers KEY \(the key is not repeated here\)\n$/,
    ],
    [
      'http://user:Sekrit-4711@127.0.0.1:9/',
      /^ladder: probe: "http:\/\/\*\*\*@127\.0\.0\.1:9\/" needs a flag before it: --list http:\/\/\*\*\*@127\.0\.0\.1:9\/ \(URLs and list files\), or --servers \(keys\)\n$/,
    ],
  ] as const) {
    const r = ladder(['probe', stray]);
    assert.equal(r.status, 2, r.stderr);
    oneLine(r.stderr, want);
    assert.ok(!/c2VjcmV0UGFzcw|Sekrit/.test(r.stderr + r.stdout), r.stderr);
  }
});

test('probe --servers: an item that is not a key, URL or readable file is not repeated when it looks like a URL', () => {
  // A key pasted after a word, with a stray quote, without its slashes or its scheme: the error
  // says which item without its text (the password stays off the terminal and logs).
  const key = 'ss://YWVzLTI1Ni1nY206U2Vrcml0LTQ3MTE@127.0.0.1:9'; // aes-256-gcm:Sekrit-4711
  for (const item of [
    `x ${key}`,
    `"${key}`,
    `'${key}'`,
    key.replace('ss://', 'ss:'),
    key.replace('ss://', ''),
    '"ssconf://example.org/Sekrit-4711',
  ]) {
    const r = ladder(['probe', '--servers', 'ss://YWVzLTI1Ni1nY206eA@127.0.0.1:9', '--servers', item]);
    assert.equal(r.status, 2, `${item}: ${r.stderr}`);
    oneLine(r.stderr, /^ladder: --servers #2: not a key, URL or readable file \(not repeated here\)\n$/);
    assert.equal(r.stdout, '', 'nothing measured');
    assert.ok(!/U2Vrcml0LTQ3MTE|Sekrit/.test(r.stderr + r.stdout), r.stderr);
  }
  const l = ladder(['probe', '--list', 'x http://user:Sekrit-4711@127.0.0.1:9/']);
  assert.equal(l.status, 2, l.stderr);
  oneLine(l.stderr, /^ladder: --list: not a URL or readable file \(not repeated here\)\n$/);
  assert.ok(!/Sekrit/.test(l.stderr + l.stdout), l.stderr);
  // Control: a path is still named, with why it cannot be read.
  const f = ladder(['probe', '--servers', '/nonexistent/keys.txt']);
  assert.equal(f.status, 2, f.stderr);
  oneLine(f.stderr, /^ladder: \/nonexistent\/keys\.txt: no such file\n$/);
});
