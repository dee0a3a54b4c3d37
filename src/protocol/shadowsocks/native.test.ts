// The native SIP004 codec (native/stream_codec.cc via cipher-native.ts) against the node:crypto path of
// aead.ts: byte-identical output in both directions, the same errors at the same push, and the
// addon's own argument and memory handling. The native half skips loudly when the addon is not
// built (node scripts/build-native.mjs) and fails under CI=true, where the install builds it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import { AeadDecoder, AeadEncoder, AeadSession, MAX_PAYLOAD } from './aead.js';
import { deriveSubkey, evpBytesToKey } from './kdf.js';
import { AEAD_METHODS, getAeadMethod, type AeadMethod, type AeadMethodName } from './methods.js';
import { NativeDecoder, NativeEncoder } from './cipher-native.js';
import { nativeAvailable, nativeLoadError, setNativeEnabled } from './native.js';
import { requireOrSkip } from '../../../test/helpers/prereq.js';

const METHODS = Object.values(AEAD_METHODS);
const HAVE_NATIVE = nativeAvailable();

/** Skips (loudly) when the addon is missing; fails instead under CI=true. */
const requireNative = (t: TestContext): boolean =>
  requireOrSkip(
    t,
    HAVE_NATIVE,
    `native AEAD addon unavailable (${nativeLoadError() ?? 'unknown'}); run: node scripts/build-native.mjs`,
  );

type Path = 'js' | 'native';
const PATHS: Path[] = ['js', 'native'];

/** Runs `f` with the native codec switched on or off (encoders/decoders choose at construction). */
function on<T>(path: Path, f: () => T): T {
  setNativeEnabled(path === 'native');
  try {
    return f();
  } finally {
    setNativeEnabled(true);
  }
}
const encoder = (p: Path, m: AeadMethod, key: Uint8Array, salt?: Uint8Array) =>
  on(p, () => (salt ? new AeadEncoder(m, key, salt) : new AeadEncoder(m, key)));
const decoder = (p: Path, m: AeadMethod, key: Uint8Array) => on(p, () => new AeadDecoder(m, key));

const keyFor = (m: AeadMethod, pw = 'test-password') => evpBytesToKey(pw, m.keySize);
const saltFor = (m: AeadMethod, seed = 0) =>
  Buffer.from(Array.from({ length: m.saltSize }, (_, i) => (i + seed) & 0xff));
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const isCode = (code: string) => (err: unknown) => err instanceof ProtocolError && err.code === code;
const sameBytes = (a: Uint8Array, b: Uint8Array, what: string) =>
  assert.ok(Buffer.compare(a, b) === 0, `${what}: ${a.length} vs ${b.length} bytes differ`);

/** Wire bytes for `writes` on the given path, one encode() per write. */
function encodeAll(
  p: Path,
  m: AeadMethod,
  key: Uint8Array,
  salt: Uint8Array,
  writes: Uint8Array[],
): Buffer[] {
  const enc = encoder(p, m, key, salt);
  return writes.map((w) => enc.encode(w));
}

interface Step {
  out: Buffer;
  buffered: number;
  needed: number;
  atBoundary: boolean;
}
/** Decodes pieces on one path, recording what each push returns and the getters after it. */
function decodeSteps(p: Path, m: AeadMethod, key: Uint8Array, pieces: Uint8Array[]): Step[] {
  const d = decoder(p, m, key);
  return pieces.map((piece) => ({
    out: Buffer.concat(d.push(piece)),
    buffered: d.buffered,
    needed: d.needed,
    atBoundary: d.atBoundary,
  }));
}

/** Both paths decode `pieces` to the same plaintext per push, with the same getters. */
function assertSameDecode(
  m: AeadMethod,
  key: Uint8Array,
  pieces: Uint8Array[],
  expected: Uint8Array,
  what: string,
) {
  const js = decodeSteps('js', m, key, pieces);
  const nat = decodeSteps('native', m, key, pieces);
  for (let i = 0; i < pieces.length; i++) {
    sameBytes(nat[i]!.out, js[i]!.out, `${what}: output of push ${i}`);
    assert.deepEqual(
      { ...nat[i], out: undefined },
      { ...js[i], out: undefined },
      `${what}: buffered/needed/atBoundary after push ${i}`,
    );
  }
  sameBytes(Buffer.concat(nat.map((s) => s.out)), expected, `${what}: plaintext`);
}

