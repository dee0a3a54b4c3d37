// Known answers for the gRPC ("gun") transport's bytes, written out by hand from the wire format
// Xray-core (transport/internet/grpc/encoding: Hunk and MultiHunk, field 1 = bytes), v2ray v5 and
// sing-box (v2raygrpclite) use: a gRPC length-prefixed message whose protobuf is field 1 (tag
// 0x0A), and the request headers grpc-go sends for Xray's Tun call. No Debian package speaks the
// transport for Shadowsocks (Debian's v2ray is 4.34; gRPC came in 4.36), so these fixed bytes
// are the interop check.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { grpcPaths, grpcServiceName } from '../../src/server/web/grpc.js';
import { grpcNextHop, grpcRequestHeaders } from '../../src/transport/grpc-dialer.js';
import { decodeHunk, encodeHunk, HunkDecoder, MAX_HUNK } from '../../src/transport/grpc-stream.js';

const hex = (b: Buffer): string => b.toString('hex');

test('a Hunk carrying "hello": flag 0, length 7, tag 0x0A, length 5, the bytes', () => {
  assert.equal(hex(encodeHunk(Buffer.from('hello'))), '00' + '00000007' + '0a' + '05' + '68656c6c6f');
});

test('a 300-byte Hunk: two-byte varint length (0xAC 0x02), message length 303', () => {
  const f = encodeHunk(Buffer.alloc(300, 0x61));
  assert.equal(hex(f.subarray(0, 8)), '00' + '0000012f' + '0a' + 'ac02');
  assert.equal(f.length, 5 + 303);
});

test('a MultiHunk with two entries decodes to both, in order; other fields are skipped', () => {
  // MultiHunk { data: "ab", data: "cde" } with an unknown varint field 2 (0x10 0x01) between.
  const msg = Buffer.from('0a02616210010a03636465', 'hex');
  const got: string[] = [];
  decodeHunk(msg, (d) => got.push(d.toString()));
  assert.deepEqual(got, ['ab', 'cde']);
});

test('the decoder reassembles messages split anywhere and refuses compressed or oversized ones', () => {
  const frames = Buffer.concat([
    encodeHunk(Buffer.from('first')),
    encodeHunk(Buffer.alloc(70_000, 7)),
    encodeHunk(Buffer.from('x')),
  ]);
  for (const step of [1, 3, 5, 16_384]) {
    const d = new HunkDecoder();
    const got: Buffer[] = [];
    for (let i = 0; i < frames.length; i += step)
      d.push(frames.subarray(i, i + step), (b) => got.push(Buffer.from(b)));
    assert.equal(d.pending, 0);
    const want = Buffer.concat([Buffer.from('first'), Buffer.alloc(70_000, 7), Buffer.from('x')]);
    assert.ok(Buffer.concat(got).equals(want), `step ${step}`);
  }
  assert.throws(() => new HunkDecoder().push(Buffer.from('0100000000', 'hex'), () => {}), /compressed/);
  assert.throws(() => new HunkDecoder().push(Buffer.from('0000500000', 'hex'), () => {}), /over the limit/);
  assert.throws(() => decodeHunk(Buffer.from('0a05616263', 'hex'), () => {}), /longer than its message/);
  assert.throws(
    () => new HunkDecoder().push(Buffer.from('00000000050a05616263', 'hex'), () => {}),
    /longer than its message/,
  );
  assert.throws(
    () => new HunkDecoder().push(Buffer.from('00000000020a80', 'hex'), () => {}),
    /truncated varint/,
  );
  // A MultiHunk split inside its field headers, with skipped fields of every wire type.
  const multi = Buffer.from('0a026162' + '1001' + '1d01020304' + '190102030405060708' + '0a03636465', 'hex');
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, multi.length]), multi]);
  for (let cut = 1; cut < framed.length; cut++) {
    const d = new HunkDecoder();
    const got: Buffer[] = [];
    d.push(framed.subarray(0, cut), (b) => got.push(Buffer.from(b)));
    d.push(framed.subarray(cut), (b) => got.push(Buffer.from(b)));
    assert.equal(Buffer.concat(got).toString(), 'abcde', `cut ${cut}`);
    assert.equal(d.pending, 0);
  }
});

