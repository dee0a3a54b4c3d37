import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { AeadDecoder, AeadEncoder } from './aead.js';
import { evpBytesToKey } from './kdf.js';
import { getAeadMethod } from './methods.js';
import { fetFeatures, maxShare, offsetEntropy, signatureStats } from './shaping-features.js';
import {
  defaultRng,
  encodeFirstWrite,
  generatePrefix,
  inProberTrigger,
  makeShapedSalt,
  planFirstWrite,
  prefixBudget,
  saltCollisionProbability,
  sip004Length,
  STRICT_FAMILY_WEIGHTS,
  type Rng,
} from './shaping.js';

/** Deterministic rng (SHA-256 in counter mode) so failures replay exactly (D18). */
function seededRng(seed: string): Rng {
  let counter = 0;
  let pool = Buffer.alloc(0);
  return (n) => {
    while (pool.length < n) {
      pool = Buffer.concat([pool, createHash('sha256').update(`${seed}:${counter++}`).digest()]);
    }
    const out = pool.subarray(0, n);
    pool = pool.subarray(n);
    return Uint8Array.from(out);
  };
}

const N = 1000;

/** First packets as a censor sees them: shaped salt followed by ciphertext-like random bytes. */
function shapedPackets(saltSize: number, rng: Rng): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < N; i++) {
    const salt = makeShapedSalt(saltSize, { rng });
    const restLen = 40 + (rng(2)[0]! << 2);
    out.push(Buffer.concat([salt, Buffer.from(rng(restLen))]));
  }
  return out;
}

function prefixOf(salt: Uint8Array, saltSize: number): string {
  // The inserted prefix is at most prefixBudget bytes; compare the budget window.
  return Buffer.from(salt.subarray(0, prefixBudget(saltSize))).toString('hex');
}

for (const saltSize of [32, 16]) {
  test(`D1 (salt ${saltSize}): 1,000 shaped first packets are all C6-exempt`, () => {
    for (const [label, rng] of [
      ['seeded', seededRng(`exempt-${saltSize}`)],
      ['crypto', (n: number) => randomBytes(n)],
    ] as const) {
      const packets = shapedPackets(saltSize, rng);
      const notExempt = packets.filter((p) => !fetFeatures(p).exempt);
      assert.equal(
        notExempt.length,
        0,
        `${label}: ${notExempt.length} shaped packets not exempt, e.g. ${notExempt[0]?.subarray(0, 16).toString('hex')}`,
      );
      // Exempt through Ex2 or Ex5 specifically, not by luck.
      assert.ok(packets.every((p) => fetFeatures(p).ex2 || fetFeatures(p).ex5));
    }
  });

  test(`D1 (salt ${saltSize}): no constant signature over 1,000 connections`, () => {
    const rng = seededRng(`sig-${saltSize}`);
    const packets = shapedPackets(saltSize, rng);
    const entropies: number[] = [];
    for (let off = 0; off < 16; off++) entropies.push(offsetEntropy(packets, off));
    const minH = Math.min(...entropies);
    assert.ok(
      minH > 4,
      `per-offset entropy over offsets 0..15 must exceed 4 bits; got ${entropies.map((h) => h.toFixed(2)).join(' ')}`,
    );
    // Full generated prefixes: none recurs in more than 1% of connections.
    const prefixes: string[] = [];
    const r2 = seededRng(`prefixes-${saltSize}`);
    for (let i = 0; i < N; i++)
      prefixes.push(Buffer.from(generatePrefix(prefixBudget(saltSize), { rng: r2 })).toString('hex'));
    assert.ok(
      maxShare(prefixes) <= 0.01,
      `a prefix recurs in ${(maxShare(prefixes) * 100).toFixed(1)}% of connections`,
    );
    // Stronger: the first 6 bytes (the Ex2 window) do not recur in more than 1% either.
    const six = packets.map((p) => p.subarray(0, 6).toString('hex'));
    assert.ok(maxShare(six) <= 0.01, `a 6-byte start recurs in ${(maxShare(six) * 100).toFixed(1)}%`);
    const budgetWindows = packets.map((p) => prefixOf(p, saltSize));
    assert.ok(maxShare(budgetWindows) <= 0.01);
    const st = signatureStats(packets);
    assert.equal(st.minOffsetEntropy, minH);
    assert.ok(st.leadingShare[5]! <= 0.01);
    assert.ok(st.leadingShare[15]! <= 0.01);
  });
}

