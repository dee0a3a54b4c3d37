import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fetFeatures } from './fet.js';

/** Bytes with exactly 4 set bits and not printable: 0x0f (popcount 4, non-printable). */
function eligible(n: number): Buffer {
  // Alternate 0x0f (non-printable, 4 bits) and 0xf0 (non-printable, 4 bits): popcount 4.0/byte.
  return Buffer.from(Array.from({ length: n }, (_, i) => (i % 2 ? 0xf0 : 0x0f)));
}

test('a payload failing every exemption is eligible', () => {
  const f = fetFeatures(eligible(100));
  assert.equal(f.popcountPerByte, 4);
  assert.deepEqual([f.ex1, f.ex2, f.ex3, f.ex4, f.ex5], [false, false, false, false, false]);
  assert.equal(f.eligible, true);
});

test('Ex1 popcount boundaries: <= 3.4 and >= 4.6 are exempt', () => {
  const pc = (b: Buffer): number =>
    [...b].reduce(
      (s, x) =>
        s +
        x
          .toString(2)
          .split('')
          .filter((c) => c === '1').length,
      0,
    ) / b.length;
  const mk = (bits: number[]): Buffer =>
    Buffer.from(bits.map((k) => [0x00, 0x80, 0x81, 0x83, 0x87, 0x8f, 0x9f, 0xbf, 0xff][k]!));
  const a = mk([4, 4, 3, 3, 3]); // 17/5 = 3.4
  const b = mk([5, 5, 5, 4, 4]); // 23/5 = 4.6
  const c = mk([4, 4, 4, 3, 3]); // 18/5 = 3.6
  assert.equal(pc(a), 3.4);
  assert.equal(fetFeatures(a).ex1, true);
  assert.equal(pc(b), 4.6);
  assert.equal(fetFeatures(b).ex1, true);
  assert.equal(fetFeatures(c).ex1, false);
});

test('Ex2: six leading printable bytes exempt, five do not', () => {
  const base = eligible(100);
  const six = Buffer.concat([Buffer.from('abcdef'), base.subarray(6)]);
  const five = Buffer.concat([Buffer.from('abcde'), base.subarray(5)]);
  assert.equal(fetFeatures(six).ex2, true);
  assert.equal(fetFeatures(five).ex2, false);
});

test('Ex3: more than half printable exempt; exactly half is not', () => {
  const half = Buffer.from(Array.from({ length: 100 }, (_, i) => (i % 2 ? 0x55 : 0xf0)));
  const f = fetFeatures(half);
  assert.equal(f.printableFraction, 0.5);
  assert.equal(f.ex3, false);
  const more = Buffer.from(half);
  more[0] = 0x55;
  assert.equal(fetFeatures(more).ex3, true);
});

test('Ex4: a printable run of 21 exempts; 20 does not', () => {
  const base = eligible(100);
  const r20 = Buffer.from(base);
  r20.fill(0x55, 10, 30);
  const r21 = Buffer.from(base);
  r21.fill(0x55, 10, 31);
  assert.equal(fetFeatures(r20).longestPrintableRun, 20);
  assert.equal(fetFeatures(r20).ex4, false);
  assert.equal(fetFeatures(r21).ex4, true);
});

test('Ex5: TLS 16/17 03 00..09 and HTTP method prefixes (case-sensitive)', () => {
  const base = eligible(100);
  const tls = (a: number, b: number, c: number): boolean =>
    fetFeatures(Buffer.concat([Buffer.from([a, b, c]), base.subarray(3)])).ex5;
  assert.equal(tls(0x16, 0x03, 0x01), true);
  assert.equal(tls(0x17, 0x03, 0x09), true);
  assert.equal(tls(0x16, 0x03, 0x0a), false);
  assert.equal(tls(0x15, 0x03, 0x01), false);
  assert.equal(
    fetFeatures(Buffer.concat([Buffer.from([0x16, 0x03, 0x0f]), base.subarray(3)]), { tlsMaxMinor: 0x0f })
      .ex5,
    true,
  );
  for (const m of ['GET ', 'PUT ', 'POST ', 'HEAD '])
    assert.equal(fetFeatures(Buffer.concat([Buffer.from(m), base])).matchesHttp, true, m);
  assert.equal(fetFeatures(Buffer.concat([Buffer.from('get '), base])).matchesHttp, false);
});

test('uniformly random payloads are mostly eligible (about 0.6% of real traffic is not)', () => {
  let n = 0;
  for (let i = 0; i < 200; i++) {
    const b = Buffer.alloc(300);
    for (let j = 0; j < b.length; j++) b[j] = (Math.imul(i * 7919 + j, 2654435761) >>> 13) & 0xff;
    if (fetFeatures(b).eligible) n++;
  }
  assert.ok(n > 150, `eligible ${n}/200`);
});
