/**
 * The `dir:` decoy against nginx serving the same directory: every request below must get the same
 * bytes (Date values and the listening port masked) and the same close behaviour, whether it is
 * sent to nginx directly or to the web front, and whether or not it carries a WebSocket upgrade
 * on a wrong path. Also: no path traversal, no symlink escape, no directory listing.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dirDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { exchange, makeSite, mask, nginxSkip, startNginx, tempDir, type Nginx } from './fixtures.js';

const UPGRADE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
const BROWSER =
  'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\nAccept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n';

/** Requests compared byte for byte; `{{H}}` is the Host header line. */
export const DECOY_REQUESTS: string[] = [
  'GET / HTTP/1.1\r\n{{H}}' + BROWSER + '\r\n',
  'HEAD / HTTP/1.1\r\n{{H}}\r\n',
  'GET /about.html HTTP/1.1\r\n{{H}}\r\n',
  'GET /css/site.css HTTP/1.1\r\n{{H}}\r\n',
  'GET /js/app.js HTTP/1.1\r\n{{H}}\r\n',
  'GET /img/logo.png HTTP/1.1\r\n{{H}}\r\n',
  'GET /NOTES.TXT HTTP/1.1\r\n{{H}}\r\n',
  'GET /robots.txt HTTP/1.1\r\n{{H}}\r\n',
  'GET /favicon.ico HTTP/1.1\r\n{{H}}\r\n',
  'GET /missing HTTP/1.1\r\n{{H}}\r\n',
  'GET /docs HTTP/1.1\r\n{{H}}\r\n',
  'GET /docs?x=1 HTTP/1.1\r\n{{H}}\r\n',
  'GET /docs/ HTTP/1.1\r\n{{H}}\r\n',
  'GET /empty/ HTTP/1.1\r\n{{H}}\r\n',
  'GET /nothere/ HTTP/1.1\r\n{{H}}\r\n',
  'GET //css///site.css HTTP/1.1\r\n{{H}}\r\n',
  'GET /css/../index.html HTTP/1.1\r\n{{H}}\r\n',
  'GET /../etc/passwd HTTP/1.1\r\n{{H}}\r\n',
  'GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n{{H}}\r\n',
  'GET /a%00b HTTP/1.1\r\n{{H}}\r\n',
  'GET /index.html/x HTTP/1.1\r\n{{H}}\r\n',
  'POST / HTTP/1.1\r\n{{H}}Content-Length: 5\r\n\r\nhello',
  'POST /missing HTTP/1.1\r\n{{H}}Content-Length: 0\r\n\r\n',
  'OPTIONS / HTTP/1.1\r\n{{H}}\r\n',
  'PUT /x HTTP/1.1\r\n{{H}}Content-Length: 0\r\n\r\n',
  'GET / HTTP/1.1\r\n{{H}}If-None-Match: "69b529dd-5b"\r\n\r\n',
  'GET /css/site.css HTTP/1.1\r\n{{H}}If-Modified-Since: Sat, 14 Mar 2026 09:26:53 GMT\r\n\r\n',
  'GET /data.bin HTTP/1.1\r\n{{H}}Range: bytes=10-19\r\n\r\n',
  'GET /data.bin HTTP/1.1\r\n{{H}}Range: bytes=-5\r\n\r\n',
  'GET /data.bin HTTP/1.1\r\n{{H}}Range: bytes=5000-\r\n\r\n',
  'GET / HTTP/1.1\r\n{{H}}Connection: close\r\n\r\n',
  'GET / HTTP/1.0\r\n\r\n',
  'GET /docs HTTP/1.0\r\n\r\n',
  'GET / HTTP/1.1\r\n\r\n',
  // Keep-alive: two requests pipelined on one connection.
  'GET /robots.txt HTTP/1.1\r\n{{H}}\r\nGET /about.html HTTP/1.1\r\n{{H}}\r\n',
  // Wrong-path upgrades are answered like any request; the connection stays usable.
  'GET / HTTP/1.1\r\n{{H}}' + UPGRADE + '\r\n',
  'GET /ws HTTP/1.1\r\n{{H}}' + UPGRADE + '\r\n',
  'GET /chat?room=1 HTTP/1.1\r\n{{H}}' + UPGRADE + '\r\nGET /robots.txt HTTP/1.1\r\n{{H}}\r\n',
  'HEAD /about.html HTTP/1.1\r\n{{H}}' + UPGRADE + '\r\n',
  'GET / HTTP/1.1\r\n{{H}}Connection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n',
  // Garbage.
  '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n',
  'hello\r\n\r\n',
  'GET / HTTP/1.1\r\nHost x\r\n\r\n',
];

describe('dir: decoy matches nginx serving the same directory', { skip: nginxSkip() }, () => {
  const tmp = tempDir('decoy-dir');
  let nginx: Nginx;
  let front: WebFront;
  before(async () => {
    const root = join(tmp.path, 'www');
    const outside = join(tmp.path, 'outside');
    mkdirSync(root);
    mkdirSync(outside);
    makeSite(root, outside);
    nginx = await startNginx(`listen 127.0.0.1:{{PORT}}; root ${root};`);
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/0a9f-secret',
      decoy: dirDecoy(root),
      onUpgrade: () => false,
    });
  });
  after(async () => {
    await front?.close();
    await nginx?.stop();
    tmp.remove();
  });

  for (const raw of DECOY_REQUESTS) {
    test(JSON.stringify(raw.slice(0, 60)), async () => {
      const req = raw.split('{{H}}').join('Host: example.org\r\n');
      const [direct, viaFront] = await Promise.all([exchange(nginx.port, req), exchange(front.port, req)]);
      assert.ok(direct.text.length > 0, 'nginx answered');
      assert.equal(mask(viaFront.text, [front.port]), mask(direct.text, [nginx.port]));
      assert.equal(viaFront.close, direct.close);
    });
  }

  test('no traversal: a symlink out of the root is not served', async () => {
    const r = await exchange(front.port, 'GET /escape.txt HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(r.text, /^HTTP\/1\.1 404 Not Found\r\n/);
    assert.doesNotMatch(r.text, /outside the root/);
  });
});
