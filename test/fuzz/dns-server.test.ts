/**
 * Fuzzing the client's local DNS listener (src/client/dns/server.ts) from both sides: mutated
 * queries from applications (UDP and TCP), and mutated answers from the resolver behind it (what
 * comes back through the tunnel, including answers long enough to take the UDP truncation path).
 * Contract: no throw escapes (an unhandled rejection would end the client), garbage queries are
 * dropped, and the listener still answers a good query afterwards. Method: test/fuzz/fuzz.ts.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { test } from 'node:test';
import { startDnsServer } from '../../src/client/dns/server.js';
import { decodeDns, frameTcp } from '../../src/protocol/dns/message.js';
import { byteCases, rng } from './fuzz.js';

const QUERY = Buffer.from('abcd01000001000000000000076578616d706c6503636f6d0000010001', 'hex');
/** An A answer padded with a long TXT record past 512 bytes (the truncation path). */
const LONG = Buffer.concat([
  Buffer.from('abcd81800001000100000000076578616d706c6503636f6d0000010001c00c001000010000012c025b', 'hex'),
  Buffer.from([0xff]),
  Buffer.alloc(255, 0x61),
  Buffer.from([0xff]),
  Buffer.alloc(255, 0x62),
  Buffer.from([0x5a]),
  Buffer.alloc(90, 0x63),
]);

test('fuzz: local DNS listener survives garbage queries and garbage answers', async (t) => {
  assert.equal(decodeDns(LONG).answers?.length, 1);
  const escaped: unknown[] = [];
  const onRejection = (err: unknown): void => void escaped.push(err);
  process.on('unhandledRejection', onRejection);
  t.after(() => process.off('unhandledRejection', onRejection));

  const answers = [...byteCases('dns-answers', [LONG], 300)];
  const r = rng('dns-answer-pick');
  let mode: 'fuzz' | 'good' = 'fuzz';
  const srv = await startDnsServer({
    host: '127.0.0.1',
    port: 0,
    resolver: {
      resolve: async (q) => {
        if (mode === 'good') return Buffer.concat([q.subarray(0, 2), LONG.subarray(2)]);
        const a = r.pick(answers);
        if (a.length === 0) throw new Error('resolver failed');
        return a;
      },
    },
  });
  t.after(() => srv.close());

  const udp = dgram.createSocket('udp4');
  await new Promise<void>((res) => udp.bind(0, '127.0.0.1', res));
  t.after(() => udp.close());
  const queries = [...byteCases('dns-queries', [QUERY], 300)];
  for (const q of [...queries, ...queries.map(() => QUERY)]) udp.send(q, srv.udpPort, '127.0.0.1');

  // TCP: mutated frames on a few connections.
  await Promise.all(
    [0, 1, 2, 3].map(
      (k) =>
        new Promise<void>((res) => {
          const s = net.connect(srv.tcpPort, '127.0.0.1');
          s.on('error', () => {});
          s.on('data', () => {});
          s.on('close', () => res());
          s.end(Buffer.concat(queries.slice(k * 50, k * 50 + 50).map((q) => (k % 2 ? q : frameTcp(q)))));
          setTimeout(() => s.destroy(), 3000).unref();
        }),
    ),
  );
  await new Promise((res) => setTimeout(res, 300));
  assert.deepEqual(escaped.map(String), [], 'a throw escaped the DNS listener');

  // Still answering: a good query gets the (truncated, TC set) answer.
  mode = 'good';
  const reply = await new Promise<Buffer>((res, rej) => {
    const timer = setTimeout(() => rej(new Error('no answer to a good query')), 3000);
    udp.on('message', (m) => {
      if (m.readUInt16BE(0) === 0x1234) {
        clearTimeout(timer);
        res(m);
      }
    });
    const q = Buffer.from(QUERY);
    q.writeUInt16BE(0x1234, 0);
    udp.send(q, srv.udpPort, '127.0.0.1');
  });
  assert.ok((decodeDns(reply).flags ?? 0) & 0x200, 'TC set on a long answer over UDP');
});

test('regression found by the fuzzer: a long answer that is not DNS gets SERVFAIL, not an unhandled rejection', async (t) => {
  const escaped: unknown[] = [];
  const onRejection = (err: unknown): void => void escaped.push(err);
  process.on('unhandledRejection', onRejection);
  t.after(() => process.off('unhandledRejection', onRejection));
  const srv = await startDnsServer({
    host: '127.0.0.1',
    port: 0,
    resolver: { resolve: async (q) => Buffer.concat([q.subarray(0, 2), Buffer.alloc(600, 0xee)]) },
  });
  t.after(() => srv.close());
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((res) => udp.bind(0, '127.0.0.1', res));
  t.after(() => udp.close());
  const reply = await new Promise<Buffer>((res, rej) => {
    const timer = setTimeout(() => rej(new Error('no answer')), 3000);
    udp.once('message', (m) => {
      clearTimeout(timer);
      res(m);
    });
    udp.send(QUERY, srv.udpPort, '127.0.0.1');
  });
  assert.equal((decodeDns(reply).flags ?? 0) & 0xf, 2, 'SERVFAIL');
  await new Promise((res) => setTimeout(res, 50));
  assert.deepEqual(escaped.map(String), []);
});