/** The first error each path throws for `pieces`, and at which push. */
function firstError(p: Path, m: AeadMethod, key: Uint8Array, pieces: Uint8Array[]) {
  const d = decoder(p, m, key);
  for (let i = 0; i < pieces.length; i++) {
    try {
      d.push(pieces[i]!);
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `${p}: not a ProtocolError: ${String(err)}`);
      // A failed decoder stays failed, whatever comes next.
      assert.throws(() => d.push(new Uint8Array(0)), isCode('ERR_CIPHER'));
      assert.throws(() => d.push(pieces[0]!), isCode('ERR_CIPHER'));
      return { at: i, code: err.code, message: err.message };
    }
  }
  return undefined;
}

function splitAt(wire: Buffer, cuts: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, wire.length]) {
    pieces.push(wire.subarray(prev, c));
    prev = c;
  }
  return pieces;
}

/** Copies into Uint8Arrays that are offset views into larger ArrayBuffers (not Buffers). */
const asViews = (pieces: Uint8Array[]) =>
  pieces.map((p) => {
    const backing = new Uint8Array(p.length + 13);
    backing.fill(0xee);
    backing.set(p, 7);
    return backing.subarray(7, 7 + p.length);
  });

test('native addon is built and loads (skips loudly without it; required under CI=true)', (t) => {
  if (!requireNative(t)) return;
  assert.equal(nativeAvailable(), true);
  assert.equal(nativeLoadError(), undefined);
  setNativeEnabled(false);
  assert.equal(nativeAvailable(), false);
  assert.throws(() => new NativeEncoder('aes-256-gcm', new Uint8Array(32)), /not available/);
  setNativeEnabled(true);
  assert.equal(nativeAvailable(), true);
});

test('SIP004 known-answer vectors pass on both paths', (t) => {
  const V = JSON.parse(
    readFileSync(new URL('../../../test/vectors/sip004.json', import.meta.url), 'utf8'),
  ) as {
    chunks: {
      method: AeadMethodName;
      password: string;
      salt: string;
      calls?: string[];
      wire?: string[];
      payloadLen?: number;
      oneByteCalls?: number;
      wireLen?: number;
      wireSha256?: string;
      wireTail?: string;
    }[];
  };
  assert.ok(V.chunks.length >= 9);
  for (const p of PATHS) {
    if (p === 'native' && !requireNative(t)) return;
    for (const v of V.chunks) {
      const m = getAeadMethod(v.method);
      const key = evpBytesToKey(v.password, m.keySize);
      const enc = encoder(p, m, key, Buffer.from(v.salt, 'hex'));
      let wire: Buffer;
      let plain: Buffer;
      if (v.calls) {
        const parts = v.calls.map((c) => enc.encode(Buffer.from(c, 'hex')));
        assert.deepEqual(
          parts.map((x) => x.toString('hex')),
          v.wire,
          `${p} ${v.method}`,
        );
        wire = Buffer.concat(parts);
        plain = Buffer.concat(v.calls.map((c) => Buffer.from(c, 'hex')));
      } else if (v.payloadLen !== undefined) {
        plain = Buffer.from(Array.from({ length: v.payloadLen }, (_, i) => i & 0xff));
        wire = enc.encode(plain);
      } else {
        const parts: Buffer[] = [];
        for (let i = 0; i < v.oneByteCalls!; i++) parts.push(enc.encode(Buffer.from([i & 0xff])));
        wire = Buffer.concat(parts);
        plain = Buffer.from(Array.from({ length: v.oneByteCalls! }, (_, i) => i & 0xff));
      }
      if (v.wireLen !== undefined) {
        assert.equal(wire.length, v.wireLen, `${p} ${v.method}`);
        assert.equal(sha256(wire), v.wireSha256, `${p} ${v.method}`);
        assert.equal(wire.subarray(-64).toString('hex'), v.wireTail, `${p} ${v.method}`);
      }
      const d = decoder(p, m, key);
      sameBytes(Buffer.concat(d.push(wire)), plain, `${p} ${v.method} decode`);
      assert.equal(d.atBoundary, true);
    }
  }
});

