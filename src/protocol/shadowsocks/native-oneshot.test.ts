// The addon's stateless operations (abiVersion 3) against node:crypto and the JS paths: HKDF-SHA1,
// SIP004 datagrams, one-shot AEAD, and the SIP022 stream codec with native bulk chunks. Skips
// loudly when the addon is not built; fails instead under CI=true, where the install builds it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import { AeadDecoder, AeadEncoder, sip004HeadMatches } from './aead.js';
import {
  Aead2022RequestDecoder,
  Aead2022RequestEncoder,
  Aead2022ResponseDecoder,
  Aead2022ResponseEncoder,
  MAX_PAYLOAD_2022,
} from './aead2022.js';
import { deriveSubkey, evpBytesToKey } from './kdf.js';
import { AEAD_METHODS } from './methods.js';
import { deriveSessionSubkey } from './kdf2022.js';
import { AEAD_2022_METHODS } from './methods2022.js';
import { cipher } from './cipher.js';
import { NativeDecoder, NativeEncoder } from './cipher-native.js';
import { nativeAvailable, nativeLoadError, setNativeEnabled } from './native.js';
import { decodeUdp2017, encodeUdp2017, openUdpPacket, sealUdpPacket } from './udp.js';
import {
  openClientPacket2022,
  openServerPacket2022,
  sealClientPacket2022,
  sealServerPacket2022,
} from './udp2022.js';
import { requireOrSkip } from '../../../test/helpers/prereq.js';

const HAVE_NATIVE = nativeAvailable();
/** The backend in use at load: the native one whenever HAVE_NATIVE. */
const nativeOneShot = cipher();
const METHODS = Object.values(AEAD_METHODS);
const METHODS_2022 = Object.values(AEAD_2022_METHODS);

const requireNative = (t: TestContext): boolean =>
  requireOrSkip(
    t,
    HAVE_NATIVE,
    `native addon unavailable (${nativeLoadError() ?? 'unknown'}); run: node scripts/build-native.mjs`,
  );

function onJs<T>(f: () => T): T {
  setNativeEnabled(false);
  try {
    return f();
  } finally {
    setNativeEnabled(true);
  }
}

const isCode = (code: string) => (err: unknown) => err instanceof ProtocolError && err.code === code;

test('hkdfSha1: equals node hkdfSync for random keys and salts (fast-check) and the JS fallback', (t) => {
  if (!requireNative(t)) return;
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 64 }),
      fc.uint8Array({ minLength: 0, maxLength: 100 }),
      (key, salt) => {
        const want = Buffer.from(hkdfSync('sha1', key, salt, Buffer.from('ss-subkey'), key.length));
        assert.deepEqual(nativeOneShot.hkdfSha1(key, salt), want);
        assert.deepEqual(deriveSubkey(key, salt), want);
        assert.deepEqual(
          onJs(() => deriveSubkey(key, salt)),
          want,
        );
      },
    ),
    { numRuns: 300 },
  );
  // A salt longer than the SHA-1 block (the HMAC key is hashed first).
  const key = randomBytes(32);
  const salt = randomBytes(200);
  assert.deepEqual(
    nativeOneShot.hkdfSha1(key, salt),
    Buffer.from(hkdfSync('sha1', key, salt, Buffer.from('ss-subkey'), 32)),
  );
});

test('SIP004 datagrams: native seal opens on the JS path and JS seal opens natively, every method', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const key = evpBytesToKey('udp-test', m.keySize);
    for (const size of [0, 1, 64, 1400, 65_000]) {
      const payload = randomBytes(size);
      const target = { type: 'ipv4' as const, host: '10.1.2.3', port: 53 };
      const nat = encodeUdp2017(m, key, target, payload);
      assert.equal(nat.length, m.saltSize + 7 + size + 16, `${m.name} ${size}: wire size`);
      const viaJs = onJs(() => decodeUdp2017(m, key, nat));
      assert.deepEqual(viaJs.address, target);
      assert.deepEqual(viaJs.payload, payload);
      const js = onJs(() => encodeUdp2017(m, key, target, payload));
      const viaNative = decodeUdp2017(m, key, js);
      assert.deepEqual(viaNative.payload, payload, `${m.name} ${size}: JS-sealed opens natively`);
      // Fresh salts: two seals of the same datagram differ.
      assert.notDeepEqual(encodeUdp2017(m, key, target, payload), nat);
    }
  }
});

