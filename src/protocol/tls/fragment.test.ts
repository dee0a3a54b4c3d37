import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { isProtocolError } from '../errors.js';
import {
  parseClientHelloMessage,
  parseClientHelloRecord,
  readRecordHeader,
  RECORD_HEADER,
} from './clienthello.js';
import { fragmentClientHello, planSegments } from './fragment.js';

/** A minimal but well-formed ClientHello record with the given SNI and padding extension. */
function buildClientHello(name: string | undefined, padding = 0): Buffer {
  const ext: Buffer[] = [];
  // supported_versions (43), before SNI so the SNI is not at a fixed offset.
  ext.push(Buffer.from([0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]));
  if (name !== undefined) {
    const n = Buffer.from(name, 'latin1');
    const entry = Buffer.concat([Buffer.from([0x00, n.length >> 8, n.length & 0xff]), n]);
    const list = Buffer.concat([Buffer.from([entry.length >> 8, entry.length & 0xff]), entry]);
    ext.push(Buffer.concat([Buffer.from([0x00, 0x00, list.length >> 8, list.length & 0xff]), list]));
  }
  if (padding > 0)
    ext.push(Buffer.concat([Buffer.from([0x00, 0x15, padding >> 8, padding & 0xff]), Buffer.alloc(padding)]));
  const exts = Buffer.concat(ext);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    randomBytes(32),
    Buffer.from([0x20]),
    randomBytes(32),
    Buffer.from([0x00, 0x04, 0x13, 0x01, 0x13, 0x02]),
    Buffer.from([0x01, 0x00]),
    Buffer.from([exts.length >> 8, exts.length & 0xff]),
    exts,
  ]);
  const hs = Buffer.concat([
    Buffer.from([0x01, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]),
    body,
  ]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, hs.length >> 8, hs.length & 0xff]), hs]);
}

/** Capture the ClientHello Node's TLS client writes, without any network. */
function captureNodeClientHello(servername: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const holder: { sock?: tls.TLSSocket } = {};
    const duplex = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        const all = Buffer.concat(chunks);
        const h = readRecordHeader(all);
        if (h && all.length >= RECORD_HEADER + h.length) {
          resolve(all.subarray(0, RECORD_HEADER + h.length));
          setImmediate(() => holder.sock?.destroy());
        }
        cb();
      },
    });
    holder.sock = tls.connect({ socket: duplex, servername, rejectUnauthorized: false });
    holder.sock.on('error', () => {});
  });
}

function records(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let o = 0;
  while (o < buf.length) {
    const h = readRecordHeader(buf.subarray(o))!;
    out.push(buf.subarray(o, o + RECORD_HEADER + h.length));
    o += RECORD_HEADER + h.length;
  }
  return out;
}

test('parseClientHelloRecord finds the SNI in built and in Node-made hellos', async () => {
  const rec = buildClientHello('blocked.example.com');
  const info = parseClientHelloRecord(rec);
  assert.equal(info.serverName?.name, 'blocked.example.com');
  assert.equal(
    info.handshake.toString('latin1', info.serverName!.nameOffset, info.serverName!.nameOffset + 19),
    'blocked.example.com',
  );
  assert.deepEqual(info.extensions, [0x2b, 0x00]);
  const node = await captureNodeClientHello('www.blocked.example');
  const ni = parseClientHelloRecord(node);
  assert.equal(ni.serverName?.name, 'www.blocked.example');
  assert.equal(parseClientHelloRecord(buildClientHello(undefined)).serverName, undefined);
});

test('malformed hellos are ProtocolError ERR_TLS, never a crash', () => {
  const rec = buildClientHello('a.example');
  for (let cut = 0; cut < rec.length; cut += 7) {
    assert.throws(
      () => parseClientHelloRecord(rec.subarray(0, cut)),
      (e) => isProtocolError(e) && e.code === 'ERR_TLS',
    );
  }
  const wrongType = Buffer.from(rec);
  wrongType[0] = 0x17;
  assert.throws(() => parseClientHelloRecord(wrongType), /not handshake/);
  const badExt = Buffer.from(rec);
  badExt[badExt.length - 1 - 'a.example'.length - 3] = 0xff; // corrupt a length inside SNI
  assert.throws(
    () => parseClientHelloRecord(badExt),
    (e) => isProtocolError(e),
  );
  for (let i = 0; i < 300; i++) {
    const junk = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40, 0x01]), randomBytes(63)]);
    try {
      parseClientHelloRecord(junk);
    } catch (e) {
      assert.ok(isProtocolError(e));
    }
  }
});

