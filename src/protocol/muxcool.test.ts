import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from './errors.js';
import {
  encodeMuxData,
  encodeMuxFrame,
  encodeMuxMessage,
  looksLikeMuxCoolNew,
  MUX_OPTION_ERROR,
  MuxCoolDecoder,
  MuxNetwork,
  MuxStatus,
  type MuxFrame,
} from './muxcool.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Known answers written from the frame layout (v2ray common/mux/frame.go, transports.md §2).
const NEW_IPV4_WITH_DATA = hex('000c 0001 01 01 01 0000 01 7f000001 0002 6162');
const KEEP_DATA = hex('0004 0001 02 01 0003 78797a');
const END = hex('0004 0001 03 00');
const END_ERROR = hex('0004 0001 03 02');
const KEEPALIVE_DATA = hex('0004 0000 04 01 0001 ff');
const NEW_DOMAIN = hex('0014 0007 01 00 01 01bb 02 0b 76312e6d75782e636f6f6c'); // v1.mux.cool:443
const NEW_IPV6 = hex('0018 ffff 01 00 02 0035 03 20010db8000000000000000000000001');

test('encodes the known-answer frames', () => {
  assert.deepEqual(
    encodeMuxFrame(
      {
        sessionId: 1,
        status: MuxStatus.New,
        option: 0,
        target: { network: MuxNetwork.Tcp, host: '127.0.0.1', port: 0 },
      },
      Buffer.from('ab'),
    ),
    NEW_IPV4_WITH_DATA,
  );
  assert.deepEqual(
    encodeMuxFrame({ sessionId: 1, status: MuxStatus.Keep, option: 0 }, Buffer.from('xyz')),
    KEEP_DATA,
  );
  assert.deepEqual(encodeMuxFrame({ sessionId: 1, status: MuxStatus.End, option: 0 }), END);
  assert.deepEqual(
    encodeMuxFrame({ sessionId: 1, status: MuxStatus.End, option: MUX_OPTION_ERROR }),
    END_ERROR,
  );
  assert.deepEqual(
    encodeMuxFrame({
      sessionId: 7,
      status: MuxStatus.New,
      option: 0,
      target: { network: MuxNetwork.Tcp, host: 'v1.mux.cool', port: 443 },
    }),
    NEW_DOMAIN,
  );
  assert.deepEqual(
    encodeMuxFrame({
      sessionId: 0xffff,
      status: MuxStatus.New,
      option: 0,
      target: { network: MuxNetwork.Udp, host: '2001:db8::1', port: 53 },
    }),
    NEW_IPV6,
  );
});

test('decodes the known-answer frames', () => {
  const d = new MuxCoolDecoder();
  const frames = d.push(
    Buffer.concat([NEW_IPV4_WITH_DATA, KEEP_DATA, KEEPALIVE_DATA, END, END_ERROR, NEW_DOMAIN, NEW_IPV6]),
  );
  assert.deepEqual(frames, [
    {
      sessionId: 1,
      status: 1,
      option: 0,
      target: { network: 1, host: '127.0.0.1', port: 0 },
      data: Buffer.from('ab'),
    },
    { sessionId: 1, status: 2, option: 0, data: Buffer.from('xyz') },
    { sessionId: 0, status: 4, option: 0, data: Buffer.of(0xff) },
    { sessionId: 1, status: 3, option: 0 },
    { sessionId: 1, status: 3, option: MUX_OPTION_ERROR },
    { sessionId: 7, status: 1, option: 0, target: { network: 1, host: 'v1.mux.cool', port: 443 } },
    {
      sessionId: 0xffff,
      status: 1,
      option: 0,
      target: { network: 2, host: '2001:db8:0:0:0:0:0:1', port: 53 },
    },
  ]);
  assert.equal(d.pending, false);
});

test('empty data, End carrying data, and metadata extensions are accepted', () => {
  const d = new MuxCoolDecoder();
  // Keep with option data and length 0; End with data (v2ray discards it; we hand it over);
  // Keep whose metadata carries a trailing UDP address (v2ray's extension), ignored.
  const frames = d.push(
    hex('0004 0002 02 01 0000' + '0004 0002 03 01 0002 0102' + '000c 0002 02 00 02 0035 01 01020304'),
  );
  assert.deepEqual(frames, [
    { sessionId: 2, status: 2, option: 0, data: Buffer.alloc(0) },
    { sessionId: 2, status: 3, option: 0, data: Buffer.of(1, 2) },
    { sessionId: 2, status: 2, option: 0 },
  ]);
});

test('malformed frames throw ProtocolError', () => {
  for (const bad of [
    '0003 000100', // metadata shorter than 4
    '0201' + '00'.repeat(513), // metaLen 513
    '0004 0001 05 00', // unknown status
    '0008 0001 01 00 01 0000 01', // New with truncated target
    '000c 0001 01 00 03 0000 01 7f000001', // unknown network
    '000c 0001 01 00 01 0000 04 7f000001', // unknown address type
    '0006 0001 01 00 01 0000 02 00', // empty domain
  ]) {
    assert.throws(() => new MuxCoolDecoder().push(hex(bad)), ProtocolError, bad);
  }
});

