import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { isProtocolError } from '../errors.js';
import { IpSet, ipToBigInt, parseCidr } from './ip-set.js';
import { decodeDns, frameTcp, inspectResponse, servfailFor, TcpFrameDecoder, withId } from './message.js';

function query(name: string, type: 'A' | 'AAAA' | 'TXT', id = 0x1234): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
}

function reply(q: Buffer, answers: dnsPacket.Answer[], flags = 0x0180): Buffer {
  const d = decodeDns(q);
  return dnsPacket.encode({ type: 'response', id: d.id!, flags, questions: d.questions!, answers });
}

test('TCP framing round-trips across arbitrary splits', () => {
  const msgs = [query('a.example', 'A', 1), query('b.example', 'AAAA', 2), query('c.example', 'TXT', 3)];
  const wire = Buffer.concat(msgs.map(frameTcp));
  for (let step = 1; step <= wire.length; step += 5) {
    const dec = new TcpFrameDecoder();
    const out: Buffer[] = [];
    for (let i = 0; i < wire.length; i += step) out.push(...dec.push(wire.subarray(i, i + step)));
    assert.deepEqual(out, msgs);
    assert.equal(dec.buffered, 0);
  }
});

test('servfailFor echoes id and question; withId rewrites the id', () => {
  const q = query('blocked.example', 'A', 0xbeef);
  const r = decodeDns(servfailFor(q));
  assert.equal(r.id, 0xbeef);
  assert.equal(r.type, 'response');
  assert.equal((r as unknown as { rcode: string }).rcode, 'SERVFAIL');
  assert.deepEqual(r.questions, [{ name: 'blocked.example', type: 'A', class: 'IN' }]);
  assert.equal(decodeDns(withId(q, 7)).id, 7);
  assert.throws(
    () => decodeDns(Buffer.alloc(5)),
    (e) => isProtocolError(e) && e.code === 'ERR_DNS',
  );
  assert.throws(
    () => decodeDns(Buffer.alloc(40, 0xff)),
    (e) => isProtocolError(e) && e.code === 'ERR_DNS',
  );
});

test('inspectResponse: type mismatch, forged pool, AA on recursive, unrelated replies', () => {
  const forged = new IpSet(['31.13.0.0/16', '2001:db8::1']);
  const qa = query('blocked.example', 'A');
  const qtxt = query('blocked.example', 'TXT');
  const qd = decodeDns(qa);
  const genuine = decodeDns(
    reply(qa, [{ type: 'A', name: 'blocked.example', ttl: 60, data: '198.51.100.7' }]),
  );
  assert.deepEqual(inspectResponse(qd, genuine, { forged }), {
    related: true,
    forged: false,
    reasons: [],
    addresses: ['198.51.100.7'],
  });
  const cname = decodeDns(
    reply(qa, [
      { type: 'CNAME', name: 'blocked.example', ttl: 60, data: 'cdn.example' },
      { type: 'A', name: 'cdn.example', ttl: 60, data: '198.51.100.8' },
    ]),
  );
  assert.equal(inspectResponse(qd, cname, { forged }).forged, false);
  const pool = decodeDns(reply(qa, [{ type: 'A', name: 'blocked.example', ttl: 60, data: '31.13.72.1' }]));
  assert.deepEqual(inspectResponse(qd, pool, { forged }).reasons, ['forged-address']);
  // GFW answers A to a TXT query.
  const mismatch = decodeDns(
    reply(qtxt, [{ type: 'A', name: 'blocked.example', ttl: 60, data: '203.0.113.9' }]),
  );
  assert.deepEqual(inspectResponse(decodeDns(qtxt), mismatch).reasons, ['type-mismatch']);
  // AAAA to an A query is a mismatch too.
  const v6 = decodeDns(reply(qa, [{ type: 'AAAA', name: 'blocked.example', ttl: 60, data: '2001:db8::1' }]));
  assert.deepEqual(
    new Set(inspectResponse(qd, v6, { forged }).reasons),
    new Set(['type-mismatch', 'forged-address']),
  );
  const aa = decodeDns(
    reply(
      qa,
      [{ type: 'A', name: 'blocked.example', ttl: 60, data: '198.51.100.7' }],
      (0x8400 & 0x7fff) | 0x0100,
    ),
  );
  assert.deepEqual(inspectResponse(qd, aa, { flagAaOnRecursive: true }).reasons, ['aa-on-recursive']);
  assert.equal(inspectResponse(qd, aa).forged, false);
  const priv = decodeDns(reply(qa, [{ type: 'A', name: 'blocked.example', ttl: 60, data: '127.0.0.1' }]));
  assert.deepEqual(inspectResponse(qd, priv, { flagPrivate: true }).reasons, ['private-address']);
  // Different id or question: unrelated, ignored.
  const other = decodeDns(
    reply(query('other.example', 'A'), [{ type: 'A', name: 'other.example', ttl: 1, data: '31.13.1.1' }]),
  );
  assert.equal(inspectResponse(qd, other, { forged }).related, false);
  const otherId = decodeDns(reply(query('blocked.example', 'A', 9), []));
  assert.equal(inspectResponse(qd, otherId).related, false);
});

test('IpSet and CIDR parsing', () => {
  const s = new IpSet(['10.0.0.0/8', '192.0.2.1', '2001:db8::/32', '::ffff:198.51.100.0/120']);
  assert.ok(s.has('10.200.3.4'));
  assert.ok(!s.has('11.0.0.1'));
  assert.ok(s.has('192.0.2.1'));
  assert.ok(!s.has('192.0.2.2'));
  assert.ok(s.has('2001:db8:ffff::1'));
  assert.ok(!s.has('2001:db9::1'));
  assert.ok(s.has('198.51.100.77'));
  assert.ok(s.has('::ffff:10.1.1.1'));
  assert.ok(!s.has('example.com'));
  assert.equal(parseCidr('10.1.2.3/8').value, ipToBigInt('10.0.0.0')!.value);
  assert.equal(ipToBigInt('::1')!.value, 1n);
  assert.equal(ipToBigInt('1::')!.value, 1n << 112n);
  for (const bad of ['10.0.0.0/33', 'x/8', '1.2.3', '::1/129', '10.0.0.0/-1']) {
    assert.throws(
      () => parseCidr(bad),
      (e) => isProtocolError(e) && e.code === 'ERR_ADDRESS',
      bad,
    );
  }
});

test('property: decodeDns and inspectResponse never throw anything but ProtocolError on arbitrary bytes', () => {
  const q = decodeDns(query('blocked.example', 'A'));
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        const r = decodeDns(bytes);
        inspectResponse(q, r, {
          forged: new IpSet(['1.2.3.0/24']),
          flagAaOnRecursive: true,
          flagPrivate: true,
        });
      } catch (e) {
        assert.ok(isProtocolError(e), String(e));
      }
    }),
    { numRuns: 3000 },
  );
});