test('D1 strict preset: no leading substring of 2..16 bytes recurs in more than 1% of connections', () => {
  for (const saltSize of [32, 16]) {
    const rng = seededRng(`strict-${saltSize}`);
    const packets: Buffer[] = [];
    for (let i = 0; i < N; i++) {
      packets.push(
        Buffer.concat([
          makeShapedSalt(saltSize, { rng, weights: STRICT_FAMILY_WEIGHTS }),
          Buffer.from(rng(64)),
        ]),
      );
    }
    assert.ok(packets.every((p) => fetFeatures(p).ex2));
    for (let k = 2; k <= 16; k++) {
      const share = maxShare(packets.map((p) => p.subarray(0, k).toString('hex')));
      assert.ok(share <= 0.01, `salt ${saltSize}: a ${k}-byte start recurs in ${(share * 100).toFixed(1)}%`);
    }
    for (let off = 0; off < 16; off++) assert.ok(offsetEntropy(packets, off) > 5);
  }
});

test('D1 negative control: unshaped random first packets are not exempt (bar the ~0.3% Ex2 chance)', () => {
  const rng = seededRng('control');
  let exempt = 0;
  for (let i = 0; i < N; i++) {
    const p = rng(32 + 34 + 20 + (rng(1)[0]! << 1));
    if (fetFeatures(p).exempt) exempt++;
  }
  // Random bytes: Ex2 by chance with p = (95/256)^6 ~ 0.26%; the rest are negligible.
  assert.ok(exempt <= 10, `${exempt} of ${N} random packets exempt`);
});

test('prefix budget and length limits', () => {
  assert.equal(prefixBudget(32), 16);
  assert.equal(prefixBudget(16), 6);
  assert.throws(() => prefixBudget(8), /too small/);
  const rng = seededRng('limits');
  for (let maxLen = 3; maxLen <= 16; maxLen++) {
    for (let i = 0; i < 200; i++) {
      const p = generatePrefix(maxLen, { rng });
      assert.ok(p.length >= 3 && p.length <= maxLen, `len ${p.length} for max ${maxLen}`);
      const f = fetFeatures(Buffer.concat([p, Buffer.alloc(64, 0x80)]));
      assert.ok(f.ex2 || f.ex5, `not exempt: ${Buffer.from(p).toString('hex')}`);
      if (maxLen < 6) assert.ok(p[0] === 0x16 || p[0] === 0x17);
    }
  }
  assert.throws(() => generatePrefix(2), /too small/);
  const salt = makeShapedSalt(32);
  assert.equal(salt.length, 32);
});

test('salt collision probability (birthday bound) figures used in the docs', () => {
  // 32-byte salt, 16-byte prefix: 128 random bits.
  assert.ok(saltCollisionProbability(128, 2 ** 40) < 2 ** -48);
  // 16-byte salt, 6-byte prefix: 80 random bits.
  const p80 = saltCollisionProbability(80, 1e6);
  assert.ok(p80 > 3e-13 && p80 < 5e-13, String(p80));
  // 8-byte prefix would leave 64 bits: at 2^32 connections, ~39%.
  const p64 = saltCollisionProbability(64, 2 ** 32);
  assert.ok(p64 > 0.35 && p64 < 0.45, String(p64));
});

test('D3: prober trigger predicate', () => {
  assert.ok(inProberTrigger(162)); // 162 % 16 = 2
  assert.ok(inProberTrigger(169)); // 9
  assert.ok(inProberTrigger(994)); // 994 % 16 = 2
  assert.ok(!inProberTrigger(146)); // below 160
  assert.ok(!inProberTrigger(1010)); // above 999
  assert.ok(!inProberTrigger(163));
});

test('D3: planFirstWrite avoids the trigger whenever there is initial data', () => {
  let inTrig = 0;
  let cases = 0;
  for (const saltSize of [16, 32]) {
    for (let header = 7; header <= 262; header += 3) {
      for (let data = 0; data <= 1100; data += 7) {
        const plan = planFirstWrite(saltSize, header, data);
        cases++;
        assert.equal(
          plan.chunks.reduce((a, b) => a + b, 0),
          header + data,
        );
        assert.equal(plan.length, sip004Length(saltSize, plan.chunks));
        if (data > 0) assert.equal(plan.inTrigger, false, `salt ${saltSize} header ${header} data ${data}`);
        if (plan.inTrigger) inTrig++;
        if (!inProberTrigger(sip004Length(saltSize, [header + data]))) assert.equal(plan.split, false);
      }
    }
  }
  // Only header-only writes can stay in the trigger.
  assert.ok(inTrig / cases < 0.01);
  // A header alone that lands in the trigger is reported, not silently mangled.
  const h = 162 - 32 - 34; // 96-byte header => length 162
  assert.deepEqual(planFirstWrite(32, h, 0), { chunks: [h], length: 162, inTrigger: true, split: false });
});