for (const strategy of ['name-middle', 'before-extension', 'both'] as const) {
  test(`fragmentClientHello (${strategy}): the name is never whole in the first (or, when split inside, any) record`, async () => {
    for (const rec of [
      buildClientHello('blocked.example.com', 300),
      await captureNodeClientHello('www.google.com'),
    ]) {
      const name = parseClientHelloRecord(rec).serverName!.name;
      const { records: recs, cuts, serverName } = fragmentClientHello(rec, { strategy });
      assert.equal(serverName, name);
      assert.ok(recs.length >= 2);
      assert.equal(recs.length, cuts.length + 1);
      for (const r of recs) {
        assert.equal(r[0], 0x16);
        assert.equal(r.readUInt16BE(1), 0x0301);
        assert.equal(r.readUInt16BE(3), r.length - 5);
        if (strategy !== 'before-extension')
          assert.ok(!r.includes(Buffer.from(name)), `a record holds ${name}`);
      }
      assert.ok(!recs[0]!.includes(Buffer.from(name)));
      if (strategy !== 'name-middle') assert.ok(!recs[0]!.includes(Buffer.from(name.slice(0, 3))));
      const hs = Buffer.concat(recs.map((r) => r.subarray(5)));
      assert.deepEqual(hs, rec.subarray(5));
      assert.equal(parseClientHelloMessage(hs).serverName?.name, name);
    }
  });
}

test('fragmentClientHello: extra random cuts, no SNI, and record re-parse', () => {
  const rec = buildClientHello('x.example', 50);
  let seed = 7;
  const randInt = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const { records: recs } = fragmentClientHello(rec, { extraCuts: 5, randInt });
  assert.equal(recs.length, 7);
  assert.deepEqual(Buffer.concat(recs.map((r) => r.subarray(5))), rec.subarray(5));
  assert.deepEqual(records(Buffer.concat(recs)).length, 7);
  const noSni = fragmentClientHello(buildClientHello(undefined));
  assert.equal(noSni.records.length, 2);
});

test('planSegments', () => {
  assert.deepEqual(planSegments([10, 20, 30], 'single'), [60]);
  assert.deepEqual(planSegments([10, 20, 30], 'per-record'), [10, 20, 30]);
  const m = planSegments([10, 20, 30], 'misaligned');
  assert.deepEqual(m, [5, 15, 25, 15]);
  assert.equal(
    m.reduce((a, b) => a + b, 0),
    60,
  );
});

test('property: any host name, any padding, any strategy: exact reassembly and the name never whole in record 1', () => {
  const label = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
  fc.assert(
    fc.property(
      fc.array(label, { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 0, max: 600 }),
      fc.constantFrom('name-middle' as const, 'before-extension' as const, 'both' as const),
      fc.integer({ min: 0, max: 6 }),
      (labels, padding, strategy, extraCuts) => {
        const name = labels.join('.');
        const rec = buildClientHello(name, padding);
        const { records: recs } = fragmentClientHello(rec, { strategy, extraCuts });
        assert.deepEqual(Buffer.concat(recs.map((r) => r.subarray(5))), rec.subarray(5));
        if (name.length >= 4) assert.ok(!recs[0]!.includes(Buffer.from(name)));
        if (name.length >= 4 && strategy !== 'before-extension')
          for (const r of recs) assert.ok(!r.includes(Buffer.from(name)));
      },
    ),
    { numRuns: 300 },
  );
});

test('property: the parser never throws anything but ProtocolError on arbitrary bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const rec = Buffer.concat([
        Buffer.from([0x16, 0x03, 0x01, bytes.length >> 8, bytes.length & 0xff]),
        bytes,
      ]);
      try {
        parseClientHelloRecord(rec);
      } catch (e) {
        assert.ok(isProtocolError(e), String(e));
      }
      try {
        fragmentClientHello(rec);
      } catch (e) {
        assert.ok(isProtocolError(e), String(e));
      }
    }),
    { numRuns: 2000 },
  );
});
