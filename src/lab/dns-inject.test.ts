import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import {
  compileDnsRules,
  domainRule,
  forgeAnswer,
  ForgedPool,
  matchDnsRule,
  parseDnsQuery,
  QTYPE_AAAA,
} from './dns-inject.js';

const query = (name: string, type: dnsPacket.RecordType, rd = true) =>
  dnsPacket.encode({
    type: 'query',
    id: 77,
    flags: rd ? dnsPacket.RECURSION_DESIRED : 0,
    questions: [{ type, name, class: 'IN' }],
  });

test('parseDnsQuery ignores what the injector ignores: short packets, responses, compressed QNAMEs', () => {
  assert.equal(parseDnsQuery(Buffer.alloc(11)), undefined);
  assert.equal(
    parseDnsQuery(
      dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'a.b', class: 'IN' }] }),
    ),
    undefined,
  );
  const q = Buffer.from(query('a.b', 'A'));
  q[12] = 0xc0;
  assert.equal(parseDnsQuery(q), undefined);
  const long = parseDnsQuery(query(Array.from({ length: 4 }, () => 'x'.repeat(60)).join('.'), 'A'))!;
  assert.equal(long.qname.length, 125, 'flattened to at most ~125 characters');
});

test('rules: end-anchored with subdomains, start-anchored and unanchored, case-insensitive', () => {
  const rules = compileDnsRules([domainRule('facebook.com'), '^shadowvpn\\.com', '69\\.mu']);
  assert.ok(matchDnsRule(rules, 'www.facebook.com'));
  assert.ok(matchDnsRule(rules, 'FACEBOOK.com'.toLowerCase()));
  assert.equal(matchDnsRule(rules, 'notfacebook.com'), undefined);
  assert.ok(matchDnsRule(rules, 'shadowvpn.com.example'), 'start-anchored overblocks');
  assert.ok(matchDnsRule(rules, 'x69.museum'), 'unanchored overblocks');
});

test('forged answers: A for every non-AAAA type, AAAA for AAAA; pool round-robin per group', () => {
  const pool = new ForgedPool(['1.1.1.1', '2.2.2.2'], ['2001::1']);
  assert.deepEqual(
    [pool.next('g', false), pool.next('g', false), pool.next('g', false), pool.next('h', false)],
    ['1.1.1.1', '2.2.2.2', '1.1.1.1', '1.1.1.1'],
  );
  for (const [type, want] of [
    ['TXT', 'A'],
    ['MX', 'A'],
    ['HTTPS', 'A'],
    ['AAAA', 'AAAA'],
  ] as const) {
    const q = query('x.blocked.lab', type as dnsPacket.RecordType);
    const v = parseDnsQuery(q)!;
    const addr = v.qtype === QTYPE_AAAA ? '2001::1' : '1.1.1.1';
    const p = dnsPacket.decode(forgeAnswer(q, v, { ttl: 60, address: addr }));
    assert.equal(p.answers![0]!.type, want, type);
    assert.equal(p.id, 77);
  }
});