test('encoder: native output is byte-identical to node:crypto (sizes around the chunk limit)', (t) => {
  if (!requireNative(t)) return;
  const sizes = [
    0,
    1,
    2,
    17,
    18,
    100,
    MAX_PAYLOAD - 1,
    MAX_PAYLOAD,
    MAX_PAYLOAD + 1,
    2 * MAX_PAYLOAD,
    3 * MAX_PAYLOAD + 5,
    65536,
  ];
  for (const m of METHODS) {
    const key = keyFor(m);
    const salt = saltFor(m);
    const writes = sizes.map((n) => randomBytes(n));
    const js = encodeAll('js', m, key, salt, writes);
    const nat = encodeAll('native', m, key, salt, writes);
    for (let i = 0; i < writes.length; i++)
      sameBytes(nat[i]!, js[i]!, `${m.name} write ${i} (${sizes[i]} bytes)`);
    // And from a Uint8Array view into a larger buffer, not a Buffer.
    const [view] = asViews([randomBytes(MAX_PAYLOAD + 3)]);
    sameBytes(
      encodeAll('native', m, key, salt, [view!])[0]!,
      encodeAll('js', m, key, salt, [view!])[0]!,
      `${m.name} view`,
    );
  }
});

test('encoder: byte-identical for random write sequences, keys and salts (fast-check)', (t) => {
  if (!requireNative(t)) return;
  fc.assert(
    fc.property(
      fc.constantFrom(...METHODS),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.array(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc.integer({ min: MAX_PAYLOAD - 2, max: 2 * MAX_PAYLOAD + 2 }),
        ),
        { minLength: 1, maxLength: 6 },
      ),
      (m, k, s, ws) => {
        const key = k.subarray(0, m.keySize);
        const salt = s.subarray(0, m.saltSize);
        const writes = ws.map((w) => (typeof w === 'number' ? new Uint8Array(w).fill(w & 0xff) : w));
        sameBytes(
          Buffer.concat(encodeAll('native', m, key, salt, writes)),
          Buffer.concat(encodeAll('js', m, key, salt, writes)),
          m.name,
        );
      },
    ),
    { numRuns: 80 },
  );
});

test('decoder: every split point and byte-at-a-time, both paths, across encoders', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const key = keyFor(m);
    const salt = saltFor(m, 3);
    const plain = Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n');
    const writes = [plain.subarray(0, 10), new Uint8Array(0), plain.subarray(10)];
    for (const encPath of PATHS) {
      const wire = Buffer.concat(encodeAll(encPath, m, key, salt, writes));
      for (let i = 0; i <= wire.length; i++) {
        assertSameDecode(
          m,
          key,
          [wire.subarray(0, i), wire.subarray(i)],
          plain,
          `${m.name} ${encPath} split ${i}`,
        );
      }
      for (let i = 0; i < wire.length; i += 3) {
        for (let j = i; j <= wire.length; j += 5) {
          assertSameDecode(m, key, splitAt(wire, [i, j]), plain, `${m.name} ${encPath} splits ${i},${j}`);
        }
      }
      assertSameDecode(
        m,
        key,
        asViews(Array.from(wire, (b) => Uint8Array.of(b))),
        plain,
        `${m.name} bytewise`,
      );
    }
  }
});