test('SIP004 datagrams: a fixed salt gives the same bytes on both paths; tampering and short input fail alike', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const key = evpBytesToKey('udp-kat', m.keySize);
    const salt = Buffer.alloc(m.saltSize, 0x42);
    const plain = randomBytes(300);
    const sealed = sealUdpPacket(m, key, plain, salt);
    assert.deepEqual(
      onJs(() => sealUdpPacket(m, key, plain, salt)),
      sealed,
    );
    assert.deepEqual(openUdpPacket(m, key, sealed), plain);
    for (const i of [0, m.saltSize, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[i]! ^= 1;
      assert.throws(() => openUdpPacket(m, key, bad), isCode('ERR_CIPHER'), `${m.name}: flipped byte ${i}`);
      assert.throws(() => onJs(() => openUdpPacket(m, key, bad)), isCode('ERR_CIPHER'));
    }
    const wrongKey = evpBytesToKey('other', m.keySize);
    assert.throws(() => openUdpPacket(m, wrongKey, sealed), isCode('ERR_CIPHER'));
    assert.throws(
      () => openUdpPacket(m, key, sealed.subarray(0, m.saltSize + 15)),
      isCode('ERR_SHORT_HEADER'),
    );
    // Random garbage of any length never throws anything but a ProtocolError.
    for (let n = 0; n < 120; n++) {
      assert.throws(
        () => decodeUdp2017(m, key, randomBytes(n)),
        (e: unknown) => e instanceof ProtocolError,
      );
    }
  }
});

test('sealParts / openAt: the same bytes as node:crypto AEAD, with prefix and offset', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const key = randomBytes(m.keySize);
    const nonce = randomBytes(12);
    const a = randomBytes(37);
    const b = randomBytes(1000);
    const prefix = Buffer.from('prefix!');
    const out = nativeOneShot.sealParts(m.cipher, key, nonce, prefix, a, b)!;
    const c = createCipheriv(m.cipher as 'aes-128-gcm', key, nonce, { authTagLength: 16 });
    const want = Buffer.concat([prefix, c.update(Buffer.concat([a, b])), c.final(), c.getAuthTag()]);
    assert.deepEqual(out, want, `${m.name}: sealParts`);
    assert.deepEqual(nativeOneShot.openAt(m.cipher, key, nonce, out, prefix.length), Buffer.concat([a, b]));
    const d = createDecipheriv(m.cipher as 'aes-128-gcm', key, nonce, { authTagLength: 16 });
    d.setAuthTag(out.subarray(out.length - 16));
    assert.deepEqual(
      Buffer.concat([d.update(out.subarray(prefix.length, out.length - 16)), d.final()]),
      Buffer.concat([a, b]),
    );
    const bad = Buffer.from(out);
    bad[bad.length - 1]! ^= 0x80;
    assert.equal(nativeOneShot.openAt(m.cipher, key, nonce, bad, prefix.length), null);
    assert.equal(
      nativeOneShot.openAt(m.cipher, key, nonce, out, out.length - 15),
      null,
      'shorter than a tag',
    );
    // Without b, and with an empty a.
    assert.deepEqual(
      nativeOneShot.openAt(
        m.cipher,
        key,
        nonce,
        nativeOneShot.sealParts(m.cipher, key, nonce, undefined, a)!,
        0,
      ),
      a,
    );
    assert.deepEqual(
      nativeOneShot.openAt(
        m.cipher,
        key,
        nonce,
        nativeOneShot.sealParts(m.cipher, key, nonce, undefined, Buffer.alloc(0))!,
        0,
      ),
      Buffer.alloc(0),
    );
  }
});

