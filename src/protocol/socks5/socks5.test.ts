import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../errors.js';
import type { SocksAddress } from './address.js';
import {
  AUTH_NONE,
  AUTH_USERPASS,
  CMD_CONNECT,
  CMD_UDP_ASSOCIATE,
  REP,
  encodeGreeting,
  encodeMethodSelection,
  encodeReply,
  encodeRequest,
  encodeUdpHeader,
  encodeUserPassAuth,
  encodeUserPassReply,
  parseGreeting,
  parseMethodSelection,
  parseReply,
  parseRequest,
  parseUdpDatagram,
  parseUserPassAuth,
  parseUserPassReply,
} from './socks5.js';

const hex = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

function assertSocksError(fn: () => unknown, code = 'ERR_SOCKS'): void {
  assert.throws(fn, (err: unknown) => err instanceof ProtocolError && err.code === code);
}

/** Every strict prefix gives undefined, the whole gives `expected`, and extra bytes are not consumed. */
function checkPrefixes<T extends { length: number }>(
  parse: (b: Uint8Array) => T | undefined,
  wire: Buffer,
  expected: T,
): void {
  for (let i = 0; i < wire.length; i++)
    assert.equal(parse(wire.subarray(0, i)), undefined, `prefix of ${i} bytes`);
  assert.deepEqual(parse(wire), expected);
  assert.deepEqual(parse(Buffer.concat([wire, hex('deadbeef')])), expected);
}

test('greeting: RFC 1928 bytes, prefixes, errors', () => {
  const wire = encodeGreeting([AUTH_NONE, AUTH_USERPASS]);
  assert.deepEqual(wire, hex('05 02 00 02'));
  checkPrefixes(parseGreeting, wire, { methods: [0, 2], length: 4 });
  assertSocksError(() => parseGreeting(hex('04 01 00')));
  assertSocksError(() => parseGreeting(hex('04'))); // fails on the first byte
  assertSocksError(() => parseGreeting(hex('05 00')));
  assertSocksError(() => encodeGreeting([]));
  assertSocksError(() => encodeGreeting([256]));
  assert.deepEqual(encodeMethodSelection(AUTH_NONE), hex('05 00'));
  assert.deepEqual(encodeMethodSelection(0xff), hex('05 ff'));
  checkPrefixes(parseMethodSelection, hex('05 02'), { method: 2, length: 2 });
});

test('username/password (RFC 1929)', () => {
  const wire = encodeUserPassAuth('alice', 'pä$$');
  assert.deepEqual(wire, Buffer.concat([hex('01 05'), Buffer.from('alice'), hex('05'), Buffer.from('pä$$')]));
  checkPrefixes(parseUserPassAuth, wire, { username: 'alice', password: 'pä$$', length: wire.length });
  checkPrefixes(parseUserPassAuth, hex('01 00 00'), { username: '', password: '', length: 3 });
  assertSocksError(() => parseUserPassAuth(hex('05 01 61 01 62')));
  assertSocksError(() => encodeUserPassAuth('x'.repeat(256), 'p'));
  assertSocksError(() => encodeUserPassAuth('u', 'x'.repeat(256)));
  assert.deepEqual(encodeUserPassReply(true), hex('01 00'));
  assert.deepEqual(encodeUserPassReply(false), hex('01 01'));
  assert.deepEqual(parseUserPassReply(hex('01 00')), { ok: true, length: 2 });
  assert.deepEqual(parseUserPassReply(hex('01 01')), { ok: false, length: 2 });
});

const ADDRS: Array<[SocksAddress, string]> = [
  [{ type: 'ipv4', host: '127.0.0.1', port: 80 }, '01 7f000001 0050'],
  [{ type: 'ipv6', host: '2001:db8::1', port: 443 }, '04 20010db8000000000000000000000001 01bb'],
  [{ type: 'domain', host: 'example.com', port: 8080 }, '03 0b 6578616d706c652e636f6d 1f90'],
];

test('request and reply: bytes, prefixes, round trips', () => {
  for (const [address, addrHex] of ADDRS) {
    const req = encodeRequest(CMD_CONNECT, address);
    assert.deepEqual(req, hex('05 01 00' + addrHex));
    checkPrefixes(parseRequest, req, { command: CMD_CONNECT, address, length: req.length });
    const rep = encodeReply(REP.SUCCEEDED, address);
    assert.deepEqual(rep, hex('05 00 00' + addrHex));
    checkPrefixes(parseReply, rep, { rep: 0, bound: address, length: rep.length });
  }
  assert.deepEqual(encodeReply(REP.COMMAND_NOT_SUPPORTED), hex('05 07 00 01 00000000 0000'));
  // Unknown command is returned, not thrown (the server answers COMMAND_NOT_SUPPORTED).
  assert.equal(parseRequest(hex('05 09 00 01 01020304 0001'))?.command, 9);
  assertSocksError(() => parseRequest(hex('04 01 00 01 01020304 0001')));
  assertSocksError(() => parseRequest(hex('05 01 01')));
  assertSocksError(() => parseRequest(hex('05 01 00 05')), 'ERR_ADDRESS');
  assertSocksError(() => parseReply(hex('05 00 07')));
});

