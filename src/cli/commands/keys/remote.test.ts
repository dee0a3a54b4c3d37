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
    certFrom: '--cert-sha256',
  });
});

test('the pin is named where it came from: --cert-sha256, or the certSha256 in --api / LADDER_API', () => {
  const pin = 'AB'.repeat(32);
  const cfg = JSON.stringify({ apiUrl: 'https://127.0.0.1:9/abc', certSha256: pin });
  assert.equal(parseApiTarget(cfg, undefined, false).certFrom, 'the certSha256 in --api');
  assert.equal(parseApiTarget(cfg, undefined, false, 'LADDER_API').certFrom, 'the certSha256 in LADDER_API');
  assert.equal(parseApiTarget(cfg, pin, false).certFrom, '--cert-sha256');
  assert.throws(
    () => parseApiTarget('https://127.0.0.1:9/abc', undefined, false, 'LADDER_API'),
    /^UsageError: LADDER_API: give the certificate fingerprint/,
  );
});
