import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import {
  decodeAddress,
  encodeAddress,
  encodedAddressLength,
  formatAddress,
  toSocksAddress,
  type SocksAddress,
} from './address.js';

const hex = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const isAddrError = (err: unknown) => err instanceof ProtocolError && err.code === 'ERR_ADDRESS';

/** RFC 5952 text as WHATWG URL serialises it: an independent canonicaliser. */
const canonical6 = (h: string) => new URL(`http://[${h}]/`).hostname.slice(1, -1);

test('known encodings (RFC 1928 §5)', () => {
  const cases: Array<[SocksAddress, string, string?]> = [
    [{ type: 'ipv4', host: '1.2.3.4', port: 80 }, '01 01020304 0050'],
    [{ type: 'ipv4', host: '255.255.255.255', port: 65535 }, '01 ffffffff ffff'],
    [{ type: 'ipv6', host: '::', port: 1 }, '04 00000000000000000000000000000000 0001'],
    [{ type: 'ipv6', host: '::1', port: 443 }, '04 00000000000000000000000000000001 01bb'],
    [
      { type: 'ipv6', host: '::ffff:1.2.3.4', port: 8 },
      '04 00000000000000000000ffff01020304 0008',
      '::ffff:102:304',
    ],
    [{ type: 'ipv6', host: '2001:db8:1:2:3:4:5:6', port: 9 }, '04 20010db8000100020003000400050006 0009'],
    [{ type: 'ipv6', host: 'FE80::1', port: 10 }, '04 fe800000000000000000000000000001 000a', 'fe80::1'],
    [
      { type: 'ipv6', host: '1:0:0:2:0:0:0:3', port: 11 },
      '04 00010000000000020000000000000003 000b',
      '1:0:0:2::3',
    ],
    [{ type: 'ipv6', host: '1::', port: 12 }, '04 00010000000000000000000000000000 000c'],
    [{ type: 'domain', host: 'a', port: 1 }, '03 01 61 0001'],
    [{ type: 'domain', host: 'é.example', port: 2 }, '03 0a c3a92e6578616d706c65 0002'],
  ];
  for (const [addr, h, decodedHost] of cases) {
    const wire = encodeAddress(addr);
    assert.equal(wire.toString('hex'), hex(h).toString('hex'), addr.host);
    assert.equal(encodedAddressLength(addr), wire.length);
    assert.deepEqual(decodeAddress(wire), {
      address: { ...addr, host: decodedHost ?? addr.host },
      length: wire.length,
    });
  }
  const long = 'x'.repeat(255);
  assert.equal(encodeAddress({ type: 'domain', host: long, port: 0 }).length, 1 + 1 + 255 + 2);
});

const ipv6Groups = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 });
const address: fc.Arbitrary<SocksAddress> = fc.oneof(
  fc.record(
    { type: fc.constant('ipv4' as const), host: fc.ipV4(), port: fc.integer({ min: 0, max: 65535 }) },
    { noNullPrototype: true },
  ),
  fc.record(
    { type: fc.constant('ipv6' as const), host: fc.ipV6(), port: fc.integer({ min: 0, max: 65535 }) },
    { noNullPrototype: true },
  ),
  fc.record(
    // Full 8 groups, zero runs included, without compression.
    {
      type: fc.constant('ipv6' as const),
      host: ipv6Groups.map((g) => g.map((x) => (x % 3 === 0 ? 0 : x).toString(16)).join(':')),
      port: fc.integer({ min: 0, max: 65535 }),
    },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      type: fc.constant('domain' as const),
      host: fc
        .oneof(fc.domain(), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }))
        .filter((h) => Buffer.byteLength(h) <= 255),
      port: fc.integer({ min: 0, max: 65535 }),
    },
    { noNullPrototype: true },
  ),
);

test('round trip: encode -> decode gives the address (IPv6 in RFC 5952 form), at any offset', () => {
  fc.assert(
    fc.property(
      address,
      fc.uint8Array({ maxLength: 5 }),
      fc.uint8Array({ maxLength: 5 }),
      (addr, before, after) => {
        const wire = encodeAddress(addr);
        assert.equal(wire.length, encodedAddressLength(addr));
        const framed = Buffer.concat([before, wire, after]);
        const r = decodeAddress(framed, before.length);
        assert.ok(r);
        assert.equal(r.length, wire.length);
        const expectedHost = addr.type === 'ipv6' ? canonical6(addr.host) : addr.host;
        assert.deepEqual(r.address, { ...addr, host: expectedHost });
        if (addr.type === 'ipv6') assert.ok(isIPv6(r.address.host));
        // Re-encoding the decoded form gives the same bytes.
        assert.deepEqual(encodeAddress(r.address), wire);
      },
    ),
    { numRuns: 500 },
  );
});

