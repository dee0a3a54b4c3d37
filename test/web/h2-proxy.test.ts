/**
 * The `https://upstream` decoy (here http:// to an nginx on loopback) reached over HTTP/2: what an
 * h2 client gets through the TLS web front is the upstream's page, the same as over HTTP/1.1
 * through the front (status, fields minus Connection, body); the request reaches the upstream as
 * HTTP/1.1 with Host rewritten, no pseudo-headers (nginx would answer 400 to a `:path` field) and
 * split Cookie fields joined; a repeated Set-Cookie comes back as repeated fields.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { proxyDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { makeCert, nginxServingSite, nginxSkip, opensslSkip, tempDir } from './fixtures.js';
import { assertSameAsHttp1, H2_HOST, h2Connect, h2Request } from './h2-fixtures.js';

describe('proxy decoy over HTTP/2', { skip: nginxSkip() || opensslSkip() }, () => {
  const tmp = tempDir('h2-proxy');
  let site: Awaited<ReturnType<typeof nginxServingSite>>;
  let front: WebFront;
  let cert: string;
  before(async () => {
    site = await nginxServingSite(
      'h2-proxy-up',
      'location = /echo-headers { default_type text/plain; return 200 "host=$http_host cookie=$http_cookie x=$http_x_custom\\n"; } ' +
        'location = /cookies { add_header Set-Cookie a=1; add_header Set-Cookie b=2; return 204; }',
    );
    const c = makeCert(tmp.path, H2_HOST);
    cert = c.cert;
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/h2-proxy-secret',
      tls: { cert: c.cert, key: c.key },
      decoy: proxyDecoy(`http://127.0.0.1:${site.nginx.port}`),
      onUpgrade: () => false,
    });
  });
  after(async () => {
    await front?.close();
    await site?.stop();
    tmp.remove();
  });

  test('pages over h2 equal the same pages over HTTP/1.1 through the front', async () => {
    const session = await h2Connect(front.port, cert);
    try {
      await assertSameAsHttp1(session, front.port, cert, [
        '/',
        '/about.html',
        '/data.bin',
        '/missing',
        '/docs',
      ]);
    } finally {
      session.close();
    }
  });

  test('the upstream gets Host rewritten, no pseudo-headers, one Cookie field', async () => {
    const session = await h2Connect(front.port, cert);
    try {
      const r = await h2Request(session, {
        ':path': '/echo-headers',
        cookie: ['a=1', 'b=2'],
        'x-custom': 'kept',
      });
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), `host=127.0.0.1:${site.nginx.port} cookie=a=1; b=2 x=kept\n`);
    } finally {
      session.close();
    }
  });

  test('a repeated Set-Cookie from the upstream arrives as two fields', async () => {
    const session = await h2Connect(front.port, cert);
    try {
      const r = await h2Request(session, { ':path': '/cookies' });
      assert.equal(r.status, 204);
      assert.deepEqual(
        r.headers.filter(([k]) => k === 'set-cookie'),
        [
          ['set-cookie', 'a=1'],
          ['set-cookie', 'b=2'],
        ],
      );
    } finally {
      session.close();
    }
  });
});
