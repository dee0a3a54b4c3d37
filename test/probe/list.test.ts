/** Test-list import: the citizenlab CSV format as published, plain URL lists, and bad rows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ListError, parseList } from '../../src/probe/list.js';

const HEADER = 'url,category_code,category_description,date_added,source,notes\n';

test('citizenlab CSV: quotes, commas and newlines in notes, doubled quotes, CRLF, BOM, unknown categories', () => {
  const csv =
    '\uFEFF' +
    HEADER +
    'https://www.example.com/,NEWS,News Media,2014-04-15,citizenlab,\r\n' +
    'http://example.org/path?a=1,HUMR,Human Rights Issues,2017-01-01,"OONI, CitizenLab","Blocked in 2019, see ""report"", and\nmore"\n' +
    'https://new.example.net/,FUTURECAT,A category added later,2024-02-02,someone,\n' +
    'https://nocat.example/,,,,,\n' +
    '\n';
  assert.deepEqual(parseList(csv, 'global.csv'), [
    { url: 'https://www.example.com/', category: 'NEWS' },
    { url: 'http://example.org/path?a=1', category: 'HUMR' },
    { url: 'https://new.example.net/', category: 'FUTURECAT' },
    { url: 'https://nocat.example/', category: 'MISC' },
  ]);
});

test('plain lists: one URL a line, comments and blank lines skipped', () => {
  assert.deepEqual(parseList('# mine\nhttps://a.example/\n\n  http://b.example/x  \n', 'urls.txt'), [
    { url: 'https://a.example/' },
    { url: 'http://b.example/x' },
  ]);
});

test('a malformed row is one clear line naming the file and line number', () => {
  const cases: Array<[string, RegExp]> = [
    [
      HEADER + 'https://ok.example/,NEWS,x,y,z,\nhttps://bad.example/,NEWS,only four\n',
      /^cz\.csv:3: 3 fields where the header has 6$/,
    ],
    [HEADER + 'https://ok.example/,NEWS,x,y,z,"open quote\n', /^cz\.csv:2: unterminated quoted field$/],
    [HEADER + 'not a url,NEWS,x,y,z,\n', /^cz\.csv:2: not a URL: "not a url"$/],
    [HEADER + 'ftp://files.example/,NEWS,x,y,z,\n', /^cz\.csv:2: only http and https URLs/],
    [HEADER + 'https://a.example/,"NE WS",x,y,z,\n', /^cz\.csv:2: bad category_code/],
    [HEADER + 'https://a.example/,NEWS,x,y,z,"a"b\n', /^cz\.csv:2: text after a closing quote$/],
  ];
  for (const [text, want] of cases) {
    assert.throws(
      () => parseList(text, 'cz.csv'),
      (e: Error) => e instanceof ListError && want.test(e.message) && !e.message.includes('\n'),
      want.source,
    );
  }
  // The line number counts physical lines, past a quoted field that spans two.
  assert.throws(
    () =>
      parseList(HEADER + 'https://a.example/,NEWS,x,y,z,"two\nlines"\nhttps://b.example/,NEWS\n', 'cz.csv'),
    /^ListError: cz\.csv:4: 2 fields/,
  );
  assert.throws(() => parseList('https://a.example/\nnope\n', 'u.txt'), /^ListError: u\.txt:2: not a URL/);
});
