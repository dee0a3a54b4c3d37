/**
 * HTTP/2 for the decoy on the TLS web port (ALPN h2 + http/1.1), against Debian's nginx with
 * `ssl http2` serving the same directory with the same certificate: the same pages over h2 (status,
 * header fields in order, bodies; Date and ports masked), bodies byte-equal to what HTTP/1.1
 * gets, the secret path a plain 404 over h2, nginx's SETTINGS and connection window, curl
 * --http2, WebSocket clients (no ALPN, or http/1.1) still reaching the endpoints, and a stream
 * whose body never comes closed once answered, as nginx closes it.
 * Negative controls: with `h2: false` ALPN h2 is not negotiated; Node's default h2 SETTINGS
 * differ from nginx's (so the SETTINGS comparison can fail).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { dirDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { which } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { echoEndpoint, nginxSkip, opensslSkip } from './fixtures.js';
import {
  FRAME,
  H2_HOST,
  assertSameAsHttp1,
  h2Connect,
  h2Fingerprint,
  h2Request,
  h2StalledPost,
  negotiatedAlpn,
  nginxH2Site,
  serverFrames,
  type H2Answer,
  type H2Frame,
  type H2Site,
} from './h2-fixtures.js';

const SECRET = '/q1-h2-secret';
const run = promisify(execFile);
const skip = nginxSkip() || opensslSkip();

/** Requests compared over h2: pseudo-headers and fields (GET https://H2_HOST/ by default), a body. */
const REQUESTS: Array<{ h: http2.OutgoingHttpHeaders; body?: string }> = [
  {
    h: {
      ':path': '/',
      'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
      accept: 'text/html',
    },
  },
  { h: { ':path': '/', ':method': 'HEAD' } },
  { h: { ':path': '/about.html' } },
  { h: { ':path': '/css/site.css' } },
  { h: { ':path': '/img/logo.png' } },
  { h: { ':path': '/robots.txt' } },
  { h: { ':path': '/favicon.ico' } },
  { h: { ':path': '/missing' } },
  { h: { ':path': '/missing', ':method': 'HEAD' } },
  { h: { ':path': '/docs' } },
  { h: { ':path': '/docs?x=1' } },
  { h: { ':path': '/docs/' } },
  { h: { ':path': '/empty/' } },
  { h: { ':path': '/css/../index.html' } },
  { h: { ':path': '/../etc/passwd' } },
  { h: { ':path': '/a%00b' } },
  { h: { ':path': '/', ':method': 'POST', 'content-length': '5' }, body: 'hello' },
  { h: { ':path': '/', ':method': 'OPTIONS' } },
  { h: { ':path': '/x', ':method': 'PUT' }, body: '' },
  { h: { ':path': '/', 'if-none-match': '"69b529dd-5b"' } },
  { h: { ':path': '/data.bin', range: 'bytes=10-19' } },
  { h: { ':path': '/data.bin', range: 'bytes=5000-' } },
  { h: { ':path': `${SECRET}/tcp` } },
  { h: { ':path': SECRET } },
  { h: { ':method': 'CONNECT', ':authority': 'example.com:443', ':path': undefined, ':scheme': undefined } },
  { h: { ':path': '/', expect: 'something-else' } },
  // :authority as nginx 1.22 reads it: a Host header (so both together are two), validated.
  { h: { ':path': '/docs', ':authority': 'Example.COM:99' } },
  { h: { ':path': '/docs', ':authority': 'a..b' } },
  { h: { ':path': '/docs', ':authority': 'x', host: 'y' } },
  { h: { ':path': '/docs', ':authority': 'a..b', host: 'y' } },
  { h: { ':path': '/docs', ':authority': undefined, host: 'Hh.example' } },
];

/** What may differ between two servers: the Date value and the listening port in Location. */
function masked(a: H2Answer, ports: number[]): string {
  const headers = a.headers.map(
    ([k, v]) =>
      `${k}: ${k === 'date' ? '<date>' : ports.reduce((t, p) => t.split(`:${p}`).join(':<port>'), v)}`,
  );
  return [String(a.status), ...headers, '', a.body.toString('latin1')].join('\n');
}

