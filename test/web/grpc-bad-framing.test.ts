// Bad gRPC framing on a call to the secret service, in raw HTTP/2 frames (h2c with prior
// knowledge, as nginx's grpc_pass and a prober with the service name send it): a compressed or
// unknown flag, a message over grpc-go's 4 MiB limit, protobuf fields that do not fit, a body that
// ends inside a message. Each gets the reaction a valid gRPC message of garbage gets (research
// D6: one reaction for every failure): the response HEADERS at once, no DATA while the call is
// open, and when the caller ends its side, trailers (HEADERS with END_STREAM) and no RST_STREAM.
// Before: RST_STREAM CANCEL at once and no trailers — a reaction of its own, and not grpc-go's
// (grpc-go ends a call whose message it cannot read with a status in trailers; Xray's Tun
// handler returns nil once its conn closes: grpc-status 0).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { encodeHunk } from '../../src/transport/grpc-stream.js';
import { startWsTestServer, type WsTestServer } from '../helpers/web-server.js';

const KEY = { id: 'k', method: 'aes-256-gcm', secret: `framing-${randomBytes(6).toString('hex')}` };
let srv: WsTestServer;

before(async () => {
  srv = await startWsTestServer({ keys: [KEY], idleMs: 5000, front: { grpc: true } });
});
after(async () => {
  await srv?.close();
});

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const GOAWAY = 0x7;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK: every header a literal without indexing, new name, no Huffman (RFC 7541 §6.2.2). */
function hpack(headers: Array<[string, string]>): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s, 'latin1');
    assert.ok(b.length < 127);
    return Buffer.concat([Buffer.of(b.length), b]);
  };
  return Buffer.concat(headers.flatMap(([n, v]) => [Buffer.of(0), str(n), str(v)]));
}

/**
 * One call: HEADERS, then `body` as DATA frames (one each), a pause, then END_STREAM (unless
 * `endWith` is false). The stream-1 frames the server sends, in order, until it closes the
 * stream or 3 s pass after the end: 'headers', 'data', 'trailers', 'rst:CODE', 'goaway'.
 */
async function call(body: Buffer[]): Promise<{ beforeEnd: string[]; afterEnd: string[] }> {
  const sock = net.connect(srv.webPort, '127.0.0.1');
  sock.on('error', () => {});
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  const events: string[] = [];
  let buf = Buffer.alloc(0);
  let done!: () => void;
  const closed = new Promise<void>((r) => (done = r));
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const [type, flags] = [buf[3]!, buf[4]!];
      const stream = buf.readUInt32BE(5) & 0x7fffffff;
      const payload = buf.subarray(9, 9 + len);
      buf = buf.subarray(9 + len);
      if (type === SETTINGS && (flags & 1) === 0) sock.write(frame(SETTINGS, 1, 0));
      if (type === GOAWAY) events.push('goaway');
      if (stream !== 1) continue;
      if (type === HEADERS) events.push(flags & END_STREAM ? 'trailers' : 'headers');
      else if (type === DATA && len > 0) events.push('data');
      if (type === RST_STREAM) events.push(`rst:${payload.readUInt32BE(0)}`);
      if ((type === HEADERS || type === DATA) && flags & END_STREAM) done();
      if (type === RST_STREAM) done();
    }
  });
  sock.once('close', () => done());
  try {
    sock.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0)]));
    const block = hpack([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', `${srv.secretPath}/Tun`],
      [':authority', `127.0.0.1:${srv.webPort}`],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
      ['user-agent', 'grpc-go/1.64.0'],
    ]);
    sock.write(frame(HEADERS, END_HEADERS, 1, block));
    for (const b of body) sock.write(frame(DATA, 0, 1, b));
    await sleep(500);
    const beforeEnd = events.splice(0);
    sock.write(frame(DATA, END_STREAM, 1));
    await Promise.race([closed, sleep(3000)]);
    return { beforeEnd, afterEnd: events.splice(0) };
  } finally {
    sock.destroy();
  }
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

test(
  'bad gRPC framing gets the reaction garbage in valid framing gets: no reset, trailers at the end',
  { timeout: 60_000 },
  async () => {
    const control = await call([encodeHunk(randomBytes(50))]);
    // The control: a valid message of garbage (the reaction test/web/grpc-probe.test.ts pins).
    assert.deepEqual(control, { beforeEnd: ['headers'], afterEnd: ['trailers'] });
    const cases: Array<[string, Buffer[]]> = [
      ['compressed flag', [Buffer.concat([Buffer.of(1), u32(5), randomBytes(5)])]],
      ['unknown flag', [Buffer.concat([Buffer.of(0x80), u32(5), randomBytes(5)])]],
      ['a message over 4 MiB', [Buffer.concat([Buffer.of(0), u32(0x7fffffff), randomBytes(100)])]],
      ['protobuf wire type 7', [Buffer.concat([Buffer.of(0), u32(3), Buffer.of(0x0f, 0, 0)])]],
      [
        'a field longer than its message',
        [Buffer.concat([Buffer.of(0), u32(3), Buffer.of(0x0a, 0x10, 0x61)])],
      ],
      [
        'a varint of 6 bytes',
        [Buffer.concat([Buffer.of(0), u32(8), Buffer.of(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0)])],
      ],
      [
        'a valid message, then a bad one',
        [encodeHunk(randomBytes(20)), Buffer.concat([Buffer.of(2), u32(1), Buffer.of(0)])],
      ],
      [
        'the body ends inside a message',
        [Buffer.concat([Buffer.of(0), u32(64), Buffer.of(0x0a, 62), randomBytes(10)])],
      ],
      ['the body ends inside a prefix', [Buffer.of(0, 0, 0)]],
    ];
    for (const [name, body] of cases) assert.deepEqual(await call(body), control, name);
  },
);
