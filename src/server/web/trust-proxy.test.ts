import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import { clientAddress, parseHop, parseTrustedProxies, TrustProxyError } from './trust-proxy.js';

function req(peer: string, headers: Record<string, string | string[]> = {}): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers } as unknown as IncomingMessage;
}

describe('parseTrustedProxies', () => {
  test('IPv4 and IPv6 ranges, single hosts, comma lists', () => {
    const t = parseTrustedProxies(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32, ::1']);
    assert.deepEqual(t.ranges, ['10.0.0.0/8', '192.0.2.7/32', '2001:db8::/32', '::1/128']);
    assert.ok(t.contains('10.1.2.3'));
    assert.ok(t.contains('::ffff:10.1.2.3'), 'v4-mapped v6');
    assert.ok(t.contains('192.0.2.7'));
    assert.ok(!t.contains('192.0.2.8'));
    assert.ok(t.contains('2001:DB8:1::5'));
    assert.ok(t.contains('::1'));
    assert.ok(!t.contains('2001:db9::1'));
    assert.ok(!t.contains('not an address'));
  });

  test('a bad entry is named in the error', () => {
    for (const [bad, why] of [
      ['10.0.0.0/33', /prefix length "33" must be 0\.\.32/],
      ['10.0.0/8', /"10\.0\.0" is not an IPv4 or IPv6 address/],
      ['fe80::/129', /must be 0\.\.128/],
      ['example.com', /not an IPv4 or IPv6/],
      ['1.2.3.4/', /prefix length ""/],
    ] as const) {
      assert.throws(
        () => parseTrustedProxies(['127.0.0.1', bad]),
        (e: unknown) =>
          e instanceof TrustProxyError &&
          e.entry === bad &&
          why.test(e.message) &&
          e.message.includes(JSON.stringify(bad)),
        bad,
      );
    }
  });
});

describe('parseHop', () => {
  test('forms found in forwarding headers', () => {
    assert.equal(parseHop(' 203.0.113.5 '), '203.0.113.5');
    assert.equal(parseHop('203.0.113.5:4711'), '203.0.113.5');
    assert.equal(parseHop('"[2001:db8::1]:4711"'), '2001:db8::1');
    assert.equal(parseHop('2001:DB8::1'), '2001:db8::1');
    assert.equal(parseHop('unknown'), undefined);
    assert.equal(parseHop('_hidden'), undefined);
    assert.equal(parseHop(''), undefined);
  });
});

describe('clientAddress', () => {
  const trusted = parseTrustedProxies(['127.0.0.0/8', '10.0.0.0/8']);

  test('headers from an untrusted peer are ignored', () => {
    assert.equal(
      clientAddress(req('198.51.100.9', { 'x-forwarded-for': '203.0.113.5' }), trusted),
      '198.51.100.9',
    );
    assert.equal(
      clientAddress(req('198.51.100.9', { 'cf-connecting-ip': '203.0.113.5' }), trusted),
      '198.51.100.9',
    );
    assert.equal(
      clientAddress(req('::ffff:198.51.100.9', { forwarded: 'for=203.0.113.5' }), trusted),
      '198.51.100.9',
    );
  });

  test('no trust list: always the peer', () => {
    assert.equal(
      clientAddress(req('127.0.0.1', { 'x-forwarded-for': '203.0.113.5' }), undefined),
      '127.0.0.1',
    );
  });

  test('X-Forwarded-For: the rightmost untrusted hop', () => {
    assert.equal(
      clientAddress(req('127.0.0.1', { 'x-forwarded-for': '203.0.113.5' }), trusted),
      '203.0.113.5',
    );
    // A client-supplied (spoofed) entry on the left is skipped.
    assert.equal(
      clientAddress(req('127.0.0.1', { 'x-forwarded-for': '1.1.1.1, 203.0.113.5, 10.0.0.2' }), trusted),
      '203.0.113.5',
    );
    assert.equal(
      clientAddress(req('127.0.0.1', { 'x-forwarded-for': ['1.1.1.1', '203.0.113.5'] }), trusted),
      '203.0.113.5',
    );
    // All trusted: the leftmost.
    assert.equal(
      clientAddress(req('127.0.0.1', { 'x-forwarded-for': '10.0.0.3, 10.0.0.2' }), trusted),
      '10.0.0.3',
    );
    // Garbage stops the walk at the last trusted hop.
    assert.equal(
      clientAddress(req('127.0.0.1', { 'x-forwarded-for': '203.0.113.5, garbage, 10.0.0.2' }), trusted),
      '10.0.0.2',
    );
    assert.equal(clientAddress(req('127.0.0.1', { 'x-forwarded-for': 'garbage' }), trusted), '127.0.0.1');
  });

  test('Forwarded (RFC 7239) when there is no X-Forwarded-For', () => {
    assert.equal(
      clientAddress(
        req('127.0.0.1', {
          forwarded: 'for=1.1.1.1;proto=https, For="[2001:db8:cafe::17]:4711";by=10.0.0.1',
        }),
        trusted,
      ),
      '2001:db8:cafe::17',
    );
  });

  test("X-Forwarded-For wins over Forwarded: a proxy appending to one passes a client's other on", () => {
    assert.equal(
      clientAddress(
        req('127.0.0.1', { forwarded: 'for=9.9.9.9', 'x-forwarded-for': '203.0.113.5' }),
        trusted,
      ),
      '203.0.113.5',
    );
    assert.equal(
      clientAddress(
        req('127.0.0.1', { 'cf-connecting-ip': '9.9.9.9', 'x-forwarded-for': '203.0.113.5' }),
        trusted,
      ),
      '203.0.113.5',
    );
  });

  test('CF-Connecting-IP when nothing else is present', () => {
    assert.equal(
      clientAddress(req('10.0.0.1', { 'cf-connecting-ip': '203.0.113.77' }), trusted),
      '203.0.113.77',
    );
    assert.equal(clientAddress(req('10.0.0.1', { 'cf-connecting-ip': 'nonsense' }), trusted), '10.0.0.1');
  });

  test('a trusted peer without headers is the client', () => {
    assert.equal(clientAddress(req('127.0.0.1'), trusted), '127.0.0.1');
  });
});