test('decoder: random splits of random streams give the same output and state on both paths (fast-check)', (t) => {
  if (!requireNative(t)) return;
  fc.assert(
    fc.property(
      fc.constantFrom(...METHODS),
      fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 5 }),
      fc.option(fc.integer({ min: MAX_PAYLOAD - 3, max: 3 * MAX_PAYLOAD + 40 }), { freq: 3 }),
      fc.array(fc.nat(), { maxLength: 14 }),
      fc.constantFrom(...PATHS),
      (m, writes, big, cutSeeds, encPath) => {
        const key = keyFor(m);
        if (big !== null) writes = [...writes, new Uint8Array(big).fill(0xab)];
        const wire = Buffer.concat(encodeAll(encPath, m, key, saltFor(m, 9), writes));
        const cuts = [...new Set(cutSeeds.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        assertSameDecode(m, key, asViews(splitAt(wire, cuts)), Buffer.concat(writes), `${m.name} ${encPath}`);
      },
    ),
    { numRuns: 150 },
  );
});

test('tampering: both paths throw ERR_CIPHER at the same push, and stay failed', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const key = keyFor(m);
    const wire = Buffer.concat(
      encodeAll('js', m, key, saltFor(m), [Buffer.from('hello, world'), Buffer.from('again')]),
    );
    for (let i = m.saltSize; i < wire.length; i++) {
      const bad = Buffer.from(wire);
      bad[i]! ^= 0x01;
      for (const cut of [wire.length, m.saltSize + 7, i]) {
        const pieces = splitAt(bad, [cut]);
        const js = firstError('js', m, key, pieces);
        const nat = firstError('native', m, key, pieces);
        assert.equal(js?.code, 'ERR_CIPHER', `${m.name} byte ${i} cut ${cut}`);
        assert.deepEqual(nat, js, `${m.name} byte ${i} cut ${cut}`);
      }
    }
    // A wrong key fails the same way (the server's trial decryption relies on this).
    const other = firstError('native', m, keyFor(m, 'wrong'), [wire]);
    assert.deepEqual(other, firstError('js', m, keyFor(m, 'wrong'), [wire]));
    assert.equal(other?.code, 'ERR_CIPHER');
  }
  fc.assert(
    fc.property(
      fc.constantFrom(...METHODS),
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 100 }), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      fc.nat(),
      (m, writes, pos, x, cutSeed) => {
        const key = keyFor(m);
        const wire = Buffer.concat(encodeAll('native', m, key, saltFor(m), writes));
        const at = m.saltSize + (pos % (wire.length - m.saltSize)); // a changed salt is just another key
        wire[at]! ^= x;
        const pieces = splitAt(wire, [cutSeed % (wire.length + 1)]);
        const nat = firstError('native', m, key, pieces);
        assert.equal(nat?.code, 'ERR_CIPHER');
        assert.deepEqual(nat, firstError('js', m, key, pieces));
      },
    ),
    { numRuns: 100 },
  );
});

test('bad chunk length (0, above 0x3FFF) gives ERR_PAYLOAD_SIZE on both paths; 0x3FFF is fine', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const key = keyFor(m);
    const salt = saltFor(m);
    for (const len of [0, 0x4000, 0x7fff, 0xffff]) {
      // A good chunk first, then the bad length, so the error comes after some output.
      const s = new AeadSession(m, deriveSubkey(key, salt));
      const field = Buffer.alloc(2);
      field.writeUInt16BE(len);
      const wire = Buffer.concat([
        salt,
        s.seal(Buffer.from([0, 3])),
        s.seal(Buffer.from('abc')),
        s.seal(field),
      ]);
      for (const cut of [wire.length, wire.length - 1, m.saltSize + 18 + 19]) {
        const pieces = splitAt(wire, [cut]);
        const nat = firstError('native', m, key, pieces);
        assert.equal(nat?.code, 'ERR_PAYLOAD_SIZE', `len ${len}`);
        assert.match(nat.message, new RegExp(`chunk length ${len} `));
        assert.deepEqual(nat, firstError('js', m, key, pieces), `len ${len} cut ${cut}`);
      }
    }
    const s = new AeadSession(m, deriveSubkey(key, salt));
    const body = Buffer.alloc(MAX_PAYLOAD, 1);
    const wire = Buffer.concat([salt, s.seal(Buffer.from([0x3f, 0xff])), s.seal(body)]);
    assertSameDecode(m, key, [wire], body, `${m.name} 0x3FFF`);
  }
});

