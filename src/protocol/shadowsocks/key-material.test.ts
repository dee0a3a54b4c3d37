import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../errors.js';
import { checkKey, checkMethod, generateSecret, ALL_METHODS } from './key-material.js';

test('every supported method accepts a generated secret', () => {
  for (const m of ALL_METHODS) {
    const s = generateSecret(m);
    assert.doesNotThrow(() => checkKey(m, s), m);
  }
  assert.equal(Buffer.from(generateSecret('2022-blake3-aes-128-gcm'), 'base64').length, 16);
  assert.equal(Buffer.from(generateSecret('2022-blake3-aes-256-gcm'), 'base64').length, 32);
});

test('stream ciphers and unknown methods are refused with the full list', () => {
  assert.throws(
    () => checkMethod('rc4-md5'),
    (e: unknown) => e instanceof ProtocolError && /stream cipher/.test(e.message),
  );
  assert.throws(
    () => checkMethod('aes-999-gcm'),
    (e: unknown) =>
      e instanceof ProtocolError && e.code === 'ERR_METHOD' && e.message.includes('2022-blake3-aes-256-gcm'),
  );
  assert.throws(
    () => checkMethod('2022-blake3-chacha8-poly1305'),
    (e: unknown) => e instanceof ProtocolError,
  );
});

test('2022 secrets of the wrong length are refused without echoing them', () => {
  const wrong = Buffer.alloc(20, 7).toString('base64');
  assert.throws(
    () => checkKey('2022-blake3-aes-256-gcm', wrong),
    (e: unknown) => e instanceof ProtocolError && e.code === 'ERR_KEY' && !e.message.includes(wrong),
  );
  assert.throws(
    () => checkKey('aes-256-gcm', ''),
    (e: unknown) => e instanceof ProtocolError && e.code === 'ERR_KEY',
  );
  // iPSK:uPSK needs an AES method
  const k = generateSecret('2022-blake3-chacha20-poly1305');
  assert.throws(() => checkKey('2022-blake3-chacha20-poly1305', `${k}:${k}`), /AES method/);
  const a = generateSecret('2022-blake3-aes-128-gcm');
  assert.doesNotThrow(() => checkKey('2022-blake3-aes-128-gcm', `${a}:${a}`));
});
