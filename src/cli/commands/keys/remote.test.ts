import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseApiTarget } from './remote.js';

test('--api that is not a URL: one line that does not repeat what was typed (it may hold the secret path)', () => {
  for (const typed of [
    'https//203.0.113.5:1234/Sec3etPath',
    'ht tps://h:1/Sec3etPath',
    '{"apiUrl":"//h:x/Sec3etPath"}',
  ]) {
    assert.throws(
      () => parseApiTarget(typed, undefined, true),
      (e: Error) => /^--api: not a URL \(/.test(e.message) && !e.message.includes('Sec3etPath'),
    );
  }
});

test('--api with a URL and its fingerprint: the target, trailing slashes removed', () => {
  const pin = 'AB'.repeat(32);
  assert.deepEqual(parseApiTarget('https://127.0.0.1:9/abc/', pin.toLowerCase(), false), {
    apiUrl: 'https://127.0.0.1:9/abc',
    certSha256: pin,
  });
});