test('UDP datagrams (RFC 1928 §7)', () => {
  for (const [address, addrHex] of ADDRS) {
    const h = encodeUdpHeader(address);
    assert.deepEqual(h, hex('0000 00' + addrHex));
    const dgram = Buffer.concat([h, Buffer.from('payload')]);
    const p = parseUdpDatagram(dgram);
    assert.deepEqual(p, { frag: 0, address, data: Buffer.from('payload') });
    for (let i = 0; i < h.length; i++) assertSocksError(() => parseUdpDatagram(h.subarray(0, i)));
  }
  assert.equal(parseUdpDatagram(encodeUdpHeader(ADDRS[0]![0], 3)).frag, 3);
  assert.equal(parseUdpDatagram(encodeUdpHeader(ADDRS[0]![0])).data.length, 0);
  assertSocksError(() => parseUdpDatagram(hex('0000 00 07 00')), 'ERR_ADDRESS');
});

test('random bytes never throw anything but ProtocolError', () => {
  const parsers: Array<(b: Uint8Array) => unknown> = [
    parseGreeting,
    parseUserPassAuth,
    parseRequest,
    parseReply,
    parseMethodSelection,
    parseUserPassReply,
    parseUdpDatagram,
  ];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, fixVersion) => {
      if (fixVersion && bytes.length > 0) bytes[0] = 5;
      for (const p of parsers) {
        try {
          const r = p(bytes) as { length?: number } | undefined;
          if (r && typeof r.length === 'number') assert.ok(r.length <= bytes.length);
        } catch (err) {
          if (!(err instanceof ProtocolError)) throw err;
        }
      }
    }),
    { numRuns: 2000 },
  );
});

test('request round trip for generated addresses and commands', () => {
  const addr = fc.oneof(
    fc.ipV4().map((host): SocksAddress => ({ type: 'ipv4', host, port: 0 })),
    fc.domain().map((host): SocksAddress => ({ type: 'domain', host, port: 0 })),
  );
  fc.assert(
    fc.property(
      addr,
      fc.integer({ min: 0, max: 65535 }),
      fc.constantFrom(CMD_CONNECT, CMD_UDP_ASSOCIATE),
      (a, port, cmd) => {
        const address = { ...a, port };
        const wire = encodeRequest(cmd, address);
        assert.deepEqual(parseRequest(wire), { command: cmd, address, length: wire.length });
      },
    ),
    { numRuns: 300 },
  );
});

const anyAddress: fc.Arbitrary<SocksAddress> = fc.oneof(
  fc.record(
    { type: fc.constant('ipv4' as const), host: fc.ipV4(), port: fc.integer({ min: 0, max: 65535 }) },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      type: fc.constant('ipv6' as const),
      host: fc.ipV6().map((h) => new URL(`http://[${h}]/`).hostname.slice(1, -1)), // RFC 5952 form, as decoded
      port: fc.integer({ min: 0, max: 65535 }),
    },
    { noNullPrototype: true },
  ),
  fc.record(
    { type: fc.constant('domain' as const), host: fc.domain(), port: fc.integer({ min: 0, max: 65535 }) },
    { noNullPrototype: true },
  ),
);
const shortText = fc.string({ unit: 'grapheme', maxLength: 60 }).filter((s) => Buffer.byteLength(s) <= 255);

test('generated messages: undefined for every strict prefix, exact value for the whole', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 255 }),
      shortText,
      shortText,
      fc.integer({ min: 0, max: 255 }),
      anyAddress,
      (methods, u, p, code, address) => {
        const g = encodeGreeting(methods);
        checkPrefixes(parseGreeting, g, { methods, length: g.length });
        const a = encodeUserPassAuth(u, p);
        checkPrefixes(parseUserPassAuth, a, { username: u, password: p, length: a.length });
        const r = encodeRequest(code, address);
        checkPrefixes(parseRequest, r, { command: code, address, length: r.length });
        const rep = encodeReply(code, address);
        checkPrefixes(parseReply, rep, { rep: code, bound: address, length: rep.length });
        const h = encodeUdpHeader(address, code);
        assert.deepEqual(parseUdpDatagram(Buffer.concat([h, a])), { frag: code, address, data: a });
      },
    ),
    { numRuns: 150 },
  );
});

test('a whole client conversation in one buffer is consumed message by message', () => {
  const address: SocksAddress = { type: 'domain', host: 'example.org', port: 443 };
  const wire = Buffer.concat([
    encodeGreeting([AUTH_USERPASS]),
    encodeUserPassAuth('u', 'p'),
    encodeRequest(CMD_CONNECT, address),
    Buffer.from('early data'),
  ]);
  let rest: Buffer = wire;
  const g = parseGreeting(rest)!;
  rest = rest.subarray(g.length);
  const a = parseUserPassAuth(rest)!;
  rest = rest.subarray(a.length);
  const r = parseRequest(rest)!;
  rest = rest.subarray(r.length);
  assert.deepEqual([g.methods, a.username, a.password, r.address], [[AUTH_USERPASS], 'u', 'p', address]);
  assert.equal(rest.toString(), 'early data');
});
