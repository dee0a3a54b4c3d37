// The addon's per-thread pool of set-up cipher contexts (native/oneshot.cc PoolTake/PoolGive): a
// codec that ends gives its context back with the key wiped, and the next codec of that method on
// the thread keys it again. Checked against node:crypto's AEAD: a reused context gives the bytes of
// its new key only (never opens what the old key sealed), in either direction, per method; other
// methods keep their own contexts; ChaCha20-Poly1305 is never kept. sip004Open's decoder keeps the
// one-shot context its trial keyed, so the one-shot operations after it (on a fresh context) and
// the decoder must both stay right. Skips loudly without the addon (fails under CI=true).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { nativeAddon, nativeAvailable, nativeLoadError, type NativeAddon } from './native.js';
import { requireOrSkip } from '../../../test/helpers/prereq.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const NAMES = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305', 'aes-192-gcm'] as const;
const KEY = [16, 32, 32, 24];

function addonOrSkip(t: TestContext): NativeAddon | undefined {
  if (!requireOrSkip(t, nativeAvailable(), `native addon unavailable (${nativeLoadError() ?? 'unknown'})`))
    return;
  const a = nativeAddon()!;
  assert.equal(
    typeof a.ctxPoolSize,
    'function',
    'a stale addon without ctxPoolSize: node scripts/build-native.mjs',
  );
  return a;
}

/** AEAD(key, little-endian counter nonce n, plain) || tag, by node:crypto. */
function seal(m: number, key: Buffer, n: number, plain: Buffer): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32LE(n, 0);
  const c = createCipheriv(NAMES[m] as 'aes-256-gcm', key, nonce, { authTagLength: 16 });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

/** One SIP004 chunk (payload <= 0x3FFF) with nonces n and n + 1. */
function chunk(m: number, key: Buffer, n: number, payload: Buffer): Buffer {
  const len = Buffer.from([payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([seal(m, key, n, len), seal(m, key, n + 1, payload)]);
}

/** Collects, until the thread's pool of method m holds more than `than` (finalizers run after GC). */
async function collectUntil(a: NativeAddon, m: number, than: number): Promise<number> {
  for (let i = 0; i < 20 && a.ctxPoolSize!(m) <= than; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return a.ctxPoolSize!(m);
}

test('a pooled context reused by the next codec has the new key only, any direction and AES method', async (t) => {
  const a = addonOrSkip(t);
  if (!a) return;
  for (const m of [1, 0, 3]) {
    const info = new Int32Array(4);
    const data = randomBytes(100);
    const key1 = randomBytes(KEY[m]!);
    // The pool's size while the encoder lives; the encoder is garbage once this returns.
    const [wire1, before] = ((): [Buffer, number] => {
      const enc = a.create(m, key1, true);
      return [a.encode(enc, data), a.ctxPoolSize!(m)];
    })();
    assert.deepEqual(wire1, chunk(m, key1, 0, data), NAMES[m]);
    const after = await collectUntil(a, m, before);
    assert.ok(
      after > before,
      `${NAMES[m]}: the ended codec's context went back to the pool (${before} -> ${after})`,
    );

    // A decoder takes it with another key: it opens that key's chunks and not key1's.
    const key2 = randomBytes(KEY[m]!);
    const dec = a.create(m, key2, false);
    assert.equal(a.ctxPoolSize!(m), after - 1, 'the decoder took a pooled context');
    assert.deepEqual(a.decode(dec, chunk(m, key2, 0, data), info), data, NAMES[m]);
    const stale = a.create(m, key2, false);
    assert.equal(a.decode(stale, wire1, info), 1, `${NAMES[m]}: key1's chunk must not open under key2`);
    // An encoder after it: key3's bytes exactly.
    const key3 = randomBytes(KEY[m]!);
    const enc3 = a.create(m, key3, true);
    assert.deepEqual(a.encode(enc3, data), chunk(m, key3, 0, data), NAMES[m]);
  }
});

test('pools are per method, and ChaCha20-Poly1305 contexts are freed rather than kept', async (t) => {
  const a = addonOrSkip(t);
  if (!a) return;
  await collectUntil(a, 0, 1e9); // settle what earlier tests left to collect
  const sizes = [0, 1, 2, 3].map((m) => a.ctxPoolSize!(m));
  assert.equal(sizes[2], 0);
  const data = randomBytes(50);
  for (let i = 0; i < 3; i++) {
    const key = randomBytes(32);
    assert.deepEqual(a.encode(a.create(2, key, true), data), chunk(2, key, 0, data));
  }
  a.create(0, randomBytes(16), true);
  await collectUntil(a, 0, sizes[0]!);
  assert.equal(a.ctxPoolSize!(2), 0, 'no ChaCha20-Poly1305 context is kept');
  assert.equal(a.ctxPoolSize!(1), sizes[1], 'aes-256-gcm codecs did not take or give any');
  // aes-128-gcm's pooled context keys a 16-byte key; aes-192 takes none of it.
  const p0 = a.ctxPoolSize!(0);
  const k1 = randomBytes(24);
  const c192 = a.create(3, k1, true);
  assert.equal(a.ctxPoolSize!(0), p0);
  assert.deepEqual(a.encode(c192, data), chunk(3, k1, 0, data));
});

test('sip004Open keeps the trial context; the one-shot operations after it and its decoder stay right', (t) => {
  const a = addonOrSkip(t);
  if (!a) return;
  const info = new Int32Array(4);
  for (const m of [0, 1, 2, 3]) {
    const master = randomBytes(KEY[m]!);
    const salt = randomBytes(KEY[m]!);
    const subkey = Buffer.from(hkdfSync('sha1', master, salt, Buffer.from('ss-subkey'), KEY[m]!));
    const p1 = randomBytes(300);
    const p2 = randomBytes(20);
    const wire = Buffer.concat([salt, chunk(m, subkey, 0, p1), chunk(m, subkey, 2, p2)]);
    const head = wire.subarray(0, salt.length + 18);
    const dec = a.sip004Open!(m, master, head, info);
    assert.equal(typeof dec, 'object', NAMES[m]);
    assert.deepEqual([...info], [0, 300 + 16, 1, 0]);
    // One-shot operations with other keys on the same thread and method.
    const other = randomBytes(KEY[m]!);
    const nonce = Buffer.alloc(12);
    const sealed = a.sealParts(m, other, nonce, undefined, p2);
    assert.deepEqual(sealed, seal(m, other, 0, p2), NAMES[m]);
    assert.deepEqual(a.openAt(m, other, nonce, sealed, 0), p2);
    // A second trial with a wrong key (a multi-key server) keys the one-shot context again.
    assert.equal(a.sip004Open!(m, randomBytes(KEY[m]!), head, info), 0);
    // The decoder reads the rest under the subkey, nonces continuing after the length it opened.
    assert.deepEqual(
      a.decode(dec as object, wire.subarray(head.length), info),
      Buffer.concat([p1, p2]),
      NAMES[m],
    );
  }
});
