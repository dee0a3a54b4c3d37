import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostMatchesSuffix, inspectHttpRequest } from './http-request.js';

test('inspectHttpRequest: Host (lowercased, port stripped), %-decoded path, absolute-URI form', () => {
  assert.deepEqual(
    inspectHttpRequest(Buffer.from('GET /a%20b?q=%E4%B8%AD HTTP/1.1\r\nHOST: WWW.Blocked.lab:8080\r\n\r\n')),
    {
      status: 'ok',
      method: 'GET',
      path: '/a b?q=中',
      host: 'www.blocked.lab',
    },
  );
  const abs = inspectHttpRequest(Buffer.from('GET http://x.example/p HTTP/1.1\r\n\r\n'));
  assert.deepEqual(abs, { status: 'ok', method: 'GET', path: '/p', host: 'x.example' });
  assert.equal(inspectHttpRequest(Buffer.from('GET / HTTP/1.1\r\nHost: a')).status, 'need-more');
  assert.equal(
    inspectHttpRequest(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10, 0x20, 1, 2, 3, 4, 5, 6])).status,
    'not-http',
  );
  assert.equal(inspectHttpRequest(Buffer.from('get / HTTP/1.1\r\n\r\n')).status, 'not-http');
  // Malformed escapes fall back to the raw text.
  const bad = inspectHttpRequest(Buffer.from('GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n'));
  assert.equal(bad.status === 'ok' && bad.path, '/%zz');
});

test('hostMatchesSuffix: the name and its subdomains only', () => {
  assert.equal(hostMatchesSuffix('blocked.lab', 'blocked.lab'), true);
  assert.equal(hostMatchesSuffix('a.b.blocked.lab.', 'blocked.lab'), true);
  assert.equal(hostMatchesSuffix('notblocked.lab', 'blocked.lab'), false);
});
