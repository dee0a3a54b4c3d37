/**
 * The web front with the builtin decoy: what a browser and a prober see, that refused and
 * wrong-path upgrades are indistinguishable from plain requests, that a genuine upgrade on the
 * secret path reaches onUpgrade (a stand-in that accepts with `ws` and echoes), TLS with an
 * openssl-made certificate (ALPN, hot swap), and the slowloris / header-size limits.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { builtinDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { echoEndpoint, exchange, makeCert, mask, opensslSkip, splitResponse, tempDir } from './fixtures.js';

const SECRET = '/k7Qd-93xv';
const UPGRADE =
  'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
const BROWSER_GET =
  'GET / HTTP/1.1\r\nHost: blog.example\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n' +
  'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9\r\n\r\n';

function wsEcho(
  url: string,
  payload: Buffer,
  opts: { ca?: string; servername?: string } = {},
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.servername ? { servername: opts.servername } : {}),
    });
    ws.on('open', () => ws.send(payload));
    ws.on('message', (m: Buffer) => {
      resolve(m);
      ws.close();
    });
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
}

const SIGNATURES = /express|x-powered-by|\bnode\b|node\.js|fastify|koa|hono|undici|keep-alive: timeout/i;

describe('web front with the builtin decoy', () => {
  let front: WebFront;
  const seen: string[] = [];
  const endpoint = echoEndpoint(SECRET, seen);
  before(async () => {
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: SECRET,
      decoy: builtinDecoy({ seed: 'test' }),
      onUpgrade: endpoint.onUpgrade,
    });
  });
  after(async () => {
    endpoint.close();
    await front.close();
  });

  test('a browser-like GET gets a plausible page with nginx-like headers', async () => {
    const r = await exchange(front.port, BROWSER_GET);
    const { status, headers, body } = splitResponse(r.text);
    assert.equal(status, 200);
    assert.deepEqual(
      headers.map((h) => h.split(':')[0]),
      [
        'Server',
        'Date',
        'Content-Type',
        'Content-Length',
        'Last-Modified',
        'Connection',
        'ETag',
        'Accept-Ranges',
      ],
    );
    assert.ok(headers.includes('Server: nginx'));
    assert.ok(headers.includes('Content-Type: text/html'));
    assert.ok(headers.includes('Connection: keep-alive'));
    assert.match(body, /^<!DOCTYPE html>/);
    assert.match(body, /href="\/css\/style\.css"/);
    assert.equal(r.close, 'open');
  });

  test('HEAD, /favicon.ico, /robots.txt, a post and the stylesheet are served; a missing page is nginx 404', async () => {
    const head = splitResponse((await exchange(front.port, 'HEAD / HTTP/1.1\r\nHost: a\r\n\r\n')).text);
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    const ico = splitResponse(
      (await exchange(front.port, 'GET /favicon.ico HTTP/1.1\r\nHost: a\r\n\r\n')).text,
    );
    assert.equal(ico.status, 200);
    assert.ok(ico.headers.includes('Content-Type: image/x-icon'));
    assert.equal(Buffer.from(ico.body, 'latin1').readUInt16LE(2), 1, 'an ICO file');
    const robots = splitResponse(
      (await exchange(front.port, 'GET /robots.txt HTTP/1.1\r\nHost: a\r\n\r\n')).text,
    );
    assert.equal(robots.status, 200);
    assert.ok(robots.headers.includes('Content-Type: text/plain'));
    const css = splitResponse(
      (await exchange(front.port, 'GET /css/style.css HTTP/1.1\r\nHost: a\r\n\r\n')).text,
    );
    assert.ok(css.headers.includes('Content-Type: text/css'));
    const index = splitResponse((await exchange(front.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n')).text);
    const post = /href="(\/posts\/[^"]+)"/.exec(index.body)?.[1];
    assert.ok(post);
    assert.equal(
      splitResponse((await exchange(front.port, `GET ${post} HTTP/1.1\r\nHost: a\r\n\r\n`)).text).status,
      200,
    );
    const missing = splitResponse(
      (await exchange(front.port, 'GET /wp-login.php HTTP/1.1\r\nHost: a\r\n\r\n')).text,
    );
    assert.equal(missing.status, 404);
    assert.match(missing.body, /<center><h1>404 Not Found<\/h1><\/center>\r\n<hr><center>nginx<\/center>/);
  });

  test('wrong-path upgrade, refused upgrade on the secret path and plain GET are answered identically', async () => {
    const plain = await exchange(front.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    const variants = [
      `GET / HTTP/1.1\r\nHost: a\r\n${UPGRADE}\r\n`, // wrong path (the site's own)
      `GET /ws HTTP/1.1\r\nHost: a\r\n${UPGRADE}\r\n`, // wrong path (404)
      `GET ${SECRET} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n`, // bad upgrade, right path
      `GET ${SECRET}/tcp HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, // no key: refused
      `GET ${SECRET}/nope HTTP/1.1\r\nHost: a\r\n${UPGRADE}\r\n`, // below the secret, refused by the handler
      `GET ${SECRET}/tcp HTTP/1.1\r\nHost: a\r\n\r\n`, // the secret path without upgrade
    ];
    const notFound = await exchange(front.port, 'GET /ws HTTP/1.1\r\nHost: a\r\n\r\n');
    const results = await Promise.all(variants.map((v) => exchange(front.port, v)));
    assert.equal(mask(results[0]!.text), mask(plain.text));
    for (const r of results.slice(1)) {
      assert.equal(mask(r.text), mask(notFound.text));
      assert.equal(r.close, notFound.close);
    }
    assert.equal(seen.length, 0, 'onUpgrade took none of them');
  });

  test("an upgrade on the secret path with a Host nginx refuses gets the decoy's 400, as on any path", async () => {
    const bad = ['Host: a..b\r\n', 'Host: a/b\r\n', 'Host: a\r\nHost: b\r\n', 'Host: \r\n'];
    for (const h of bad) {
      const [secret, wrong] = await Promise.all([
        exchange(front.port, `GET ${SECRET}/tcp HTTP/1.1\r\n${h}${UPGRADE}\r\n`),
        exchange(front.port, `GET /ws HTTP/1.1\r\n${h}${UPGRADE}\r\n`),
      ]);
      assert.match(secret.text, /^HTTP\/1\.1 400 Bad Request\r\n/, JSON.stringify(h));
      assert.equal(mask(secret.text), mask(wrong.text), JSON.stringify(h));
      assert.equal(secret.close, wrong.close);
    }
    assert.equal(seen.length, 0, 'onUpgrade took none of them');
    // Control: the same upgrade with a valid Host (an IPv6 literal with its port, as clients send) is taken.
    const ok = await exchange(front.port, `GET ${SECRET}/tcp HTTP/1.1\r\nHost: [::1]:8443\r\n${UPGRADE}\r\n`);
    assert.match(ok.text, /^HTTP\/1\.1 101 /);
    assert.equal(seen.length, 1);
    seen.length = 0;
  });

  test('after a refused upgrade the same connection serves the next (pipelined) request', async () => {
    const r = await exchange(
      front.port,
      `GET ${SECRET}/x HTTP/1.1\r\nHost: a\r\n${UPGRADE}\r\nGET /robots.txt HTTP/1.1\r\nHost: a\r\n\r\n`,
    );
    const responses = r.text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(responses.length, 2);
    assert.match(responses[0]!, /^HTTP\/1\.1 404 /);
    assert.match(responses[1]!, /^HTTP\/1\.1 200 OK[\s\S]*User-agent: \*/);
    assert.equal(r.close, 'open');
  });

  test('bytes after a request that closes the connection: that request is answered, then FIN (as nginx)', async () => {
    // Before, Node's parser called the bytes an error and the connection closed with no answer:
    // nginx answers every one of these with its page (checked against nginx 1.22.1).
    for (const first of [
      'GET / HTTP/1.0\r\n\r\n',
      'GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      `GET ${SECRET}/tcp HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`,
    ]) {
      for (const rest of ['X', 'GET /robots.txt HTTP/1.1\r\nHost: a\r\n\r\n']) {
        const r = await exchange(front.port, first + rest);
        const { status, headers } = splitResponse(r.text);
        assert.equal(
          status,
          first.startsWith('GET / ') ? 200 : 404,
          JSON.stringify({ first, rest, text: r.text.slice(0, 80) }),
        );
        assert.ok(headers.includes('Connection: close'));
        assert.equal(r.text.split(/(?=HTTP\/1\.1 )/).length, 1, 'one answer');
        assert.equal(r.close, 'fin');
      }
    }
  });

  test('Expect gets the page nginx sends for the request without it (no 100 Continue, no 417)', async () => {
    // Before: "HTTP/1.1 100 Continue" and then the page; "Expect: foo" got Node's 417.
    for (const [req, status] of [
      ['POST /nope HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n', 404],
      ['POST /robots.txt HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n', 405],
      ['GET /nope HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n\r\n', 404],
    ] as const) {
      const r = await exchange(front.port, req);
      assert.equal(splitResponse(r.text).status, status, JSON.stringify(r.text.slice(0, 80)));
      assert.equal(r.text.split(/(?=HTTP\/1\.1 )/).length, 1, 'one answer');
    }
  });

  test('bodies nginx refuses: a bad chunk gets the page then FIN, a transfer coding other than chunked 501', async () => {
    // Before: both got no answer at all (Node's parser error destroyed the page in flight, and
    // Node takes "gzip" as a coding); nginx 1.22.1 answers as below.
    const post = (te: string, body: string): string =>
      `POST /nope HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ${te}\r\n\r\n${body}`;
    for (const [req, status, conn] of [
      [post('chunked', 'zz\r\n'), 404, 'close'],
      [post('gzip', ''), 501, 'close'],
      [post('gzip, chunked', '0\r\n\r\n'), 501, 'close'],
      [post('identity', '0\r\n\r\n'), 501, 'close'],
      [post('Chunked', '0\r\n\r\n'), 404, 'keep-alive'],
    ] as const) {
      const r = await exchange(front.port, req);
      const { status: got, headers, body } = splitResponse(r.text);
      assert.equal(got, status, JSON.stringify(req));
      assert.ok(headers.includes(`Connection: ${conn}`), headers.join(' | '));
      if (status === 501) assert.match(body, /<title>501 Not Implemented<\/title>/);
      assert.equal(r.close, conn === 'close' ? 'fin' : 'open');
    }
  });

  test('request lines nginx refuses: OPTIONS * 400, HTTP/2.0 and 3.0 over HTTP/1 505, TRACE 405, each then FIN', async () => {
    // Before: 405 kept alive, 404, Node's 400, 405 kept alive (nginx 1.22.1 as below).
    for (const [req, status] of [
      ['OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET /nope HTTP/2.0\r\nHost: a\r\n\r\n', 505],
      ['GET /nope HTTP/3.0\r\nHost: a\r\n\r\n', 505],
      ['TRACE / HTTP/1.1\r\nHost: a\r\n\r\n', 405],
    ] as const) {
      const r = await exchange(front.port, req);
      const { status: got, headers } = splitResponse(r.text);
      assert.equal(got, status, JSON.stringify(r.text.slice(0, 80)));
      assert.ok(headers.includes('Connection: close'), headers.join(' | '));
      assert.equal(r.close, 'fin');
    }
  });

  test('garbage gets nginx 400 and a close', async () => {
    for (const g of [
      Buffer.from('16030100a5010000a10303', 'hex'),
      Buffer.from('\x00\x01\x02\x03\r\n\r\n'),
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
    ]) {
      const r = await exchange(front.port, g);
      const { status, headers, body } = splitResponse(r.text);
      assert.equal(status, 400, JSON.stringify(r.text));
      assert.ok(headers.includes('Connection: close'));
      assert.match(body, /<title>400 Bad Request<\/title>/);
      assert.equal(r.close, 'fin');
    }
  });

  test('no Node or framework signature in headers or bodies', async () => {
    const paths = ['/', '/about.html', '/css/style.css', '/robots.txt', '/missing', '/favicon.ico'];
    const methods = ['GET', 'HEAD', 'POST', 'OPTIONS', 'DELETE'];
    for (const p of paths)
      for (const m of methods) {
        const r = await exchange(front.port, `${m} ${p} HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n`);
        assert.doesNotMatch(r.text, SIGNATURES, `${m} ${p}`);
      }
    for (const g of [
      'garbage\r\n\r\n',
      `GET /x HTTP/1.1\r\nHost: a\r\n${UPGRADE}\r\n`,
      'GET / HTTP/1.1\r\n\r\n',
    ]) {
      assert.doesNotMatch((await exchange(front.port, g)).text, SIGNATURES);
    }
  });

  test('a WebSocket upgrade on the secret path reaches onUpgrade (echo), query string ignored', async () => {
    const payload = Buffer.from('hello through the front');
    const echoed = await wsEcho(`ws://127.0.0.1:${front.port}${SECRET}/tcp?ed=2048`, payload);
    assert.deepEqual(echoed, payload);
    assert.deepEqual(seen, ['127.0.0.1']);
  });

  test('a slow client that never finishes its headers is closed without an answer', async () => {
    const slow = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: SECRET,
      decoy: builtinDecoy({ seed: 'slow' }),
      onUpgrade: () => false,
      headersTimeoutMs: 1000,
      requestTimeoutMs: 2000,
    });
    try {
      const s = net.connect(slow.port, '127.0.0.1');
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      s.write('GET / HTTP/1.1\r\nHost: a\r\n');
      const timer = setInterval(() => s.write('X-a: b\r\n'), 200);
      const started = Date.now();
      await new Promise((r) => s.once('close', r));
      clearInterval(timer);
      const took = Date.now() - started;
      assert.ok(took >= 900 && took < 4000, `closed after ${took} ms`);
      assert.equal(got, '');
    } finally {
      await slow.close();
    }
  });

  test('headers over the limit get nginx 400 "Request Header Or Cookie Too Large"', async () => {
    const r = await exchange(
      front.port,
      `GET / HTTP/1.1\r\nHost: a\r\nCookie: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    assert.match(r.text, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(r.text, /Request Header Or Cookie Too Large/);
  });
});

describe('web front over TLS (openssl-made certificate)', { skip: opensslSkip() }, () => {
  const tmp = tempDir('front-tls');
  let front: WebFront;
  let a: ReturnType<typeof makeCert>;
  let b: ReturnType<typeof makeCert>;
  const seen: string[] = [];
  const endpoint = echoEndpoint(SECRET, seen);
  before(async () => {
    a = makeCert(tmp.path, 'a.example');
    b = makeCert(tmp.path, 'b.example');
    front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: SECRET,
      tls: { cert: a.cert, key: a.key },
      decoy: builtinDecoy({ seed: 'tls' }),
      onUpgrade: endpoint.onUpgrade,
    });
  });
  after(async () => {
    endpoint.close();
    await front.close();
    tmp.remove();
  });

  test('serves the decoy over TLS, ALPN h2 and http/1.1 (HTTP/2: test/web/h2.test.ts)', async () => {
    const s = tls.connect({
      port: front.port,
      host: '127.0.0.1',
      servername: 'a.example',
      ca: a.cert,
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    await new Promise((r, j) => {
      s.once('secureConnect', r);
      s.once('error', j);
    });
    assert.equal(s.alpnProtocol, 'h2');
    s.destroy();
    const r = await exchange(front.port, 'GET / HTTP/1.1\r\nHost: a.example\r\n\r\n', {
      tls: { servername: 'a.example', ca: a.cert },
    });
    assert.equal(splitResponse(r.text).status, 200);
    const up = await exchange(
      front.port,
      `GET /x HTTP/1.1\r\nHost: a\r\n${UPGRADE}\r\nGET /robots.txt HTTP/1.1\r\nHost: a\r\n\r\n`,
      {
        tls: { servername: 'a.example', ca: a.cert },
      },
    );
    assert.equal(
      up.text.split(/(?=HTTP\/1\.1 )/).length,
      2,
      'TLS socket handed back after a refused upgrade',
    );
  });

  test('wss on the secret path reaches onUpgrade', async () => {
    const payload = Buffer.from([1, 2, 3, 4, 5]);
    assert.deepEqual(
      await wsEcho(`wss://127.0.0.1:${front.port}${SECRET}/tcp`, payload, {
        ca: a.cert,
        servername: 'a.example',
      }),
      payload,
    );
  });

  test('setTlsCredentials swaps the certificate for new connections', async () => {
    front.setTlsCredentials({ cert: b.cert, key: b.key });
    const s = tls.connect({ port: front.port, host: '127.0.0.1', servername: 'b.example', ca: b.cert });
    await new Promise((r, j) => {
      s.once('secureConnect', r);
      s.once('error', j);
    });
    assert.equal(s.getPeerCertificate().subject.CN, 'b.example');
    s.destroy();
  });

  test("plain HTTP on the TLS port gets nginx's 400 pages; a broken handshake just closes", async () => {
    const plain = await exchange(front.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    const { status, headers, body } = splitResponse(plain.text);
    assert.equal(status, 400);
    assert.ok(headers.includes('Connection: close'));
    assert.ok(headers.includes('Content-Length: 248'));
    assert.match(body, /<title>400 The plain HTTP request was sent to HTTPS port<\/title>/);
    assert.equal(plain.close, 'fin');
    const garbage = await exchange(front.port, 'hello\r\n\r\n');
    assert.match(garbage.text, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*Content-Length: 150\r\n/);
    const broken = await exchange(
      front.port,
      Buffer.concat([Buffer.from('1603010005', 'hex'), Buffer.from('hello')]),
    );
    assert.equal(
      broken.text.startsWith('HTTP/'),
      false,
      'at most a TLS alert, as OpenSSL sends for nginx too',
    );
    assert.notEqual(broken.close, 'open');
  });
});