test('errors are reported in stream order: a bad payload before a bad length is ERR_CIPHER', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const key = keyFor(m);
    const salt = saltFor(m);
    const s = new AeadSession(m, deriveSubkey(key, salt));
    const payload = s.seal(Buffer.from('abc'));
    payload[0]! ^= 1;
    const wire = Buffer.concat([
      salt,
      s.seal(Buffer.from([0, 3])),
      payload,
      s.seal(Buffer.from([0xff, 0xff])),
    ]);
    const nat = firstError('native', m, key, [wire]);
    assert.equal(nat?.code, 'ERR_CIPHER');
    assert.deepEqual(nat, firstError('js', m, key, [wire]));
  }
});

test('native decoder copies an incomplete chunk, so the caller may reuse its buffer', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const key = keyFor(m);
    const plain = randomBytes(3 * MAX_PAYLOAD);
    const wire = Buffer.concat(encodeAll('native', m, key, saltFor(m), [plain]));
    const d = decoder('native', m, key);
    const scratch = Buffer.alloc(wire.length);
    const out: Buffer[] = [];
    for (let o = 0; o < wire.length; o += 1000) {
      const n = Math.min(1000, wire.length - o);
      wire.copy(scratch, 0, o, o + n);
      out.push(...d.push(scratch.subarray(0, n)));
      scratch.fill(0); // what a static onread buffer would do
    }
    sameBytes(Buffer.concat(out), plain, m.name);
    // Payloads of one push come back as one Buffer.
    const d2 = decoder('native', m, key);
    assert.equal(d2.push(wire).length, 1);
  }
});

test('NativeEncoder.seal / NativeDecoder.open match AeadSession', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const sub = deriveSubkey(keyFor(m), saltFor(m));
    const js = new AeadSession(m, sub);
    const enc = new NativeEncoder(m.cipher, sub);
    const dec = new NativeDecoder(m.cipher, sub);
    for (const n of [0, 1, 100, MAX_PAYLOAD, 65_000]) {
      const p = randomBytes(n);
      const sealed = enc.seal(p);
      sameBytes(sealed, js.seal(p), `${m.name} ${n}`);
      const bad = Buffer.from(sealed);
      bad[0]! ^= 1;
      assert.throws(() => dec.open(bad), isCode('ERR_CIPHER'));
      sameBytes(dec.open(sealed), p, `${m.name} open ${n}`); // a failed open does not advance the nonce
    }
    assert.throws(() => dec.open(new Uint8Array(15)), isCode('ERR_SHORT_HEADER'));
  }
});

test('AeadSession: native and node:crypto give the same bytes for any mix of seal, sealInto and open (fast-check)', (t) => {
  if (!requireNative(t)) return;
  type Op = { kind: 'seal' | 'sealInto' | 'open' | 'openBad'; len: number };
  fc.assert(
    fc.property(
      fc.constantFrom(...METHODS),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.array(
        fc.record({
          kind: fc.constantFrom<Op['kind']>('seal', 'sealInto', 'open', 'openBad'),
          len: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: MAX_PAYLOAD - 1, max: 70_000 })),
        }),
        { minLength: 1, maxLength: 12 },
      ),
      (m, k, ops) => {
        const sub = k.subarray(0, m.keySize);
        const js = on('js', () => new AeadSession(m, sub));
        const nat = on('native', () => new AeadSession(m, sub));
        // A peer that seals what the sessions under test must open, at their nonce.
        const peer = new AeadSession(m, sub);
        let i = 0;
        for (const op of ops) {
          const plain = Buffer.alloc(op.len, i++ & 0xff);
          if (op.kind === 'seal') {
            sameBytes(nat.seal(plain), js.seal(plain), `${m.name} seal ${op.len}`);
            peer.seal(plain);
          } else if (op.kind === 'sealInto') {
            const a = Buffer.alloc(op.len + 16 + 9, 0x55);
            const b = Buffer.alloc(op.len + 16 + 9, 0x55);
            assert.equal(nat.sealInto(plain, a, 5), op.len + 16);
            assert.equal(js.sealInto(plain, b, 5), op.len + 16);
            sameBytes(a, b, `${m.name} sealInto ${op.len}`);
            peer.seal(plain);
          } else {
            const sealed = peer.seal(plain);
            if (op.kind === 'openBad') {
              const bad = Buffer.from(sealed);
              bad[bad.length - 1]! ^= 0x80;
              assert.throws(() => nat.open(bad), isCode('ERR_CIPHER'));
              assert.throws(() => js.open(bad), isCode('ERR_CIPHER'));
            }
            sameBytes(nat.open(sealed), plain, `${m.name} open ${op.len}`);
            sameBytes(js.open(sealed), plain, `${m.name} js open ${op.len}`);
          }
        }
      },
    ),
    { numRuns: 60 },
  );
});