test('one-shot addon calls: bad arguments throw TypeError, never crash', (t) => {
  if (!requireNative(t)) return;
  type Raw = Record<string, (...args: unknown[]) => unknown>;
  const a = createRequire(import.meta.url)('../../../build/Release/ladder_aead.node') as Raw;
  const k32 = Buffer.alloc(32);
  const calls: Array<[string, unknown[]]> = [
    ['hkdfSha1', []],
    ['hkdfSha1', [Buffer.alloc(0), Buffer.alloc(1)]],
    ['hkdfSha1', [Buffer.alloc(65), Buffer.alloc(1)]],
    ['hkdfSha1', ['key', Buffer.alloc(1)]],
    ['sealParts', [1, k32, Buffer.alloc(11), undefined, Buffer.alloc(1)]],
    ['sealParts', [1, Buffer.alloc(16), Buffer.alloc(12), undefined, Buffer.alloc(1)]],
    ['sealParts', [7, k32, Buffer.alloc(12), undefined, Buffer.alloc(1)]],
    ['sealParts', [1, k32, Buffer.alloc(12), 5, Buffer.alloc(1)]],
    ['openAt', [1, k32, Buffer.alloc(12), Buffer.alloc(20), 21]],
    ['openAt', [1, k32, Buffer.alloc(12), Buffer.alloc(20), -1]],
    ['udpSeal', [1, Buffer.alloc(16), Buffer.alloc(1), Buffer.alloc(1)]],
    ['udpOpen', [2, Buffer.alloc(31), Buffer.alloc(64)]],
    ['udpSeal', [1, k32, Buffer.alloc(1), Buffer.alloc(1), Buffer.alloc(5)]],
    ['udpOpen', [1, k32, Buffer.alloc(64), Buffer.alloc(3)]],
    ['udpOpen', [-1, k32, Buffer.alloc(64)]],
    ['create', [1, k32, true, 0]],
    ['create', [1, k32, true, 0x10000]],
    ['create', [1, k32, false, 100, 2]],
    ['create', [1, k32, false, 100, 1, -1]],
    ['sendTo', [-1, Buffer.alloc(1), 53, '127.0.0.1', 4]],
    ['sendTo', [0, Buffer.alloc(1), 0, '127.0.0.1', 4]],
    ['sendTo', [0, Buffer.alloc(1), 53, '127.0.0.1', 5]],
    ['sendTo', [0, 'data', 53, '127.0.0.1', 4]],
  ];
  for (const [fn, args] of calls) {
    assert.throws(() => a[fn]!(...args), TypeError, `${fn}(${args.map((x) => typeof x).join(', ')})`);
  }
  // out overlapping the input is refused rather than read after being overwritten.
  const big = Buffer.alloc(200);
  assert.throws(
    () => a.udpSeal!(1, k32, big.subarray(0, 10), big.subarray(10, 20), big.subarray(5, 73)),
    TypeError,
  );
  assert.throws(() => a.udpOpen!(1, k32, big.subarray(0, 100), big.subarray(50, 102)), TypeError);
  // Garbage datagrams are a status, not an exception.
  assert.equal(a.udpOpen!(1, k32, Buffer.alloc(10)), 1);
  assert.equal(a.udpOpen!(1, k32, randomBytes(100)), 1);
});

// ---- SIP022 streams: native bulk chunks against the JS path ----------------------------------

type Side = 'js' | 'native';
const on = <T>(side: Side, f: () => T): T => (side === 'native' ? f() : onJs(f));
const NOW = 1_700_000_000_000;
const target = { type: 'domain' as const, host: 'example.com', port: 443 };

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const pts = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let last = 0;
  for (const p of pts) {
    out.push(buf.subarray(last, p));
    last = p;
  }
  out.push(buf.subarray(last));
  return out;
}

test('SIP022 TCP: both paths write the same bytes and read each other, any split (fast-check)', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS_2022) {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 150_000 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom<[Side, Side]>(['js', 'native'], ['native', 'js'], ['native', 'native']),
        (sizes, cuts, [encSide, decSide]) => {
          const key = Buffer.alloc(m.keySize, 9);
          const salt = Buffer.alloc(m.saltSize, 1);
          const writes = sizes.map((n, i) => Buffer.alloc(n, i + 1));
          const wire = (side: Side): Buffer =>
            on(side, () => {
              const e = new Aead2022RequestEncoder(m, key, { salt });
              const parts = [e.encodeHeader(target, Buffer.from('hello'), NOW, Buffer.alloc(0))];
              for (const w of writes) parts.push(e.encode(w));
              return Buffer.concat(parts);
            });
          const bytes = wire(encSide);
          assert.deepEqual(bytes, wire(encSide === 'js' ? 'native' : 'js'), 'encoders agree byte for byte');
          const got = on(decSide, () => {
            const d = new Aead2022RequestDecoder(m, { key });
            const out: Buffer[] = [];
            for (const piece of splitAt(bytes, cuts)) out.push(...d.push(piece, NOW));
            assert.ok(d.atBoundary, 'ends on a chunk boundary');
            assert.equal(d.buffered, 0);
            return Buffer.concat(out);
          });
          assert.deepEqual(got, Buffer.concat([Buffer.from('hello'), ...writes]));
        },
      ),
      { numRuns: 25 },
    );
  }
});