test('D3: encodeFirstWrite follows the plan and decodes to header||data with a SIP004 decoder', () => {
  for (const methodName of ['aes-128-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305']) {
    const method = getAeadMethod(methodName);
    const key = evpBytesToKey('pw', method.keySize);
    for (const [header, data] of [
      [20, 0],
      [20, 500],
      [9, 162 - method.saltSize - 34 - 9], // single chunk would hit exactly 162
      [100, 20_000],
    ] as const) {
      const h = randomBytes(header);
      const d = randomBytes(data);
      const enc = new AeadEncoder(method, key, makeShapedSalt(method.saltSize));
      const wire = encodeFirstWrite(enc, h, d);
      const plan = planFirstWrite(method.saltSize, header, data);
      assert.equal(wire.length, plan.length);
      assert.ok(!inProberTrigger(wire.length) || data === 0);
      assert.ok(fetFeatures(wire).exempt);
      const dec = new AeadDecoder(method, key);
      const out = Buffer.concat(dec.push(wire));
      assert.deepEqual(out, Buffer.concat([h, d]));
    }
  }
});

test('defaultRng: pooled draws never repeat bytes across refills, are copies, and large draws work', () => {
  // 16-byte draws across more than two 4 KiB pool refills: a byte handed out twice (a refill that
  // did not happen, a position that did not advance) shows up as a repeated draw.
  const seen = new Set<string>();
  for (let i = 0; i < 700; i++) {
    const d = defaultRng(16);
    assert.equal(d.length, 16);
    const hex = Buffer.from(d).toString('hex');
    assert.ok(!seen.has(hex), `draw ${i} repeats an earlier one`);
    seen.add(hex);
    d.fill(0); // a copy: zeroing it must not zero what comes next
  }
  const next = defaultRng(32);
  assert.ok(next.some((b) => b !== 0));
  const big = defaultRng(1000);
  assert.equal(big.length, 1000);
  assert.ok(new Set(big).size > 200, 'a large draw is random bytes');
});

test('prefixes and shaped salts are the same draws as before the per-connection trims (seeded digest)', () => {
  // The digest of session 14's generator over every family mix and limit: a faster generator
  // must give the very same bytes from the same rng, so the distribution the tests above check
  // is the one every client draws.
  const h = createHash('sha256');
  const mixes = [
    undefined,
    STRICT_FAMILY_WEIGHTS,
    { http: 1000, tls: 0, text: 0 },
    { tls: 1000, http: 0, text: 0 },
    { http: 1, tls: 2, text: 3 },
  ];
  for (const [wi, weights] of mixes.entries()) {
    for (let maxLen = 3; maxLen <= 16; maxLen++) {
      const rng = seededRng(`g-${wi}-${maxLen}`);
      for (let i = 0; i < 500; i++) {
        try {
          h.update(generatePrefix(maxLen, weights ? { rng, weights } : { rng }));
        } catch (err) {
          h.update(`E${(err as Error).message}`);
        }
      }
    }
  }
  for (const size of [16, 32]) {
    const rng = seededRng(`s-${size}`);
    for (let i = 0; i < 2000; i++) h.update(makeShapedSalt(size, { rng }));
  }
  assert.equal(h.digest('hex'), 'c4b91b48acff32e8d99fecc85170f17dfa13c83cf21741f14040632c4f465355');
});

test('encodeFirstWrite: the one-chunk shortcut gives what planFirstWrite says, for every length around the trigger', () => {
  const method = getAeadMethod('aes-256-gcm');
  const key = evpBytesToKey('first-write', method.keySize);
  for (let h = 1; h <= 40; h += 13) {
    for (let d = 0; d <= 1100; d++) {
      const salt = Buffer.alloc(method.saltSize, d & 0xff);
      const header = Buffer.alloc(h, 1);
      const data = Buffer.alloc(d, 2);
      const plan = planFirstWrite(method.saltSize, h, d);
      const enc = new AeadEncoder(method, key, salt);
      const want = Buffer.concat(
        plan.split ? [enc.encode(header), enc.encode(data)] : [enc.encode(Buffer.concat([header, data]))],
      );
      const got = encodeFirstWrite(new AeadEncoder(method, key, salt), header, data);
      assert.equal(got.length, plan.length);
      assert.ok(got.equals(want), `header ${h}, data ${d}`);
      // The joined form (the lean tunnel's: header || data as the SOCKS5 front hands them over).
      const joined = encodeFirstWrite.joined(
        new AeadEncoder(method, key, salt),
        Buffer.concat([header, data]),
        h,
      );
      assert.ok(joined.equals(want), `joined: header ${h}, data ${d}`);
    }
  }
});