test('AeadSession.sealInto: in place, overlapping, views and bounds on the native path', (t) => {
  if (!requireNative(t)) return;
  for (const m of METHODS) {
    const sub = deriveSubkey(keyFor(m), saltFor(m));
    const plain = randomBytes(1000);
    const expected = new AeadSession(m, sub).seal(plain);
    for (const [src, dst] of [
      [0, 0],
      [10, 0],
      [0, 10],
      [16, 0],
      [0, 1016],
    ] as const) {
      const buf = Buffer.alloc(3000);
      plain.copy(buf, src);
      const s = on('native', () => new AeadSession(m, sub));
      assert.equal(s.sealInto(buf.subarray(src, src + 1000), buf, dst), 1016);
      sameBytes(buf.subarray(dst, dst + 1016), expected, `${m.name} src ${src} dst ${dst}`);
    }
    // Into a Uint8Array view of a larger ArrayBuffer (typed as Buffer by the API, used as bytes).
    const backing = new Uint8Array(2000);
    const view = backing.subarray(100, 1200) as Buffer;
    assert.equal(on('native', () => new AeadSession(m, sub)).sealInto(plain, view, 50), 1016);
    sameBytes(backing.subarray(150, 1166), expected, `${m.name} view`);
    assert.equal(backing[149], 0);
    assert.equal(backing[1166], 0);
    const s = on('native', () => new AeadSession(m, sub));
    assert.throws(() => s.sealInto(plain, Buffer.alloc(1015), 0), RangeError);
    assert.throws(() => s.sealInto(plain, Buffer.alloc(2000), 1000), RangeError);
    assert.throws(() => s.sealInto(plain, Buffer.alloc(2000), -1), RangeError);
    sameBytes(s.seal(plain), expected, `${m.name} nonce unchanged by refused sealInto`);
  }
});

interface RawAddon {
  available(m: unknown): boolean;
  create(...a: unknown[]): object;
  encode(...a: unknown[]): Buffer;
  decode(...a: unknown[]): Buffer | number;
  createSession(...a: unknown[]): object;
  seal(...a: unknown[]): Buffer;
  sealInto(...a: unknown[]): number;
  open(...a: unknown[]): Buffer | number;
}

