/**
 * A PostgreSQL password never shows, however the store URL is written: not in the process title
 * (ps), the banners or the commands they suggest, which share one rule (hideStorePassword). A
 * password typed without percent-encoding may hold a raw '/', '#', '?', '@', ':', '%' or space,
 * which a URL parser (node-postgres's) reads as part of the host, port, database or fragment:
 * before, such a password was left in full in the process title, and the banner's parser showed
 * it or dropped the whole URL; a raw '&' in a `?password=` value hid only what came before it.
 * node-postgres refuses a URL it cannot parse without echoing it
 * (it redacts the URL in its error); the refusal now says what to do instead of "Invalid URL".
 * One it can parse but would misread (a password starting with digits, then a raw '/': read as the
 * port) is refused the same way before any connection (its refusal showed the digits).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hideArgvSecrets, hideStorePassword } from '../../src/cli/argv-secrets.js';
import { describeStore, storeFlags, withoutPassword } from '../../src/cli/banner-text.js';
import { userinfoNotEncoded } from '../../src/store/dialect.js';
import { parseStoreLocation } from '../../src/store/index.js';
import { PG_URL_UNREADABLE } from '../../src/store/types.js';
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

test('a URL node-postgres cannot parse or would misread: one line that says to percent-encode, without the URL', async () => {
  // A raw '/', '?' or '#' in the password ends the host part for a URL parser: a password starting
  // with digits was read as the port (user localhost: node-postgres connected to it, and its
  // refusal said `connect ECONNREFUSED 127.0.0.1:4242`); now refused before any connection.
  for (const user of ['ladder', 'localhost'])
    for (const pw of [
      'Hid1/Hid2',
      'Hid1#Hid2',
      'Hid1?Hid2',
      'Hid1/#@:?% Hid2',
      '4242/Hid2',
      '4242?Hid2',
      '4242#Hid2',
    ]) {
      const url = `postgres://${user}:${pw}@127.0.0.1:1/ladder`;
      const r = await runLadder(['nodes', '--store', url, 'list'], { killAfterMs: 20_000 });
      assert.notEqual(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, SHOWN, url);
      const lines = r.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('ladder: warning:'));
      assert.deepEqual(lines, [`ladder: store: ${PG_URL_UNREADABLE}`], url);
    }
});

test('a URL whose only @ is its user information, or one in a query value, is read as before', () => {
  for (const ok of [
    'postgres://u:p@db/x',
    'postgres://u:p%2F1@db:5432/x?sslmode=require',
    'postgres://u@db/x?password=a@b&application_name=me@host',
    'postgres://db/x',
    'postgres:///x?host=/run/pg',
  ])
    assert.equal(userinfoNotEncoded(ok), false, ok);
  for (const bad of [
    'postgres://u:12/3@db/x',
    'postgres://u:12?3@db/x',
    'postgres://u:12#3@db/x',
    'postgres://u:1@2/3@db/x',
  ])
    assert.equal(userinfoNotEncoded(bad), true, bad);
});