describe('the decoy over HTTP/2 matches nginx with http2', { skip }, () => {
  let site: H2Site;
  let front: WebFront;
  let off: WebFront;
  const seen: string[] = [];
  const endpoint = echoEndpoint(SECRET, seen);
  before(async () => {
    site = await nginxH2Site('h2-decoy');
    const tlsCreds = { cert: site.cert, key: site.key };
    const common = {
      port: 0,
      host: '127.0.0.1',
      secretPath: SECRET,
      tls: tlsCreds,
      onUpgrade: endpoint.onUpgrade,
    };
    front = await startWebFront({ ...common, decoy: dirDecoy(site.root) });
    off = await startWebFront({ ...common, decoy: dirDecoy(site.root), h2: false });
  });
  after(async () => {
    endpoint.close();
    await front?.close();
    await off?.close();
    await site?.stop();
  });

  test('ALPN: h2 when offered, http/1.1 when only that is offered, none when none is offered', async () => {
    assert.equal(front.h2, true);
    assert.equal(await negotiatedAlpn(front.port, site.cert, ['h2', 'http/1.1']), 'h2');
    assert.equal(
      await negotiatedAlpn(front.port, site.cert, ['http/1.1', 'h2']),
      'h2',
      'the server prefers h2, as nginx does',
    );
    assert.equal(await negotiatedAlpn(front.port, site.cert, ['http/1.1']), 'http/1.1');
    assert.equal(await negotiatedAlpn(front.port, site.cert, undefined), false);
    assert.equal(
      await negotiatedAlpn(site.nginx.port, site.cert, ['h2', 'http/1.1']),
      'h2',
      'nginx offers h2 too',
    );
  });

  test('negative control: with h2 off, ALPN h2 is not negotiated', async () => {
    assert.equal(off.h2, false);
    assert.equal(await negotiatedAlpn(off.port, site.cert, ['h2', 'http/1.1']), 'http/1.1');
    await assert.rejects(h2Connect(off.port, site.cert), 'an h2-only client cannot talk to it');
  });

  test('every request gets what nginx answers over h2 (status, fields in order, body)', async () => {
    const [ours, theirs] = await Promise.all([
      h2Connect(front.port, site.cert),
      h2Connect(site.nginx.port, site.cert),
    ]);
    try {
      const ports = [front.port, site.nginx.port];
      for (const r of REQUESTS) {
        const [a, b] = await Promise.all([h2Request(ours, r.h, r.body), h2Request(theirs, r.h, r.body)]);
        assert.equal(masked(a, ports), masked(b, ports), JSON.stringify(r.h));
      }
    } finally {
      ours.close();
      theirs.close();
    }
  });

  test('bodies over h2 are byte-equal to the same decoy over HTTP/1.1', async () => {
    const session = await h2Connect(front.port, site.cert);
    try {
      await assertSameAsHttp1(session, front.port, site.cert, [
        '/',
        '/about.html',
        '/img/logo.png',
        '/data.bin',
        '/missing',
        '/docs',
      ]);
    } finally {
      session.close();
    }
  });

  test('the secret path over h2 is the 404 of any wrong path; onUpgrade is never asked', async () => {
    const session = await h2Connect(front.port, site.cert);
    try {
      const wrong = await h2Request(session, { ':path': '/wp-login.php' });
      assert.equal(wrong.status, 404);
      for (const path of [SECRET, `${SECRET}/tcp`, `${SECRET}/udp`, `${SECRET}/tcp?ed=2048`]) {
        const r = await h2Request(session, {
          ':path': path,
          'sec-websocket-version': '13',
          'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        });
        assert.equal(masked(r, []), masked(wrong, []), path);
      }
      assert.equal(seen.length, 0);
    } finally {
      session.close();
    }
  });

  test('no Node signature in any h2 answer; no connection-specific fields', async () => {
    const session = await h2Connect(front.port, site.cert);
    try {
      for (const r of REQUESTS.slice(0, 12)) {
        const a = await h2Request(session, r.h, r.body);
        const text = masked(a, []);
        assert.doesNotMatch(
          text,
          /express|x-powered-by|\bnode\b|node\.js|undici|keep-alive|connection:|transfer-encoding/i,
        );
        assert.equal(a.headers[0]?.[0], 'server');
        assert.equal(a.headers[0]?.[1], 'nginx');
      }
    } finally {
      session.close();
    }
  });

  test("the SETTINGS frame and connection window are nginx's", async () => {
    const [ours, theirs] = await Promise.all([
      serverFrames(front.port, site.cert),
      serverFrames(site.nginx.port, site.cert),
    ]);
    const fp = h2Fingerprint(ours);
    assert.deepEqual(fp, h2Fingerprint(theirs));
    assert.deepEqual(fp, { settings: '3=128;4=65536;5=16777215', windowUpdate: 2147418112 });
    assert.ok(
      ours.some((f) => f.type === FRAME.SETTINGS && f.flags === 1),
      'our SETTINGS acknowledged',
    );
  });

  test("the body ends like nginx's: END_STREAM on the last DATA frame, no empty frame after it", async () => {
    const layout = (frames: H2Frame[]): string =>
      frames
        .filter((f) => f.stream === 1 && f.type === FRAME.DATA)
        .map((f) => `DATA${f.flags & 1 ? '+END' : ''}:${f.payload.length}`)
        .join(' ');
    for (const path of ['/about.html', '/data.bin', '/missing']) {
      const [ours, theirs] = await Promise.all([
        serverFrames(front.port, site.cert, 400, path),
        serverFrames(site.nginx.port, site.cert, 400, path),
      ]);
      assert.equal(layout(ours), layout(theirs), path);
      assert.match(layout(ours), /DATA\+END:[1-9]/, path);
    }
  });

  test("negative control: Node's default h2 server has another fingerprint", async () => {
    const plain = http2.createSecureServer({ cert: site.cert, key: site.key });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    try {
      const fp = h2Fingerprint(await serverFrames((plain.address() as AddressInfo).port, site.cert));
      assert.notDeepEqual(fp, h2Fingerprint(await serverFrames(site.nginx.port, site.cert)));
    } finally {
      await new Promise((r) => plain.close(r));
    }
  });

  test(
    'curl --http2 and --http1.1 get the same page',
    { skip: skipUnless(which('curl') !== undefined, 'curl missing (apt-get install curl)') },
    async () => {
      const caFile = `${site.nginx.dir}/front-ca.pem`;
      writeFileSync(caFile, site.cert);
      const url = `https://${H2_HOST}:${front.port}/about.html`;
      const curl = async (version: string): Promise<string> =>
        (
          await run('curl', [
            '-sS',
            '--cacert',
            caFile,
            '--resolve',
            `${H2_HOST}:${front.port}:127.0.0.1`,
            '-w',
            '\n%{http_version}',
            '--max-time',
            '10',
            version,
            url,
          ])
        ).stdout;
      try {
        const [two, one] = await Promise.all([curl('--http2'), curl('--http1.1')]);
        assert.match(two, /\n2$/);
        assert.match(one, /\n1\.1$/);
        assert.equal(two.replace(/\n2$/, ''), one.replace(/\n1\.1$/, ''));
        assert.equal(two.replace(/\n2$/, ''), '<p>About us</p>\n');
      } finally {
        rmSync(caFile, { force: true });
      }
    },
  );

  test('WebSocket over TLS on the h2 port: clients offering no ALPN or http/1.1 reach the endpoint', async () => {
    for (const ALPNProtocols of [undefined, ['http/1.1']]) {
      const payload = Buffer.from('ladder over wss');
      const got = await new Promise<Buffer>((resolve, reject) => {
        const options = { ca: site.cert, servername: H2_HOST, ...(ALPNProtocols ? { ALPNProtocols } : {}) };
        const ws = new WebSocket(`wss://127.0.0.1:${front.port}${SECRET}/tcp`, options);
        ws.on('open', () => ws.send(payload));
        ws.on('message', (m: Buffer) => {
          resolve(m);
          ws.close();
        });
        ws.on('error', reject);
      });
      assert.deepEqual(got, payload);
    }
    assert.equal(seen.length, 2);
  });

  test('a stream whose body never comes ends as soon as the decoy has answered, as with nginx', async () => {
    // Neither holds such a stream open (the request deadline matters only while the answer waits
    // for the body: test/web/h2-proxy.test.ts).
    const closes = async (port: number): Promise<string> => {
      const session = await h2Connect(port, site.cert);
      try {
        const s = h2StalledPost(session, '/');
        return await Promise.race([
          new Promise<string>((r) => s.once('close', () => r(`closed, RST code ${s.rstCode}`))),
          new Promise<string>((r) => setTimeout(() => r('still open'), 3000)),
        ]);
      } finally {
        session.destroy();
      }
    };
    assert.equal(await closes(front.port), await closes(site.nginx.port));
  });

  test('an idle h2 connection gets GOAWAY after the keep-alive timeout', async () => {
    const quick = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: SECRET,
      tls: { cert: site.cert, key: site.key },
      decoy: dirDecoy(site.root),
      onUpgrade: () => false,
      keepAliveTimeoutMs: 300,
    });
    try {
      const frames = await serverFrames(quick.port, site.cert, 3000);
      assert.ok(
        frames.some((f) => f.type === FRAME.GOAWAY),
        'GOAWAY sent',
      );
    } finally {
      await quick.close();
    }
  });
});
