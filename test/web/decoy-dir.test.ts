/**
 * The `dir:` decoy against nginx serving the same directory: every request below must get the same
 * bytes (Date values and the listening port masked) and the same close behaviour, whether it is
 * sent to nginx directly or to the web front, and whether or not it carries a WebSocket upgrade
 * on a wrong path. Also: no path traversal, no symlink escape, no directory listing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { dirDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import {
  decoyComparisonTests,
  exchange,
  nginxServingSite,
  nginxSkip,
  WS_UPGRADE_HEADERS,
} from './fixtures.js';

describe('dir: decoy matches nginx serving the same directory', { skip: nginxSkip() }, () => {
  let site: Awaited<ReturnType<typeof nginxServingSite>>;
  let front: WebFront;
  before(async () => {
    site = await nginxServingSite('decoy-dir');
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/0a9f-secret',
      decoy: dirDecoy(site.root),
      onUpgrade: () => false,
    });
  });
  after(async () => {
    await front?.close();
    await site?.stop();
  });

  decoyComparisonTests(
    () => ({ front: front.port, direct: site.nginx.port }),
    'example.org',
    () => 'example.org',
  );

  // Expect as nginx answers it (ngx_http_test_expect, from the static handler's body discard):
  // "100 Continue" before a file it serves (200, 206, 304, 416), none before an error page, only
  // for HTTP/1.1 and the exact value `100-continue` (any case).
  describe('Expect: 100-continue', () => {
    const E = 'Expect: 100-continue\r\n';
    decoyComparisonTests(
      () => ({ front: front.port, direct: site.nginx.port }),
      'example.org',
      () => 'example.org',
      [
        'GET / HTTP/1.1\r\n{{H}}' + E + '\r\n',
        'HEAD /robots.txt HTTP/1.1\r\n{{H}}Expect: 100-Continue\r\n\r\n',
        'GET /about.html HTTP/1.1\r\n{{H}}' + E + 'Content-Length: 5\r\n\r\nhello',
        'GET /data.bin HTTP/1.1\r\n{{H}}' + E + 'Range: bytes=10-19\r\n\r\n',
        'GET /data.bin HTTP/1.1\r\n{{H}}' + E + 'Range: bytes=5000-\r\n\r\n',
        'GET / HTTP/1.1\r\n{{H}}' + E + 'If-None-Match: *\r\n\r\n',
        'GET /missing HTTP/1.1\r\n{{H}}' + E + '\r\n',
        'GET /docs HTTP/1.1\r\n{{H}}' + E + '\r\n',
        'POST / HTTP/1.1\r\n{{H}}' + E + 'Content-Length: 5\r\n\r\nhello',
        'GET / HTTP/1.1\r\n{{H}}Expect: 100-continue, x\r\n\r\n',
        'GET / HTTP/1.0\r\n' + E + '\r\n',
      ],
    );
  });

  // Host as nginx validates it (ngx_http_validate_host): 400 and close, or the name it puts in
  // the directory redirect (lower-cased, port and a trailing dot removed).
  describe('Host header', () => {
    const hosts = [
      'a/b',
      'a..b',
      'x..',
      '..',
      '.',
      '',
      ':80',
      'a:8..0',
      '[a/b]',
      'a b',
      'Example.COM',
      'UPPER:99',
      'example.com.',
      '.example',
      'a\\b',
      'a:b:c',
      '[::1]:80',
      '[::1',
      'a%2fb',
      'a?b@c',
    ];
    const requests = hosts.map((h) => `GET /docs HTTP/1.1\r\nHost: ${h}\r\n\r\n`);
    requests.push(
      'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n',
      'GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /robots.txt HTTP/1.1\r\nHost: a..b\r\n\r\n',
      'GET /docs HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
      'GET /docs HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n',
      'GET /docs HTTP/1.0\r\nHost: a/b\r\n\r\n',
      // Bytes above 0x7f pass and are echoed raw in the redirect (ASCII letters lower-cased).
      'GET /docs HTTP/1.1\r\nHost: Caf\u00e9.Example\r\n\r\n',
      'GET /docs HTTP/1.1\r\nHost: a..b\r\n' + WS_UPGRADE_HEADERS + '\r\n',
    );
    // The absolute form's host (ngx_http_parse_request_line): checked, and it names the request.
    const targets = [
      'Example.COM',
      'ex.com.',
      'ex.com:',
      'ex.com:8080',
      '[::1]:81',
      "[a_b~!$&'()*+,;=]",
      'a-b.c',
      '.x',
    ];
    const badTargets = [
      'a..b',
      'a_b',
      'u@ex.com',
      'a%2eb',
      '',
      ':80',
      '.',
      'ex.com:8a',
      '[::1',
      'ex.com:8..0',
    ];
    for (const t of [...targets, ...badTargets])
      requests.push(`GET http://${t}/docs HTTP/1.1\r\nHost: x\r\n\r\n`);
    requests.push(
      'GET HTTP://EX.com/docs HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET ftp://ex.com/docs HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET https://ex.com/docs HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET http://ex.com/docs HTTP/1.0\r\n\r\n',
      'GET http://ex.com/docs HTTP/1.1\r\nHost: a/b\r\n\r\n',
      'GET http://ex.com HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    decoyComparisonTests(
      () => ({ front: front.port, direct: site.nginx.port }),
      '',
      () => '',
      requests,
    );
  });

  test('no traversal: a symlink out of the root is not served', async () => {
    const r = await exchange(front.port, 'GET /escape.txt HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 404 Not Found\r\n/);
    assert.doesNotMatch(r.text, /outside the root/);
  });
});