test('SIP022 TCP: responses cross paths; a 64 KiB write is four even chunks; a flipped bulk byte fails on both', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS_2022) {
    const key = randomBytes(m.keySize);
    const reqSalt = randomBytes(m.saltSize);
    for (const [encSide, decSide] of [
      ['native', 'js'],
      ['js', 'native'],
    ] as Array<[Side, Side]>) {
      const e = on(encSide, () => new Aead2022ResponseEncoder(m, key, reqSalt));
      const head = e.encodeHeader(Buffer.from('first'), NOW);
      const bulk = e.encode(Buffer.alloc(65_536, 5));
      assert.equal(bulk.length, 65_536 + 4 * (2 + 16 + 16), 'four 16 KiB chunks');
      const d = on(decSide, () => new Aead2022ResponseDecoder(m, key, reqSalt));
      const out = [...d.push(head, NOW), ...d.push(bulk, NOW)];
      assert.deepEqual(Buffer.concat(out), Buffer.concat([Buffer.from('first'), Buffer.alloc(65_536, 5)]));
      const more = e.encode(Buffer.alloc(MAX_PAYLOAD_2022, 6));
      more[30]! ^= 1;
      assert.throws(() => d.push(more, NOW), isCode('ERR_CIPHER'), `${encSide} -> ${decSide}`);
      assert.throws(() => d.push(Buffer.alloc(1), NOW), isCode('ERR_CIPHER'), 'stays failed');
    }
  }
});

test('SIP022 UDP: native and JS paths seal identical bytes and open each other, every method', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS_2022) {
    const key = randomBytes(m.keySize);
    const o = {
      sessionId: Buffer.from('sessid01'),
      packetId: 7n,
      address: { type: 'ipv4' as const, host: '192.0.2.1', port: 53 },
      payload: randomBytes(1200),
      nowMs: NOW,
      padding: Buffer.alloc(0),
      nonce: Buffer.alloc(24, 3),
    };
    const nat = sealClientPacket2022(m, key, o);
    assert.deepEqual(
      onJs(() => sealClientPacket2022(m, key, o)),
      nat,
      `${m.name}: same bytes`,
    );
    for (const side of ['js', 'native'] as const) {
      const p = on(side, () => openClientPacket2022(m, nat, NOW, { key }));
      assert.deepEqual(p.payload, o.payload, `${m.name}: opened on the ${side} path`);
      const bad = Buffer.from(nat);
      bad[bad.length - 20]! ^= 1;
      assert.throws(
        () => on(side, () => openClientPacket2022(m, bad, NOW, { key })),
        isCode('ERR_CIPHER'),
        `${m.name}: tampered on the ${side} path`,
      );
    }
    const reply = sealServerPacket2022(m, key, { ...o, clientSessionId: Buffer.from('client01') });
    assert.deepEqual(onJs(() => openServerPacket2022(m, key, reply, NOW)).payload, o.payload);
  }
});

test('sip004HeadMatches: true exactly for the key whose decoder accepts the salt and length chunk', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const keys = Array.from({ length: 6 }, (_, i) => evpBytesToKey(`k${i}`, m.keySize));
    for (let round = 0; round < 20; round++) {
      const owner = round % keys.length;
      const head = new AeadEncoder(m, keys[owner]!)
        .encode(randomBytes(1 + round * 50))
        .subarray(0, m.saltSize + 18);
      keys.forEach((k, i) => {
        let decoderSays: boolean;
        try {
          new AeadDecoder(m, k).push(head);
          decoderSays = true;
        } catch {
          decoderSays = false;
        }
        assert.equal(sip004HeadMatches(m, k, head), decoderSays, `${m.name}: key ${i}, owner ${owner}`);
        assert.equal(decoderSays, i === owner);
      });
      assert.equal(sip004HeadMatches(m, keys[owner]!, head.subarray(0, head.length - 1)), false, 'too short');
      assert.equal(sip004HeadMatches(m, keys[owner]!, randomBytes(head.length)), false, 'garbage');
    }
  }
  // Without the addon the caller must fall back to a decoder.
  assert.equal(
    onJs(() => sip004HeadMatches(METHODS[0]!, Buffer.alloc(16), randomBytes(50))),
    undefined,
  );
});

