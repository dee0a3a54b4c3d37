import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtocolError } from './errors.js';
import {
  encodeUotAddress,
  encodeUotDatagram,
  encodeUotRequest,
  UOT_MAGIC_V1,
  UOT_MAGIC_V2,
  UotReader,
  uotVersion,
  type UotDatagram,
} from './uot.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Known answers written by hand from sing common/uot (protocol.go: u8 isConnect + SOCKS address
// with ATYP 1/3/4; conn.go/server.go: per-datagram address with families 0 IPv4, 1 IPv6,
// 2 domain, then u16 length and payload).
/** v2 request, connect mode, to 127.0.0.1:53. */
const REQ_CONNECT = hex('01 01 7f000001 0035');
/** v2 request, not connect, to example.com:443 (a SOCKS domain). */
const REQ_LISTEN = hex('00 03 0b 6578616d706c652e636f6d 01bb');
/** A connect-mode datagram "hi". */
const DGRAM_BARE = hex('0002 6869');
/** A datagram "abc" to 10.0.0.1:9 (family 0). */
const DGRAM_V4 = hex('00 0a000001 0009 0003 616263');
/** A datagram "x" to [2001:db8::1]:5353 (family 1). */
const DGRAM_V6 = hex('01 20010db8000000000000000000000001 14e9 0001 78');
/** An empty datagram to a.b:7 (family 2). */
const DGRAM_NAME = hex('02 03 612e62 0007 0000');

const plain = (d: UotDatagram[]): { address: string | undefined; payload: string }[] =>
  d.map((x) => ({
    address: x.address ? `${x.address.type}|${x.address.host}|${x.address.port}` : undefined,
    payload: x.payload.toString('hex'),
  }));

test('the magic names choose the version; anything else is an ordinary target', () => {
  assert.equal(uotVersion({ type: 'domain', host: UOT_MAGIC_V2, port: 0 }), 2);
  assert.equal(uotVersion({ type: 'domain', host: 'SP.V2.UDP-over-TCP.arpa', port: 443 }), 2);
  assert.equal(uotVersion({ type: 'domain', host: UOT_MAGIC_V1, port: 0 }), 1);
  assert.equal(uotVersion({ type: 'domain', host: 'sp.v3.udp-over-tcp.arpa', port: 0 }), undefined);
  assert.equal(uotVersion({ type: 'domain', host: 'udp-over-tcp.arpa', port: 0 }), undefined);
  assert.equal(uotVersion({ type: 'ipv4', host: '127.0.0.1', port: 0 }), undefined);
});

test('encodes the known-answer request and datagrams', () => {
  assert.deepEqual(
    encodeUotRequest({ connect: true, destination: { type: 'ipv4', host: '127.0.0.1', port: 53 } }),
    REQ_CONNECT,
  );
  assert.deepEqual(
    encodeUotRequest({ connect: false, destination: { type: 'domain', host: 'example.com', port: 443 } }),
    REQ_LISTEN,
  );
  assert.deepEqual(encodeUotDatagram(undefined, Buffer.from('hi')), DGRAM_BARE);
  assert.deepEqual(
    encodeUotDatagram({ type: 'ipv4', host: '10.0.0.1', port: 9 }, Buffer.from('abc')),
    DGRAM_V4,
  );
  assert.deepEqual(
    encodeUotDatagram({ type: 'ipv6', host: '2001:db8::1', port: 5353 }, Buffer.from('x')),
    DGRAM_V6,
  );
  assert.deepEqual(encodeUotDatagram({ type: 'domain', host: 'a.b', port: 7 }, Buffer.alloc(0)), DGRAM_NAME);
  assert.deepEqual(encodeUotAddress({ type: 'ipv4', host: '1.2.3.4', port: 258 }), hex('00 01020304 0102'));
  assert.throws(() => encodeUotDatagram(undefined, Buffer.alloc(65_536)), ProtocolError);
});

test('v2 connect mode: the request, then bare datagrams, however the stream is sliced', () => {
  const wire = Buffer.concat([REQ_CONNECT, DGRAM_BARE, hex('0000'), DGRAM_BARE]);
  for (let cut = 0; cut <= wire.length; cut++) {
    for (const step of [1, 3, wire.length]) {
      const r = new UotReader(2);
      const got: UotDatagram[] = [];
      got.push(...r.push(wire.subarray(0, cut)));
      for (let i = cut; i < wire.length; i += step) got.push(...r.push(wire.subarray(i, i + step)));
      assert.deepEqual(r.request, {
        connect: true,
        destination: { type: 'ipv4', host: '127.0.0.1', port: 53 },
      });
      assert.deepEqual(plain(got), [
        { address: undefined, payload: '6869' },
        { address: undefined, payload: '' },
        { address: undefined, payload: '6869' },
      ]);
      assert.equal(r.buffered, 0);
    }
  }
});

test('v2 without connect and v1: every datagram carries its address', () => {
  const expected = [
    { address: 'ipv4|10.0.0.1|9', payload: '616263' },
    { address: 'ipv6|2001:db8::1|5353', payload: '78' },
    { address: 'domain|a.b|7', payload: '' },
  ];
  const r2 = new UotReader(2);
  const got2 = [
    ...r2.push(Buffer.concat([REQ_LISTEN, DGRAM_V4])),
    ...r2.push(Buffer.concat([DGRAM_V6, DGRAM_NAME])),
  ];
  assert.deepEqual(r2.request, {
    connect: false,
    destination: { type: 'domain', host: 'example.com', port: 443 },
  });
  assert.deepEqual(plain(got2), expected);

  const wire = Buffer.concat([DGRAM_V4, DGRAM_V6, DGRAM_NAME]);
  const r1 = new UotReader(1);
  const got1: UotDatagram[] = [];
  for (const b of wire) got1.push(...r1.push(Buffer.of(b)));
  assert.equal(r1.request, undefined);
  assert.deepEqual(plain(got1), expected);
});

test('an incomplete frame is held, not returned', () => {
  const r = new UotReader(1);
  assert.deepEqual(r.push(DGRAM_V4.subarray(0, DGRAM_V4.length - 1)), []);
  assert.equal(r.buffered, DGRAM_V4.length - 1);
  assert.deepEqual(plain(r.push(DGRAM_V4.subarray(DGRAM_V4.length - 1))), [
    { address: 'ipv4|10.0.0.1|9', payload: '616263' },
  ]);
});

test('garbage throws ERR_ADDRESS: unknown request ATYP, unknown family, empty name', () => {
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (err) {
      return err instanceof ProtocolError ? err.code : 'other';
    }
    return undefined;
  };
  assert.equal(
    code(() => new UotReader(2).push(hex('01 05 00000000 0000'))),
    'ERR_ADDRESS',
  );
  // The v2 request uses SOCKS numbering: UoT's family 0 is not an ATYP.
  assert.equal(
    code(() => new UotReader(2).push(hex('00 00 7f000001 0035'))),
    'ERR_ADDRESS',
  );
  assert.equal(
    code(() => new UotReader(1).push(hex('03 7f000001 0035 0000'))),
    'ERR_ADDRESS',
  );
  assert.equal(
    code(() => new UotReader(1).push(hex('02 00 0035 0000'))),
    'ERR_ADDRESS',
  );
  assert.equal(
    code(() => new UotReader(2).push(Buffer.concat([REQ_LISTEN, hex('07')]))),
    'ERR_ADDRESS',
  );
  // Negative control: the same bytes, well formed, do not throw.
  assert.equal(
    code(() => new UotReader(1).push(DGRAM_V4)),
    undefined,
  );
});
