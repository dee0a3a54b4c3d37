import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSsUrl, formatSsUrl } from '../sip002/index.js';
import {
  checkKeyPrefixSetting,
  drawKeyPrefix,
  formatKeyPrefixSetting,
  keyPrefixSettingFor,
  storedKeyPrefixSetting,
  KEY_PREFIX_MIN_RANDOM,
  keyPrefixBudget,
  keyPrefixFor,
  outlinePrefixString,
  parseKeyPrefixSetting,
} from './key-prefix.js';
import { fetFeatures, maxShare } from './shaping-features.js';

test('key prefix budget keeps 16 random salt bytes: 32-byte salts 16, 16-byte salts and 2022 keys none', () => {
  assert.equal(KEY_PREFIX_MIN_RANDOM, 16);
  assert.equal(keyPrefixBudget('chacha20-ietf-poly1305'), 16);
  assert.equal(keyPrefixBudget('aes-256-gcm'), 16);
  assert.equal(keyPrefixBudget('aes-128-gcm'), 0);
  assert.equal(keyPrefixBudget('2022-blake3-aes-256-gcm'), 0);
  assert.equal(keyPrefixBudget('rc4-md5'), 0);
  assert.equal(drawKeyPrefix('aes-128-gcm'), undefined);
  assert.equal(drawKeyPrefix('2022-blake3-chacha20-poly1305'), undefined);
});

test('drawn key prefixes: C6-exempt, 3..16 bytes, varied (no prefix in more than 1% of 1,000 draws)', () => {
  const draws = Array.from({ length: 1000 }, () => drawKeyPrefix('chacha20-ietf-poly1305')!);
  for (const p of draws) {
    assert.ok(p.length >= 3 && p.length <= 16);
    const f = fetFeatures(Buffer.concat([p, Buffer.alloc(64, 0x80)]));
    assert.ok(f.ex2 || f.ex5, Buffer.from(p).toString('hex'));
  }
  assert.ok(maxShare(draws.map((p) => Buffer.from(p).toString('hex'))) <= 0.01);
});

test('keyPrefixFor: auto draws, off gives none, pinned bytes are kept (and refused past the salt)', () => {
  assert.equal(keyPrefixFor('chacha20-ietf-poly1305', 'off'), undefined);
  assert.ok(keyPrefixFor('chacha20-ietf-poly1305', 'auto'));
  const pinned = Uint8Array.from([0x16, 0x03, 0x01]);
  assert.deepEqual(keyPrefixFor('aes-128-gcm', pinned), pinned, 'a pinned prefix is the operator’s choice');
  assert.throws(
    () => keyPrefixFor('aes-128-gcm', new Uint8Array(17)),
    /17 bytes is longer than the 16-byte salt/,
  );
  assert.equal(keyPrefixFor('2022-blake3-aes-256-gcm', pinned), undefined);
});

test('parseKeyPrefixSetting: auto, off, hex, Outline URL form; bad input gives one clear line', () => {
  assert.equal(parseKeyPrefixSetting('auto'), 'auto');
  assert.equal(parseKeyPrefixSetting(' off '), 'off');
  assert.deepEqual(parseKeyPrefixSetting('160301'), Uint8Array.from([0x16, 0x03, 0x01]));
  assert.deepEqual(parseKeyPrefixSetting('0x1603'), Uint8Array.from([0x16, 0x03]));
  assert.deepEqual(parseKeyPrefixSetting('POST%20'), Uint8Array.from(Buffer.from('POST ')));
  assert.deepEqual(
    parseKeyPrefixSetting('%16%03%01%00%C2%A8%01%01'),
    Uint8Array.from([0x16, 3, 1, 0, 0xa8, 1, 1]),
  );
  assert.throws(() => parseKeyPrefixSetting('%E2%82%AC'), /above U\+00FF/);
  assert.throws(() => parseKeyPrefixSetting('%zz'), /bad percent-encoding/);
  assert.throws(() => parseKeyPrefixSetting(''), /empty/);
  // Only hex digits reads as hex; escaping one character makes it text.
  assert.deepEqual(parseKeyPrefixSetting('%63afe'), Uint8Array.from(Buffer.from('cafe')));
  assert.throws(() => parseKeyPrefixSetting('a'.repeat(33)), /33 bytes/);
});

