import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filterHeaders, parseAuthority } from './http-inbound.js';
import { parseListenAddress } from './index.js';

test('parseListenAddress accepts host:port, [v6]:port and a bare port', () => {
  assert.deepEqual(parseListenAddress('127.0.0.1:1080'), { host: '127.0.0.1', port: 1080 });
  assert.deepEqual(parseListenAddress('[::1]:8118'), { host: '::1', port: 8118 });
  assert.deepEqual(parseListenAddress('1080'), { host: '127.0.0.1', port: 1080 });
  assert.deepEqual(parseListenAddress(':0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListenAddress('localhost:9'), { host: 'localhost', port: 9 });
  for (const bad of ['', 'host', '1.2.3.4:99999', '[nope]:1', '::1:80', 'a:b']) {
    assert.throws(() => parseListenAddress(bad, '--socks'), /--socks/, bad);
  }
});

test('parseAuthority reads CONNECT targets', () => {
  assert.deepEqual(parseAuthority('example.com:443'), { type: 'domain', host: 'example.com', port: 443 });
  assert.deepEqual(parseAuthority('10.0.0.1:80'), { type: 'ipv4', host: '10.0.0.1', port: 80 });
  assert.deepEqual(parseAuthority('[2001:db8::1]:443'), { type: 'ipv6', host: '2001:db8::1', port: 443 });
  for (const bad of [
    'example.com',
    'example.com:0',
    'example.com:70000',
    '2001:db8::1:443',
    '[x]:1',
    ':443',
    '',
  ]) {
    assert.equal(parseAuthority(bad), undefined, bad);
  }
});

test('filterHeaders drops hop-by-hop, Proxy-* and Connection-named headers, keeps the rest in order', () => {
  const raw = [
    'Host',
    'a',
    'Connection',
    'keep-alive, X-Private',
    'X-Private',
    '1',
    'Proxy-Authorization',
    'Basic x',
    'Proxy-Connection',
    'keep-alive',
    'Keep-Alive',
    'timeout=5',
    'TE',
    'trailers',
    'Transfer-Encoding',
    'chunked',
    'Upgrade',
    'h2c',
    'Set-Cookie',
    'a=1',
    'set-cookie',
    'b=2',
    'X-Keep',
    'yes',
  ];
  assert.deepEqual(filterHeaders(raw), [
    'Host',
    'a',
    'Set-Cookie',
    'a=1',
    'set-cookie',
    'b=2',
    'X-Keep',
    'yes',
  ]);
});
