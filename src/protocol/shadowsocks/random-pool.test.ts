import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AeadEncoder } from './aead.js';
import { getAeadMethod } from './methods.js';
import { poolRandomBytes } from './random-pool.js';

test('pooled random bytes: every draw fresh across refills, copies the caller owns', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const b = poolRandomBytes(32); // 2000 x 32 bytes: 15 refills of the 4 KiB pool
    assert.equal(b.length, 32);
    assert.ok(b.some((x) => x !== 0));
    seen.add(b.toString('hex'));
  }
  assert.equal(seen.size, 2000);
  const a = poolRandomBytes(16);
  const copy = Buffer.from(a);
  poolRandomBytes(16);
  assert.deepEqual(a, copy, 'a later draw does not touch an earlier one');
  assert.equal(poolRandomBytes(1000).length, 1000); // large: straight from randomBytes
});

test('encoders draw distinct salts from the pool', () => {
  const m = getAeadMethod('aes-256-gcm');
  const key = Buffer.alloc(m.keySize, 1);
  const salts = new Set(Array.from({ length: 500 }, () => new AeadEncoder(m, key).salt.toString('hex')));
  assert.equal(salts.size, 500);
});

test("an encoder's drawn salt is the pool's copy (no Buffer.from), a given one is copied from the caller's buffer", () => {
  const m = getAeadMethod('aes-256-gcm');
  const key = Buffer.alloc(m.keySize, 1);
  const from = Buffer.from;
  let copies = 0;
  Buffer.from = function (this: unknown, ...args: unknown[]) {
    if (args[0] instanceof Uint8Array && args[0].length === m.saltSize) copies++;
    return (from as (...a: unknown[]) => Buffer).apply(Buffer, args);
  } as typeof Buffer.from;
  let drawn: AeadEncoder;
  try {
    drawn = new AeadEncoder(m, key);
  } finally {
    Buffer.from = from;
  }
  assert.equal(copies, 0, 'the drawn salt was copied again');
  assert.equal(drawn.salt.length, m.saltSize);
  const given = Buffer.alloc(m.saltSize, 7);
  const e = new AeadEncoder(m, key, given);
  given.fill(0);
  assert.deepEqual(e.salt, Buffer.alloc(m.saltSize, 7), "the caller's buffer is not the encoder's");
});