test("outlinePrefixString is Outline's JSON form and agrees with the ss:// prefix parameter", () => {
  for (let i = 0; i < 200; i++) {
    const p = drawKeyPrefix('aes-256-gcm')!;
    const s = outlinePrefixString(p);
    assert.equal(s.length, p.length);
    // Through JSON and back, one character per byte.
    const back = JSON.parse(JSON.stringify({ prefix: s })) as { prefix: string };
    assert.deepEqual(
      Uint8Array.from(back.prefix, (c) => c.charCodeAt(0)),
      Uint8Array.from(p),
    );
    // The same bytes through an ss:// URL (SIP002 writer and reader).
    const url = formatSsUrl({ method: 'aes-256-gcm', password: 'pw', host: 'h.example', port: 1, prefix: p });
    assert.deepEqual(parseSsUrl(url).prefix, Uint8Array.from(p));
    const escaped = '%' + p[0]!.toString(16).padStart(2, '0') + encodeURIComponent(s.slice(1));
    if (p[0]! < 0x80) assert.deepEqual(parseKeyPrefixSetting(escaped), Uint8Array.from(p));
  }
  assert.equal(
    JSON.stringify(outlinePrefixString(Uint8Array.from([0x16, 0x03, 0x01, 0xa8]))),
    '"\\u0016\\u0003\\u0001¨"',
  );
});

test('aes-192-gcm keys: 24-byte salt, drawn prefixes of up to 8 bytes, C6-exempt', () => {
  assert.equal(keyPrefixBudget('aes-192-gcm'), 8);
  for (let i = 0; i < 200; i++) {
    const p = drawKeyPrefix('aes-192-gcm')!;
    assert.ok(p.length >= 3 && p.length <= 8, String(p.length));
    const f = fetFeatures(Buffer.concat([p, Buffer.alloc(64, 0x80)]));
    assert.ok(f.ex2 || f.ex5, Buffer.from(p).toString('hex'));
  }
});

test('stored settings: auto/off/hex round trip; checkKeyPrefixSetting keeps 16 random salt bytes', () => {
  for (const text of ['auto', 'off', '160301', 'POST%20', '0x504f5354']) {
    const stored = keyPrefixSettingFor('chacha20-ietf-poly1305', text);
    assert.match(stored, /^(auto|off|[0-9a-f]+)$/);
    assert.equal(formatKeyPrefixSetting(storedKeyPrefixSetting(stored)), stored);
  }
  assert.equal(keyPrefixSettingFor('aes-256-gcm', 'POST%20'), '504f535420');
  assert.equal(storedKeyPrefixSetting(undefined), 'auto');
  assert.equal(storedKeyPrefixSetting('%ZZ'), 'auto', 'damaged text reads as the default');
  // Pinned: 16 bytes fit a 32-byte salt, 17 do not; 8 fit aes-192-gcm, 9 do not; none for 16-byte salts and 2022.
  assert.doesNotThrow(() => checkKeyPrefixSetting('aes-256-gcm', new Uint8Array(16)));
  assert.throws(() => checkKeyPrefixSetting('aes-256-gcm', new Uint8Array(17)), /at most 16/);
  assert.doesNotThrow(() => checkKeyPrefixSetting('aes-192-gcm', new Uint8Array(8)));
  assert.throws(() => checkKeyPrefixSetting('aes-192-gcm', new Uint8Array(9)), /at most 8/);
  assert.throws(() => checkKeyPrefixSetting('aes-128-gcm', new Uint8Array(1)), /take no prefix/);
  assert.throws(() => checkKeyPrefixSetting('2022-blake3-aes-256-gcm', new Uint8Array(1)), /no prefix/);
  for (const m of ['aes-128-gcm', '2022-blake3-aes-256-gcm']) {
    checkKeyPrefixSetting(m, 'auto');
    checkKeyPrefixSetting(m, 'off');
  }
});