test('a large announced message is handed out as it arrives, not held until complete', () => {
  // A peer announcing a 4 MiB Hunk and sending 1 MiB of it: before, the decoder kept that MiB
  // (per call: 128 calls a connection, outside the stream's back-pressure) and handed out nothing.
  const len = 4 * 1024 * 1024 - 16;
  const head = Buffer.alloc(5 + 1 + 4);
  head.writeUInt32BE(1 + 4 + len, 1);
  head[5] = 0x0a;
  head.set([0x80 | (len & 0x7f), 0x80 | ((len >>> 7) & 0x7f), 0x80 | ((len >>> 14) & 0x7f), len >>> 21], 6);
  const d = new HunkDecoder();
  let out = 0;
  d.push(head, (b) => (out += b.length));
  for (let i = 0; i < 64; i++) d.push(Buffer.alloc(16_384, i), (b) => (out += b.length));
  assert.equal(out, 1024 * 1024);
  assert.equal(d.pending, len - out);
});

test('a MultiHunk of one-byte fields is handed out in a few buffers, not one per byte', () => {
  // 21,845 fields of one byte in a 64 KiB chunk: before, as many Buffer objects queued.
  const fields = 21_845;
  const msg = Buffer.alloc(fields * 3);
  for (let i = 0; i < fields; i++) msg.set([0x0a, 1, i & 0xff], i * 3);
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), msg]);
  framed.writeUInt32BE(msg.length, 1);
  const got: Buffer[] = [];
  new HunkDecoder().push(framed, (b) => got.push(Buffer.from(b)));
  assert.ok(got.length <= 2, `${got.length} buffers`);
  const all = Buffer.concat(got);
  assert.equal(all.length, fields);
  assert.ok(all.every((b, i) => b === (i & 0xff)));
});

test('service name and paths: the secret path without "/", Tun and TunMulti, Xray\'s escaped form', () => {
  assert.equal(grpcServiceName('/AbC_d-9'), 'AbC_d-9');
  assert.deepEqual([...grpcPaths('AbC')], ['/AbC/Tun', '/AbC/TunMulti']);
  assert.deepEqual([...grpcPaths('a/b')], ['/a/b/Tun', '/a/b/TunMulti', '/a%2Fb/Tun', '/a%2Fb/TunMulti']);
});

test("the request headers, in grpc-go's order as Xray sends them, and large writes split into Hunks", async () => {
  const opts = { address: '127.0.0.1', port: 0, tls: false, serviceName: 'svc', host: 'front.test' };
  assert.deepEqual(Object.entries(grpcRequestHeaders(opts)), [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', '/svc/Tun'],
    [':authority', 'front.test'],
    ['content-type', 'application/grpc'],
    ['user-agent', 'grpc-go/1.65.0'],
    ['te', 'trailers'],
  ]);
  // On the wire (h2c to a bare HTTP/2 server): the same names, values and order.
  const server = http2.createServer();
  const seen: { raw: string[]; body: Buffer }[] = [];
  server.on('stream', (stream: http2.ServerHttp2Stream, _h: unknown, _f: unknown, raw: string[]) => {
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    stream.on('end', () => {
      seen.push({ raw, body: Buffer.concat(parts) });
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const hop = grpcNextHop({ ...opts, port: (server.address() as AddressInfo).port });
  try {
    const s = await hop();
    const big = Buffer.alloc(MAX_HUNK * 2 + 10, 1);
    s.end(big);
    s.resume();
    await once(s, 'end');
    assert.deepEqual(seen[0]!.raw, [
      ':method',
      'POST',
      ':scheme',
      'http',
      ':path',
      '/svc/Tun',
      ':authority',
      'front.test',
      'content-type',
      'application/grpc',
      'user-agent',
      'grpc-go/1.65.0',
      'te',
      'trailers',
    ]);
    const got: number[] = [];
    new HunkDecoder().push(seen[0]!.body, (d) => got.push(d.length));
    assert.deepEqual(got, [MAX_HUNK, MAX_HUNK, 10]);
  } finally {
    hop.close();
    server.close();
  }
});

test('an authority no URL can hold fails the dial (a rejection, not an exception in a socket event)', async () => {
  const server = http2.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const hop = grpcNextHop({
    address: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    tls: false,
    serviceName: 's',
    host: '[zz]',
  });
  try {
    await assert.rejects(hop(), /gRPC connect failed: ERR_INVALID_URL/);
  } finally {
    hop.close();
    server.close();
  }
});