test('every strict prefix of a valid encoding decodes to undefined', () => {
  fc.assert(
    fc.property(address, (addr) => {
      const wire = encodeAddress(addr);
      for (let i = 0; i < wire.length; i++) {
        assert.equal(decodeAddress(wire.subarray(0, i)), undefined, `prefix ${i}`);
        // Also through a Uint8Array view with a non-zero byteOffset.
        const backing = new Uint8Array(i + 3);
        backing.set(wire.subarray(0, i), 3);
        assert.equal(decodeAddress(backing.subarray(3)), undefined);
      }
    }),
    { numRuns: 200 },
  );
});

test('malformed input: unknown ATYP, empty domain -> ERR_ADDRESS; random bytes never throw anything else', () => {
  for (const atyp of [0x00, 0x02, 0x05, 0xff])
    assert.throws(() => decodeAddress(Uint8Array.of(atyp, 1, 2, 3, 4, 5, 6, 7)), isAddrError);
  assert.throws(() => decodeAddress(hex('03 00 0050')), isAddrError);
  assert.throws(() => decodeAddress(hex('03 00')), isAddrError); // known bad before the port arrives
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(5), (bytes, offset) => {
      try {
        const r = decodeAddress(bytes, offset);
        if (r) assert.ok(offset + r.length <= bytes.length);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, String(err));
      }
    }),
    { numRuns: 2000 },
  );
});

test('encode validation: bad hosts give ERR_ADDRESS', () => {
  const bad: SocksAddress[] = [
    { type: 'ipv4', host: '1.2.3', port: 1 },
    { type: 'ipv4', host: '256.1.1.1', port: 1 },
    { type: 'ipv4', host: 'example.com', port: 1 },
    { type: 'ipv6', host: '1.2.3.4', port: 1 },
    { type: 'ipv6', host: '1:2:3:4:5:6:7:8:9', port: 1 },
    { type: 'ipv6', host: 'gggg::1', port: 1 },
    { type: 'domain', host: '', port: 1 },
    { type: 'domain', host: 'x'.repeat(256), port: 1 },
    { type: 'domain', host: 'é'.repeat(128), port: 1 }, // 256 bytes in UTF-8
  ];
  for (const a of bad) assert.throws(() => encodeAddress(a), isAddrError, a.host);
});

test('encode validation: port outside 0..65535 gives ERR_ADDRESS', () => {
  for (const port of [-1, 65536, 70000, 1.5, Number.NaN]) {
    assert.throws(() => encodeAddress({ type: 'ipv4', host: '1.2.3.4', port }), isAddrError, String(port));
  }
});

test('toSocksAddress and formatAddress', () => {
  assert.deepEqual(toSocksAddress('1.2.3.4', 80), { type: 'ipv4', host: '1.2.3.4', port: 80 });
  assert.deepEqual(toSocksAddress('[::1]', 443), { type: 'ipv6', host: '::1', port: 443 });
  assert.deepEqual(toSocksAddress('::1', 443), { type: 'ipv6', host: '::1', port: 443 });
  assert.deepEqual(toSocksAddress('example.com', 0), { type: 'domain', host: 'example.com', port: 0 });
  for (const [h, p] of [
    ['example.com', -1],
    ['example.com', 65536],
    ['example.com', 1.5],
    ['', 1],
    ['x'.repeat(256), 1],
  ] as const) {
    assert.throws(() => toSocksAddress(h, p), isAddrError);
  }
  assert.equal(formatAddress({ type: 'ipv6', host: '::1', port: 443 }), '[::1]:443');
  assert.equal(formatAddress({ type: 'ipv4', host: '1.2.3.4', port: 80 }), '1.2.3.4:80');
  assert.equal(formatAddress({ type: 'domain', host: 'example.com', port: 8080 }), 'example.com:8080');
});
