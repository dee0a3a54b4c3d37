/**
 * A PostgreSQL password never shows, however the store URL is written: not in the process title
 * (ps), the banners or the commands they suggest, which share one rule (hideStorePassword). A
 * password typed without percent-encoding may hold a raw '/', '#', '?', '@', ':', '%' or space,
 * which a URL parser (node-postgres's) reads as part of the host, port, database or fragment:
 * before, such a password was left in full in the process title, and the banner's parser showed
 * it or dropped the whole URL; a raw '&' in a `?password=` value hid only what came before it.
 * node-postgres refuses a URL it cannot parse without echoing it
 * (it redacts the URL in its error); the refusal now says what to do instead of "Invalid URL".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hideArgvSecrets, hideStorePassword } from '../../src/cli/argv-secrets.js';
import { describeStore, storeFlags, withoutPassword } from '../../src/cli/banner-text.js';
import { parseStoreLocation } from '../../src/store/index.js';
import { runLadder } from '../helpers/ladder-run.js';

/** Passwords with each awkward character between two marked halves, and all of them at once. */
// A raw '&' in a `password=` value: node-postgres reads the password cut there and the rest as
// another parameter (`a&b`: password `a`, parameter `b`); the rest is hidden unless it reads as a
// setting node-postgres knows (`&sslmode=…` stays shown).
const PASSWORDS = ['/', '#', '@', ':', '?', '%', ' ', '%zz', '/#@:?% ', '//', '@@', '&', '&b=', '&&'].flatMap(
  (c) => [
    `Hid1${c}Hid2`,
    `4242${c}Hid2`, // digits first: a parser may take them for a port
  ],
);
const SHOWN = /Hid1|Hid2|4242/;

/** The shapes a PostgreSQL URL with a password takes. */
function urls(pw: string): string[] {
  return [
    `postgres://ladder:${pw}@db.example:5432/ladder?sslmode=require`,
    `postgresql://ladder:${pw}@db.example/ladder`,
    `postgres://ladder:${pw}@127.0.0.1`,
    `postgres://ladder@db.example/ladder?password=${pw}`,
    `postgres://ladder@db.example:5432/ladder?sslmode=require&password=${pw}&application_name=x`,
    `postgres://ladder@db.example/ladder?sslpassword=${pw}`,
  ];
}

test('no password shows in the process title, the banner or a suggested command, whatever it holds', () => {
  for (const pw of PASSWORDS)
    for (const url of urls(pw)) {
      const ps = hideStorePassword(url);
      assert.ok(ps !== undefined, `nothing hidden in ${url}`);
      const loc = parseStoreLocation(url, '/tmp/d');
      const shown = [
        ps,
        hideArgvSecrets(['server', '--store', url]).argv.join(' '),
        hideArgvSecrets([`--store=${url}`]).argv.join(' '),
        withoutPassword(url),
        withoutPassword(url, 'PASSWORD'),
        describeStore(loc, '/tmp/d'),
        storeFlags(loc, '/tmp/d', true),
      ];
      for (const s of shown) assert.doesNotMatch(s, SHOWN, `${url} -> ${s}`);
      assert.equal(hideArgvSecrets(['--store', url]).warnings.length, 1, url);
    }
});

test('an ordinary URL keeps its shape: only the password is replaced', () => {
  const cases: [string, string][] = [
    [
      'postgres://ladder:s3cr%40t@db.example:5432/ladder?sslmode=require',
      'postgres://ladder:***@db.example:5432/ladder?sslmode=require',
    ],
    ['postgresql://u:p@[::1]:5432/x', 'postgresql://u:***@[::1]:5432/x'],
    ['postgres://u@db/x?password=p&sslmode=disable', 'postgres://u@db/x?password=***&sslmode=disable'],
    ['postgres://u@db/x?passw%6Frd=p', 'postgres://u@db/x?passw%6Frd=***'],
    ['postgres://u@db/x?password=a&b&sslmode=disable', 'postgres://u@db/x?password=***&sslmode=disable'],
    ['postgres://u@db/x?password=a&b=c&ssl%6Dode=x', 'postgres://u@db/x?password=***&ssl%6Dode=x'],
  ];
  for (const [url, ps] of cases) {
    assert.equal(hideStorePassword(url), ps);
    assert.equal(withoutPassword(url, 'PASSWORD'), ps.replaceAll('***', 'PASSWORD'));
  }
  for (const none of [
    'postgres://u@db/x',
    'postgres://db:5432/x',
    'postgres://u:@db/x',
    'postgres:///x?host=/run/pg',
  ])
    assert.equal(hideStorePassword(none), undefined, none);
});

test('a URL node-postgres cannot parse: one line that says to percent-encode, without the URL', async () => {
  // (Each is read as a port that is no number: no shape that sends node-postgres to a named host.)
  for (const pw of ['Hid1/Hid2', 'Hid1#Hid2', 'Hid1?Hid2', 'Hid1/#@:?% Hid2']) {
    const url = `postgres://ladder:${pw}@127.0.0.1:1/ladder`;
    const r = await runLadder(['nodes', '--store', url, 'list'], { killAfterMs: 20_000 });
    assert.notEqual(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, SHOWN);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('ladder: warning:'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      /^ladder: store: the PostgreSQL URL cannot be read \(percent-encode a \/ \? # @ or space in its user or password: %2F %3F %23 %40 %20\)/,
    );
  }
});
