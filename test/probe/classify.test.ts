/** The verdict rules, one observation set per mechanism, each with the control that flips it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, type Observations } from '../../src/probe/classify.js';

const page = {
  failure: null,
  status: 200,
  bodyLength: 1000,
  title: 'Welcome to Example',
  headers: { 'x-site': 'a' },
};
const base: Observations = {
  https: true,
  dns: { addrs: ['192.0.2.1'], failure: null },
  controlDns: { addrs: ['192.0.2.1'], failure: null },
  tcp: [{ ip: '192.0.2.1', success: true }],
  tls: [{ failure: null }],
  http: page,
  control: page,
  nullRouted: false,
};
const v = (o: Partial<Observations>) => classify({ ...base, ...o }).blocking;

test('accessible when everything matches; null when the control failed', () => {
  assert.equal(v({}), false);
  assert.equal(classify(base).accessible, true);
  assert.equal(v({ control: { failure: 'generic_timeout_error' } }), null);
  assert.equal(classify({ ...base, control: { failure: 'connection_reset' } }).accessible, null);
});

test('dns: answers disjoint from the control and the fetch failed; a CDN answer that works is accessible', () => {
  const forged = {
    dns: { addrs: ['203.0.113.9'], failure: null },
    tls: [],
    tcp: [{ ip: '203.0.113.9', success: false }],
  };
  assert.equal(v({ ...forged, http: { failure: 'generic_timeout_error', phase: 'connect' } }), 'dns');
  assert.deepEqual(classify({ ...base, ...forged, http: { failure: 'x' } }).x_unexpected_answers, [
    '203.0.113.9',
  ]);
  assert.equal(
    v({
      dns: { addrs: [], failure: 'dns_nxdomain_error' },
      tcp: [],
      tls: [],
      http: { failure: 'dns_nxdomain_error' },
    }),
    'dns',
  );
  // Other answers, but the page is the same: a CDN, not a block.
  assert.equal(v({ dns: { addrs: ['198.51.100.7'], failure: null } }), false);
  // Other answers with a certificate valid for the name: consistent.
  assert.equal(
    classify({ ...base, dns: { addrs: ['198.51.100.7'], failure: null } }).dns_consistency,
    'consistent',
  );
});

test('tcp_ip: every connect failed, or the address is null-routed', () => {
  assert.equal(
    v({
      tcp: [{ ip: '192.0.2.1', success: false }],
      tls: [],
      http: { failure: 'generic_timeout_error', phase: 'connect' },
    }),
    'tcp_ip',
  );
  assert.equal(
    v({
      nullRouted: true,
      tls: [{ failure: 'generic_timeout_error' }],
      http: { failure: 'generic_timeout_error', phase: 'tls' },
    }),
    'tcp_ip',
  );
});

test('tls: the handshake fails here and the control fetched the page', () => {
  assert.equal(
    v({ tls: [{ failure: 'connection_reset' }], http: { failure: 'connection_reset', phase: 'tls' } }),
    'tls',
  );
  assert.equal(
    v({ https: false, tls: [], http: { failure: 'connection_reset', phase: 'http' } }),
    'http-failure',
  );
});

test('http-diff: a block page (other status or a short body with another title); headers alone do not save it', () => {
  const blockPage = { failure: null, status: 403, bodyLength: 120, title: 'Access denied', headers: {} };
  assert.equal(v({ http: blockPage }), 'http-diff');
  assert.equal(v({ http: { ...blockPage, status: 200 } }), 'http-diff');
  // Same status, a body within 70%: accessible (pages vary between fetches).
  assert.equal(v({ http: { ...page, bodyLength: 800, title: 'other', headers: {} } }), false);
});