test('encodeMuxData splits into New then Keep frames of at most maxChunk', () => {
  const data = Buffer.alloc(10, 7);
  const frames = encodeMuxData(
    {
      sessionId: 3,
      status: MuxStatus.New,
      option: 0,
      target: { network: MuxNetwork.Tcp, host: '1.2.3.4', port: 80 },
    },
    data,
    4,
  );
  const got = new MuxCoolDecoder().push(Buffer.concat(frames));
  assert.deepEqual(
    got.map((f) => [f.status, f.data?.length]),
    [
      [1, 4],
      [2, 4],
      [2, 2],
    ],
  );
  assert.deepEqual(
    encodeMuxData({ sessionId: 3, status: MuxStatus.Keep, option: 0 }, Buffer.alloc(0)).length,
    1,
  );
  assert.throws(() =>
    encodeMuxFrame({ sessionId: 1, status: MuxStatus.Keep, option: 0 }, Buffer.alloc(0x10000)),
  );
  assert.throws(() => encodeMuxFrame({ sessionId: 0x10000, status: MuxStatus.End, option: 0 }));
});

test('encodeMuxMessage is encodeMuxData concatenated, from any split of the data, with a trailer', () => {
  const end = encodeMuxFrame({ sessionId: 9, status: MuxStatus.End, option: 0 });
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }),
      fc.integer({ min: 1, max: 200 }),
      fc.boolean(),
      fc.boolean(),
      (pieces, maxChunk, isNew, trailer) => {
        const meta = isNew
          ? {
              sessionId: 9,
              status: MuxStatus.New,
              option: 0,
              target: { network: MuxNetwork.Tcp, host: 'example.com', port: 443 },
            }
          : { sessionId: 9, status: MuxStatus.Keep, option: 0 };
        const want = Buffer.concat([
          ...encodeMuxData(meta, Buffer.concat(pieces), maxChunk),
          ...(trailer ? [end] : []),
        ]);
        assert.deepEqual(encodeMuxMessage(meta, pieces, maxChunk, trailer ? end : undefined), want);
      },
    ),
  );
  assert.throws(() => encodeMuxMessage({ sessionId: 1, status: MuxStatus.Keep, option: 0 }, [], 0x10000));
});

const targetArb = fc.oneof(
  fc.ipV4(),
  fc.ipV6().filter((h) => !h.includes('.')),
  fc.domain(),
);
const frameArb: fc.Arbitrary<MuxFrame> = fc
  .record({
    sessionId: fc.integer({ min: 0, max: 0xffff }),
    status: fc.constantFrom(MuxStatus.New, MuxStatus.Keep, MuxStatus.End, MuxStatus.KeepAlive),
    error: fc.boolean(),
    host: targetArb,
    port: fc.integer({ min: 0, max: 0xffff }),
    data: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: undefined }),
  })
  .map((r) => ({
    sessionId: r.sessionId,
    status: r.status,
    option: r.error ? MUX_OPTION_ERROR : 0,
    ...(r.status === MuxStatus.New
      ? { target: { network: MuxNetwork.Tcp, host: r.host, port: r.port } }
      : {}),
    ...(r.data ? { data: Buffer.from(r.data) } : {}),
  }));

function normal(f: MuxFrame): unknown {
  const t = f.target;
  return { ...f, ...(t ? { target: { ...t, host: t.host.toLowerCase() } } : {}) };
}

test('property: any split of an encoded frame sequence decodes to the same frames', () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 12 }),
      fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 60 }),
      (frames, cuts) => {
        const wire = Buffer.concat(frames.map((f) => encodeMuxFrame(f, f.data)));
        const d = new MuxCoolDecoder();
        const got: MuxFrame[] = [];
        let off = 0;
        for (const c of cuts) {
          if (off >= wire.length) break;
          got.push(...d.push(wire.subarray(off, off + c)));
          off += c;
        }
        got.push(...d.push(wire.subarray(off)));
        assert.equal(d.pending, false);
        const canon = (f: MuxFrame): unknown => {
          const e = new MuxCoolDecoder().push(encodeMuxFrame(f, f.data))[0]!;
          return normal(e);
        };
        assert.deepEqual(got.map(normal), frames.map(canon));
      },
    ),
    { numRuns: 300 },
  );
});

test('looksLikeMuxCoolNew: yes for New frames at every prefix length, no for others', () => {
  for (const f of [NEW_IPV4_WITH_DATA, NEW_DOMAIN, NEW_IPV6]) {
    const headerEnd = 2 + f.readUInt16BE(0);
    for (let n = 0; n < headerEnd; n++)
      assert.equal(looksLikeMuxCoolNew(f.subarray(0, n)), 'more', `prefix ${n}`);
    assert.equal(looksLikeMuxCoolNew(f.subarray(0, headerEnd)), 'yes');
    assert.equal(looksLikeMuxCoolNew(f), 'yes');
  }
  for (const f of [KEEP_DATA, END, KEEPALIVE_DATA, hex('0c00 0001 01 00'), hex('000c 0001 01 02')]) {
    assert.equal(looksLikeMuxCoolNew(f), 'no');
  }
  // metaLen too short to hold the target it announces.
  assert.equal(looksLikeMuxCoolNew(hex('000a 0001 01 00 01 0000 01 7f00')), 'no');
});

test('property: random salts are almost never taken for Mux.Cool', () => {
  let yes = 0;
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), (salt) => {
      const r = looksLikeMuxCoolNew(salt);
      assert.notEqual(r, 'more');
      if (r === 'yes') yes++;
    }),
    { numRuns: 2000 },
  );
  assert.equal(yes, 0);
});