test('addon: bad arguments throw TypeError instead of crashing', (t) => {
  if (!requireNative(t)) return;
  const a = createRequire(import.meta.url)('../../../build/Release/ladder_aead.node') as RawAddon;
  const key = new Uint8Array(32);
  const enc = a.create(1, key, true);
  const dec = a.create(1, key, false);
  const info = new Int32Array(4);
  const typeErr = { code: 'ERR_LADDER_AEAD' };
  for (const m of [-1, 3, 1.5e10, 'x', undefined]) assert.throws(() => a.create(m, key, true), typeErr);
  assert.equal(a.available(7), false);
  assert.equal(a.available('x'), false);
  assert.throws(() => a.create(0, key, true), typeErr); // 32-byte key for aes-128
  assert.throws(() => a.create(1, new Uint8Array(16), true), typeErr);
  assert.throws(() => a.create(1, new Uint16Array(16), true), typeErr);
  assert.throws(() => a.create(1, 'k'.repeat(32), true), typeErr);
  assert.throws(() => a.create(1, key, 1), typeErr);
  assert.throws(() => a.create(1, key), typeErr);
  assert.throws(() => a.encode(dec, new Uint8Array(1)), typeErr);
  assert.throws(() => a.decode(enc, new Uint8Array(1), info), typeErr);
  assert.throws(() => a.encode({}, new Uint8Array(1)), typeErr);
  assert.throws(() => a.encode(null, new Uint8Array(1)), typeErr);
  assert.throws(() => a.encode(enc, [1, 2, 3]), typeErr);
  assert.throws(() => a.encode(enc, new DataView(new ArrayBuffer(4))), typeErr);
  assert.throws(() => a.encode(enc, new Uint8Array(1), 'salt'), typeErr);
  assert.throws(() => a.decode(dec, new Uint8Array(1), new Int32Array(3)), typeErr);
  assert.throws(() => a.decode(dec, new Uint8Array(1), new Uint32Array(4)), typeErr);
  assert.throws(() => a.decode(dec, new Uint8Array(1)), typeErr);
  assert.throws(() => a.seal(dec, new Uint8Array(1)), typeErr);
  assert.throws(() => a.open(enc, new Uint8Array(20)), typeErr);
  assert.throws(() => a.open(dec, new Uint8Array(15)), typeErr);
  const ses = a.createSession(1, key);
  assert.throws(() => a.encode(ses, new Uint8Array(1)), typeErr); // sessions do single operations only
  assert.throws(() => a.decode(ses, new Uint8Array(1), info), typeErr);
  assert.throws(() => a.createSession(1, new Uint8Array(31)), typeErr);
  const out = new Uint8Array(40);
  for (const off of [-1, 25, 41, 2 ** 53, Number.NaN, '0'])
    assert.throws(() => a.sealInto(ses, new Uint8Array(8), out, off), typeErr, `offset ${String(off)}`);
  assert.throws(() => a.sealInto(ses, new Uint8Array(8), new Uint16Array(40), 0), typeErr);
  assert.throws(() => a.sealInto(dec, new Uint8Array(8), out, 0), typeErr);
  assert.equal(a.sealInto(ses, new Uint8Array(8), out, 16), 24);
  assert.equal(a.sealInto(a.create(1, key, true), new Uint8Array(8), out, 0), 24);
  // A foreign external (another addon's) is refused by its type tag; a plain object too.
  assert.throws(() => a.decode(Object.create(null), new Uint8Array(0), info), typeErr);
  // Detached input is empty input.
  const ab = new ArrayBuffer(64);
  const detached = new Uint8Array(ab, 8, 16);
  structuredClone(ab, { transfer: [ab] });
  assert.equal(detached.length, 0);
  assert.equal(a.encode(enc, detached).length, 0);
  const r = a.decode(dec, detached, info);
  assert.ok(Buffer.isBuffer(r) && r.length === 0);
  // Still usable after all that.
  const w = a.encode(enc, Buffer.from('ok'));
  assert.equal(String(a.decode(dec, w, info)), 'ok');
});

test('addon: codecs are freed when collected (no native leak)', (t) => {
  if (!requireNative(t)) return;
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const a = createRequire(import.meta.url)('../../../build/Release/ladder_aead.node') as RawAddon;
  const key = new Uint8Array(32);
  const info = new Int32Array(4);
  const wire = a.encode(a.create(2, key, true), new Uint8Array(MAX_PAYLOAD));
  const round = () => {
    for (let i = 0; i < 20_000; i++) {
      const d = a.create(i % 2 ? 1 : 2, key, false);
      if (i % 2 === 0) a.decode(d, wire.subarray(0, 100), info); // allocates the carry buffer too
    }
  };
  const settle = async () => {
    for (let i = 0; i < 4; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
  };
  return (async () => {
    round();
    await settle();
    const base = process.memoryUsage().rss;
    for (let k = 0; k < 5; k++) {
      round();
      await settle();
    }
    const grown = process.memoryUsage().rss - base;
    // 100,000 codecs (half with a 16 KiB carry) would be > 800 MiB if leaked.
    assert.ok(grown < 64 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MiB`);
  })();
});
