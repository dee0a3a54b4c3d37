/**
 * The `https://upstream` decoy (here http://, to an nginx on loopback; and https:// to a Node TLS
 * server with a chunked, streamed body): what a client gets through the web front must be what
 * it gets from the upstream directly — same status line, same headers in the same order (the
 * upstream's Server and Date), same body, same close behaviour — with Host rewritten to the
 * upstream's and hop-by-hop headers not forwarded.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { proxyDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import {
  decoyComparisonTests,
  exchange,
  makeCert,
  nginxServingSite,
  nginxSkip,
  opensslSkip,
  splitResponse,
  tempDir,
} from './fixtures.js';

describe('proxy decoy matches the upstream (nginx) served directly', { skip: nginxSkip() }, () => {
  let site: Awaited<ReturnType<typeof nginxServingSite>>;
  let front: WebFront;
  before(async () => {
    site = await nginxServingSite(
      'decoy-proxy',
      'location = /echo-headers { default_type text/plain; return 200 "host=$http_host up=$http_upgrade conn=$http_connection te=$http_te x=$http_x_custom\\n"; }',
    );
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/5ecret',
      decoy: proxyDecoy(`http://127.0.0.1:${site.nginx.port}`),
      onUpgrade: () => false,
    });
  });
  after(async () => {
    await front?.close();
    await site?.stop();
  });

  // Requests nginx itself rejects before proxying (garbage, no Host) are the front's own 400,
  // which is nginx's page anyway; they are compared too. Direct requests name nginx as Host,
  // as the proxy does.
  decoyComparisonTests(
    () => ({ front: front.port, direct: site.nginx.port }),
    'www.example.org',
    () => `127.0.0.1:${site.nginx.port}`,
  );

  test('Host is rewritten; Upgrade, Connection and TE are not forwarded; other headers are', async () => {
    const r = await exchange(
      front.port,
      'GET /echo-headers HTTP/1.1\r\nHost: www.example.org\r\nConnection: Upgrade, X-Drop\r\nUpgrade: websocket\r\nTE: trailers\r\nX-Drop: 1\r\nX-Custom: kept\r\n\r\n',
    );
    const { body } = splitResponse(r.text);
    assert.equal(body, `host=127.0.0.1:${site.nginx.port} up= conn=keep-alive te= x=kept\n`);
  });

  test('Expect: 100-continue gets "100 Continue" before the upstream\'s answer, body or not (nginx proxying reads the body first)', async () => {
    // nginx 1.22.1 with proxy_pass: "100 Continue" for every HTTP/1.1 request whose Expect is
    // exactly 100-continue, with or without a body; none for another value. Before: only with a body.
    for (const [req, want] of [
      ['GET /robots.txt HTTP/1.1\r\nHost: www.example.org\r\nExpect: 100-continue\r\n\r\n', true],
      ['GET /missing HTTP/1.1\r\nHost: www.example.org\r\nExpect: 100-continue\r\n\r\n', true],
      [
        'POST /robots.txt HTTP/1.1\r\nHost: www.example.org\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab',
        true,
      ],
      ['GET /robots.txt HTTP/1.1\r\nHost: www.example.org\r\nExpect: 100-continue, x\r\n\r\n', false],
    ] as const) {
      const r = await exchange(front.port, req);
      assert.equal(
        r.text.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 '),
        want,
        JSON.stringify(r.text.slice(0, 60)),
      );
      assert.equal(r.text.split(/(?=HTTP\/1\.1 )/).length, want ? 2 : 1, 'one final answer');
    }
  });
});

describe('proxy decoy to an https upstream streams a chunked body', { skip: opensslSkip() }, () => {
  const tmp = tempDir('decoy-proxy-tls');
  let upstream: https.Server;
  let front: WebFront;
  before(async () => {
    const c = makeCert(tmp.path, 'upstream.test');
    upstream = https.createServer({ cert: c.cert, key: c.key }, (req, res) => {
      res.writeHead(
        200,
        [
          ['Content-Type', 'text/plain'],
          ['X-Seen-Host', req.headers.host ?? ''],
        ].flat(),
      );
      let n = 0;
      const timer = setInterval(() => {
        res.write(`chunk ${n}\n`);
        if (++n === 5) {
          clearInterval(timer);
          res.end();
        }
      }, 20);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    // The URL names the certificate's host; connect to loopback through the agent's lookup.
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/5ecret',
      decoy: proxyDecoy(`https://127.0.0.1:${port}`, { ca: c.cert }),
      onUpgrade: () => false,
    });
  });
  after(async () => {
    await front?.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
    tmp.remove();
  });

  test('body arrives complete, chunked, with the upstream headers', async () => {
    const r = await exchange(front.port, 'GET /stream HTTP/1.1\r\nHost: www.example.org\r\n\r\n', {
      idleMs: 500,
    });
    const { status, headers, body } = splitResponse(r.text);
    assert.equal(status, 200);
    assert.ok(headers.includes('Transfer-Encoding: chunked'));
    assert.ok(headers.some((h) => h.startsWith('X-Seen-Host: 127.0.0.1:')));
    const decoded = body.replace(/\r\n[0-9a-f]+\r\n/g, '').replace(/^[0-9a-f]+\r\n/, '');
    for (let i = 0; i < 5; i++) assert.ok(decoded.includes(`chunk ${i}\n`));
    assert.equal(r.close, 'open');
  });
});

// The upstream may serve more than the decoy shows (`--decoy http://127.0.0.1:8080/blog`): a
// visitor reaches only the prefix. Dot segments that climb above it, plain or percent-encoded,
// get nginx's 400 (as nginx answers them) instead of going to an upstream that resolves them, and
// an absolute-form target goes on as a path (the visitor does not choose the upstream's virtual host).
describe('proxy decoy keeps visitors inside its prefix', () => {
  const seen: string[] = [];
  let upstream: http.Server;
  let front: WebFront;
  before(async () => {
    upstream = http.createServer((req, res) => {
      seen.push(req.url ?? '');
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '3' });
      res.end('ok\n');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/5ecret',
      decoy: proxyDecoy(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}/blog`),
      onUpgrade: () => false,
    });
  });
  after(async () => {
    await front?.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });
  const get = async (target: string): Promise<{ status: number; upstreamSaw: string | undefined }> => {
    seen.length = 0;
    const r = await exchange(front.port, `GET ${target} HTTP/1.1\r\nHost: www.example.org\r\n\r\n`);
    return { status: splitResponse(r.text).status, upstreamSaw: seen[0] };
  };

  test('dot segments within the prefix pass as sent (the control)', async () => {
    assert.deepEqual(await get('/posts/../about.html?x=1'), {
      status: 200,
      upstreamSaw: '/blog/posts/../about.html?x=1',
    });
  });
  for (const target of [
    '/x/../../admin',
    '/../admin',
    '/%2e%2e/admin',
    '/..%2fadmin',
    '/a/%2E%2E%2F..%2Fadmin',
    '*',
  ])
    test(`${target}: 400, the upstream sees nothing`, async () => {
      assert.deepEqual(await get(target), { status: 400, upstreamSaw: undefined });
    });
  test('an absolute-form target reaches the upstream as a path under the prefix', async () => {
    assert.deepEqual(await get('http://intranet.example/admin?y=2'), {
      status: 200,
      upstreamSaw: '/blog/admin?y=2',
    });
    assert.deepEqual(await get('http://intranet.example'), { status: 200, upstreamSaw: '/blog/' });
  });
});
