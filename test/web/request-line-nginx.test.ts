/**
 * Request lines the web front refuses, against Debian's nginx 1.22 started on a loopback port
 * with its default error pages (the builtin decoy claims to be nginx: `Server: nginx` and nginx's
 * pages): the status line, the header names in order, Connection, the body byte for byte, and
 * whether the connection is closed after. `GET /x HTTP/0.9` written out got Node's parse (the
 * page, 404) where nginx answers 400 and closes; that one fails on the old code.
 *
 * An unknown method (`FOO / HTTP/1.1`: nginx's 405, connection kept) and minor versions above 1
 * (`HTTP/1.2` … `HTTP/1.999`: served as 1.1) are read by src/server/web/request-line.ts ahead of
 * Node's parser (session 21); they and many more request shapes are in prober-nginx.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { builtinDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { exchange, nginxSkip, splitResponse, startNginx, tempDir, type Nginx } from './fixtures.js';

const REQUEST_LINES = [
  'GET /nope HTTP/0.9',
  'GET / HTTP/0.9',
  'OPTIONS * HTTP/1.1',
  'GET /nope HTTP/2.0',
  'GET /nope HTTP/3.0',
  'TRACE / HTTP/1.1',
  'get / HTTP/1.1',
  'PROPFIND /nope HTTP/1.1',
];

/** What a prober compares: the status line, the header names (Connection with its value), body, close. */
function shape(text: string, close: string): string {
  const { headers, body } = splitResponse(text);
  const names = headers.map((h) => (/^connection:/i.test(h) ? h : h.split(':')[0]));
  return JSON.stringify({ status: text.split('\r\n')[0], names, body, close });
}

describe('request lines the front refuses, as nginx 1.22 answers them', { skip: nginxSkip() }, () => {
  const root = tempDir('reqline-root');
  let nginx: Nginx;
  let front: WebFront;
  before(async () => {
    mkdirSync(root.path, { recursive: true });
    writeFileSync(`${root.path}/index.html`, '<p>hi</p>\n');
    nginx = await startNginx(`listen 127.0.0.1:{{PORT}}; root ${root.path};`);
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/reqline-secret',
      decoy: builtinDecoy({ seed: 'reqline' }),
      onUpgrade: () => false,
    });
  });
  after(async () => {
    await nginx?.stop();
    await front?.close();
    root.remove();
  });

  for (const line of REQUEST_LINES)
    test(`${line}: the same status line, header names, body and close`, async () => {
      const req = `${line}\r\nHost: a\r\n\r\n`;
      const theirs = await exchange(nginx.port, req);
      const ours = await exchange(front.port, req);
      assert.equal(shape(ours.text, ours.close), shape(theirs.text, theirs.close));
    });
});
