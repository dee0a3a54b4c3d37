/** C2: on-path DNS injection in the measured format; the genuine answer races in later. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { dnsQuery } from '../../src/lab/client-ops.js';
import { ADDR, BLOCKED_NAME, OPEN_NAME, type LabWorld } from '../../src/lab/world.js';
import { parseDnsQuery, forgeAnswer } from '../../src/lab/dns-inject.js';
import { startWorld } from './helpers.js';

const q = (w: LabWorld, name: string, type: 'A' | 'AAAA' | 'TXT') =>
  dnsQuery(w.resolver, name, type, { clock: w.clock, timeoutMs: 5_000, localAddress: '127.0.1.21' });

/** Raw query with RD chosen by the caller; returns every raw reply within ~300 ms real. */
async function rawQuery(w: LabWorld, name: string, rd: boolean): Promise<Buffer[]> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.1.22', r));
  const msg = dnsPacket.encode({
    type: 'query',
    id: 0x1234,
    flags: rd ? dnsPacket.RECURSION_DESIRED : 0,
    questions: [{ type: 'A', name, class: 'IN' }],
  });
  const out: Buffer[] = [];
  sock.on('message', (m) => out.push(m));
  sock.send(msg, w.resolver.port, w.resolver.host);
  await new Promise((r) => setTimeout(r, 300));
  sock.close();
  return out;
}

test('C2: blocked name gets a forged A first, the genuine answer arrives later; open name is untouched', async () => {
  const w = await startWorld('none', { c2: { enabled: true, genuineDelayMs: 50 } });
  try {
    const r = await q(w, BLOCKED_NAME, 'A');
    assert.equal(r.replies.length, 2, 'forged + genuine');
    assert.equal(r.first![0]!.type, 'A');
    assert.ok(
      w.censor.isForgedAddress(r.first![0]!.data),
      `first answer ${r.first![0]!.data} is from the forged pool`,
    );
    assert.equal(r.replies[1]![0]!.data, ADDR.blockedSite, 'genuine answer last');
    const d = w.log.filter({ behaviour: 'C2', action: 'INJECT' });
    assert.equal(d.length, 1);
    assert.equal(d[0]!.features.qname, BLOCKED_NAME);
    const open = await q(w, OPEN_NAME, 'A');
    assert.equal(open.replies.length, 1);
    assert.equal(open.first![0]!.data, ADDR.openSite);
    assert.equal(w.log.filter({ behaviour: 'C2', action: 'PASS' }).length, 1);
  } finally {
    await w.stop();
  }
});

test('C2: a TXT query for a blocked name gets a forged A answer (type mismatch tell); an AAAA query a forged AAAA', async () => {
  const w = await startWorld('none', { c2: { enabled: true } });
  try {
    const txt = await q(w, BLOCKED_NAME, 'TXT');
    assert.equal(txt.first![0]!.type, 'A');
    assert.equal(txt.replies[1]![0]!.type, 'TXT', 'the genuine TXT answer still arrives');
    const aaaa = await q(w, BLOCKED_NAME, 'AAAA');
    assert.equal(aaaa.first![0]!.type, 'AAAA');
    const openTxt = await q(w, OPEN_NAME, 'TXT');
    assert.equal(openTxt.replies.length, 1);
    assert.equal(openTxt.first![0]!.type, 'TXT');
  } finally {
    await w.stop();
  }
});

test('C2 format: header copied, flags 0x8180 with RD and 0x8400 without, ANCOUNT 1, pointer 0xC00C', async () => {
  const w = await startWorld('none', { c2: { enabled: true, dropGenuine: true, injectors: 3 } });
  try {
    for (const rd of [true, false]) {
      const replies = await rawQuery(w, 'Sub.WWW.blocked.lab', rd);
      assert.equal(replies.length, 3, 'three injectors, genuine dropped');
      for (const m of replies) {
        assert.equal(m.readUInt16BE(0), 0x1234);
        assert.equal(m.readUInt16BE(2), rd ? 0x8180 : 0x8400);
        assert.deepEqual(
          [m.readUInt16BE(4), m.readUInt16BE(6), m.readUInt16BE(8), m.readUInt16BE(10)],
          [1, 1, 0, 0],
        );
        const qv = parseDnsQuery(Buffer.concat([m.subarray(0, 2), Buffer.from([0, 0]), m.subarray(4)]))!;
        assert.equal(m.readUInt16BE(qv.questionEnd), 0xc00c);
      }
    }
    // Round-robin over the pool: three injectors drew three different addresses.
    const inj = w.log.filter({ behaviour: 'C2', action: 'INJECT' })[0]!;
    assert.equal(new Set(inj.features.answers as string[]).size, 3);
  } finally {
    await w.stop();
  }
});

test('C2 name matching: end-anchored with subdomains; a look-alike suffix is not matched', async () => {
  const w = await startWorld('none', { c2: { enabled: true } });
  try {
    assert.equal((await rawQuery(w, 'notblocked.lab', true)).length, 1, 'only the genuine NXDOMAIN');
    assert.equal((await rawQuery(w, 'x.blocked.lab', true)).length, 2);
  } finally {
    await w.stop();
  }
  // Pure format check for a query the injector ignores (QR = 1).
  const resp = dnsPacket.encode({
    type: 'response',
    id: 1,
    questions: [{ type: 'A', name: BLOCKED_NAME, class: 'IN' }],
  });
  assert.equal(parseDnsQuery(resp), undefined);
  const query = dnsPacket.encode({
    type: 'query',
    id: 9,
    questions: [{ type: 'MX', name: BLOCKED_NAME, class: 'IN' }],
  });
  const v = parseDnsQuery(query)!;
  const forged = dnsPacket.decode(forgeAnswer(query, v, { ttl: 60, address: '31.13.66.23' }));
  assert.equal(forged.answers![0]!.type, 'A');
});
