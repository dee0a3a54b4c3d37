import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtocolError } from '../errors.js';
import { AEAD_METHODS, getAeadMethod, isAeadMethodName } from './methods.js';

test('the four SIP004 methods and their sizes', () => {
  assert.deepEqual(Object.keys(AEAD_METHODS).sort(), [
    'aes-128-gcm',
    'aes-192-gcm',
    'aes-256-gcm',
    'chacha20-ietf-poly1305',
  ]);
  assert.equal(getAeadMethod('aes-128-gcm').keySize, 16);
  assert.equal(getAeadMethod('aes-128-gcm').saltSize, 16);
  assert.equal(getAeadMethod('aes-192-gcm').keySize, 24);
  assert.equal(getAeadMethod('aes-192-gcm').saltSize, 24);
  assert.equal(getAeadMethod('aes-256-gcm').keySize, 32);
  assert.equal(getAeadMethod('aes-256-gcm').saltSize, 32);
  assert.equal(getAeadMethod('chacha20-ietf-poly1305').keySize, 32);
  assert.equal(getAeadMethod('chacha20-ietf-poly1305').cipher, 'chacha20-poly1305');
  for (const m of Object.values(AEAD_METHODS)) assert.equal(m.tagSize, 16);
  assert.ok(Object.isFrozen(AEAD_METHODS));
});

function refused(name: string, re: RegExp): void {
  assert.throws(
    () => getAeadMethod(name),
    (err: unknown) => err instanceof ProtocolError && err.code === 'ERR_METHOD' && re.test(err.message),
  );
}

test('stream ciphers, unsupported and unknown methods are refused with a reason', () => {
  for (const s of ['rc4-md5', 'aes-256-cfb', 'AES-128-CTR', 'chacha20-ietf', 'table', 'none', 'plain'])
    refused(s, /stream cipher/);
  refused('xchacha20-ietf-poly1305', /not supported/);
  refused('aes-192-cfb', /stream cipher/);
  for (const s of [
    '',
    'AES-256-GCM',
    'aes256gcm',
    '2022-blake3-aes-256-gcm',
    '__proto__',
    'toString',
    'constructor',
  ]) {
    refused(
      s,
      /unknown method.*expected one of aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-ietf-poly1305/,
    );
  }
  assert.equal(isAeadMethodName('toString'), false);
  assert.equal(isAeadMethodName('aes-128-gcm'), true);
});