test('in-place decoding (pushInPlace) gives the same plaintext as push for any split, SIP004 and SIP022, and fails alike (fast-check)', (t) => {
  if (!requireNative(t)) return;
  const cut = (buf: Buffer, cuts: number[]): Buffer[] => splitAt(buf, cuts).map((b) => Buffer.from(b)); // fresh, owned buffers like socket reads
  for (const m of METHODS) {
    const key = evpBytesToKey('in place', m.keySize);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 40_000 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (sizes, cuts) => {
          const writes = sizes.map((n, i) => randomBytes(n).fill(i, 0, 1));
          const e = new AeadEncoder(m, key);
          const wire = Buffer.concat(writes.map((w) => e.encode(w)));
          const viaPush = new AeadDecoder(m, key);
          const viaInPlace = new AeadDecoder(m, key);
          const a = Buffer.concat(cut(wire, cuts).flatMap((p) => viaPush.push(p)));
          const b = Buffer.concat(cut(wire, cuts).flatMap((p) => viaInPlace.pushInPlace(p)));
          assert.deepEqual(b, a);
          assert.deepEqual(b, Buffer.concat(writes));
          assert.equal(viaInPlace.atBoundary, true);
        },
      ),
      { numRuns: 40 },
    );
    // A flipped byte in the second chunk: the first chunk's plaintext comes out, then ERR_CIPHER.
    const e = new AeadEncoder(m, key);
    const wire = Buffer.concat([e.encode(Buffer.alloc(100, 1)), e.encode(Buffer.alloc(100, 2))]);
    wire[wire.length - 5]! ^= 1;
    const d = new AeadDecoder(m, key);
    const first = d.pushInPlace(Buffer.from(wire.subarray(0, wire.length - 60)));
    assert.deepEqual(Buffer.concat(first), Buffer.alloc(100, 1));
    assert.throws(() => d.pushInPlace(Buffer.from(wire.subarray(wire.length - 60))), isCode('ERR_CIPHER'));
    assert.throws(() => d.pushInPlace(Buffer.alloc(10)), isCode('ERR_CIPHER'), 'stays failed');
  }
  for (const m of METHODS_2022) {
    const key = randomBytes(m.keySize);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 150_000 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (sizes, cuts) => {
          const e = new Aead2022RequestEncoder(m, key);
          const writes = sizes.map((n) => randomBytes(n));
          const wire = Buffer.concat([
            e.encodeHeader(target, Buffer.from('hi'), NOW),
            ...writes.map((w) => e.encode(w)),
          ]);
          const d = new Aead2022RequestDecoder(m, { key });
          const got = Buffer.concat(cut(wire, cuts).flatMap((p) => d.pushInPlace(p, NOW)));
          assert.deepEqual(got, Buffer.concat([Buffer.from('hi'), ...writes]));
          assert.equal(d.atBoundary, true);
        },
      ),
      { numRuns: 20 },
    );
  }
});

test('the SIP022 chunk codec reads chunks up to 0xFFFF written by others (decode and in place), and refuses more', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const subkey = randomBytes(m.keySize);
    const big = new NativeEncoder(m.cipher, subkey, { maxPayload: MAX_PAYLOAD_2022 });
    const wire = big.encode(randomBytes(MAX_PAYLOAD_2022));
    assert.equal(wire.length, MAX_PAYLOAD_2022 + 2 + 16 + 16, 'one 0xFFFF chunk');
    const opts = { maxPayload: MAX_PAYLOAD_2022, allowEmpty: true };
    const viaDecode = new NativeDecoder(m.cipher, subkey, opts).decode(wire);
    const viaInPlace = Buffer.concat(
      new NativeDecoder(m.cipher, subkey, opts).decodeInPlace(Buffer.from(wire)),
    );
    assert.equal(viaDecode.length, MAX_PAYLOAD_2022);
    assert.deepEqual(viaInPlace, viaDecode);
    // A SIP004 reader (0x3FFF) refuses that length.
    assert.throws(() => new NativeDecoder(m.cipher, subkey).decode(wire), isCode('ERR_PAYLOAD_SIZE'));
  }
});

test('SIP022 decoders read 0xFFFF chunks from another writer at any split, in place and not', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS_2022) {
    const key = randomBytes(m.keySize);
    const salt = randomBytes(m.saltSize);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), (cuts, inPlace) => {
        const enc = new Aead2022RequestEncoder(m, key, { salt });
        const head = enc.encodeHeader(target, Buffer.from('x'), NOW);
        // Another implementation's chunks: 0xFFFF and 0 bytes long, after our two header seals.
        const foreign = new NativeEncoder(m.aead.cipher, deriveSessionSubkey(key, salt), {
          maxPayload: MAX_PAYLOAD_2022,
          nonceStart: 2,
        });
        const big = randomBytes(2 * MAX_PAYLOAD_2022 + 7);
        const wire = Buffer.concat([head, foreign.encode(big)]);
        const d = new Aead2022RequestDecoder(m, { key });
        const got = splitAt(wire, cuts).flatMap((p) =>
          inPlace ? d.pushInPlace(Buffer.from(p), NOW) : d.push(Buffer.from(p), NOW),
        );
        assert.deepEqual(Buffer.concat(got), Buffer.concat([Buffer.from('x'), big]));
        assert.ok(d.atBoundary);
      }),
      { numRuns: 15 },
    );
  }
});
