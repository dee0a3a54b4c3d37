/**
 * The proxy decoy and `Expect`, as nginx's proxy_pass handles it: nginx answers "100 Continue"
 * itself (decoy-proxy.test.ts) and never forwards Expect upstream (its proxy module sets it to
 * empty), so an upstream that answers an expectation it does not know with 417 (Node's, Apache)
 * still gives its page. Before: Expect went upstream, and `Expect: x` through the front got the
 * upstream's 417 where nginx in front of the same upstream gets 200. Compared with Debian's nginx
 * proxying to the same upstream.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { proxyDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { exchange, nginxSkip, splitResponse, startNginx, type Nginx } from './fixtures.js';

describe('proxy decoy: Expect is not forwarded, as nginx does', { skip: nginxSkip() }, () => {
  let upstream: http.Server;
  let nginx: Nginx;
  let front: WebFront;
  before(async () => {
    // Node's server: "100 Continue" for 100-continue, 417 for any other expectation.
    upstream = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () =>
        res
          .writeHead(200, { 'content-type': 'text/plain' })
          .end(`expect=${req.headers.expect ?? '-'} body=${body}\n`),
      );
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    nginx = await startNginx(`listen 127.0.0.1:{{PORT}}; location / { proxy_pass ${up}; }`);
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/5ecret',
      decoy: proxyDecoy(up),
      onUpgrade: () => false,
    });
  });
  after(async () => {
    await front?.close();
    await nginx?.stop();
    upstream?.closeAllConnections();
    upstream?.close();
  });

  test('every Expect value: the upstream sees none, and the answer is what nginx gives', async () => {
    const requests = [
      'GET /a HTTP/1.1\r\nHost: www.example.org\r\nExpect: something-else\r\n\r\n',
      'GET /a HTTP/1.1\r\nHost: www.example.org\r\nExpect: 100-continue\r\n\r\n',
      'GET /a HTTP/1.1\r\nHost: www.example.org\r\nExpect: 100-continue, x\r\n\r\n',
      'POST /a HTTP/1.1\r\nHost: www.example.org\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab',
      'POST /a HTTP/1.1\r\nHost: www.example.org\r\nExpect: 101-whatever\r\nContent-Length: 2\r\n\r\nab',
    ];
    for (const req of requests) {
      const ours = await exchange(front.port, req);
      const theirs = await exchange(nginx.port, req);
      // Interim answers ("100 Continue") as nginx sends them, then the final one's status and body.
      const interim = (t: string): string[] => t.match(/HTTP\/1\.1 1\d\d [^\r]*\r\n\r\n/g) ?? [];
      const final = (t: string): { status: number; body: string } => {
        const r = splitResponse(t.replace(/^(HTTP\/1\.1 1\d\d [^\r]*\r\n\r\n)+/, ''));
        return { status: r.status, body: r.body };
      };
      const first = req.split('\r\n')[2];
      assert.deepEqual(interim(ours.text), interim(theirs.text), `${first}: interim answers`);
      assert.deepEqual(final(ours.text), final(theirs.text), `${first}: final answer`);
      assert.equal(final(ours.text).status, 200, first);
      assert.match(final(ours.text).body, /\bexpect=- /, `${first}: the upstream saw no Expect`);
    }
  });
});
