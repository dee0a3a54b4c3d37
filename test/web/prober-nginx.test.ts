/**
 * What a censor's prober sends to a web server, against Debian's nginx 1.22 serving the same
 * directory (the `dir:` decoy) and started in the test: every case is sent to both, and the answers
 * must match byte for byte (Date values and ports masked) with the same close behaviour. The
 * builtin decoy claims nginx too (`Server: nginx`, nginx's error pages): its error answers are
 * compared the same way. Cases marked `differs` are the differences docs/web-front.md lists ("What
 * a prober can still tell"); they are checked to still differ, so a fix shows up here.
 *
 * Also the timeouts, bounded: a connection that sends nothing and one whose headers trickle in are
 * closed by both, without a byte, about client_header_timeout (2 s here) after they opened.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { builtinDecoy, dirDecoy } from '../../src/server/web/decoy.js';
import { startWebFront, type WebFront } from '../../src/server/web/front.js';
import { mask, nginxServingSite, nginxSkip, splitResponse } from './fixtures.js';

interface Probe {
  text: string;
  close: 'open' | 'fin' | 'rst';
  /** ms from connect to the peer's close (undefined when still open). */
  closedAfterMs?: number | undefined;
}

/** Send `chunks` (`gapMs` apart, then FIN when `halfClose`); collect until close or `idleMs` of silence. */
function probe(
  port: number,
  chunks: readonly (string | Buffer)[],
  opts: { gapMs?: number | undefined; halfClose?: boolean | undefined; idleMs?: number } = {},
): Promise<Probe> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    let close: Probe['close'] = 'open';
    let closedAfterMs: number | undefined;
    const started = Date.now();
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => s.destroy(), opts.idleMs ?? 800); // generous: a loaded machine
    };
    s.once('connect', async () => {
      for (const c of chunks) {
        if (s.destroyed) break;
        s.write(c);
        if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
      }
      if (opts.halfClose && !s.destroyed) s.end();
      arm();
    });
    s.on('data', (d: Buffer) => {
      got.push(d);
      arm();
    });
    s.on('end', () => {
      close = 'fin';
      closedAfterMs = Date.now() - started;
      s.end();
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
        close = 'rst';
        closedAfterMs ??= Date.now() - started;
      }
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(got).toString('latin1'), close, closedAfterMs });
    });
  });
}

const H = 'Host: example.org\r\n';
const get = (target: string, extra = '', version = '1.1'): string =>
  `GET ${target} HTTP/${version}\r\n${H}${extra}\r\n`;
const lines = (n: number, line: string): string => line.repeat(n);

interface Case {
  name: string;
  send: string | Buffer | readonly (string | Buffer)[];
  gapMs?: number;
  halfClose?: boolean;
  /** Why the front still answers otherwise (docs/web-front.md's table). */
  differs?: string;
}

const CASES: readonly Case[] = [
  // Methods: nginx takes [A-Z_-]+ and answers an unknown one 405 (static files), keeping the connection.
  { name: 'unknown method FOO', send: `FOO / HTTP/1.1\r\n${H}\r\n` },
  { name: 'unknown method on a missing path', send: `FOO /nope HTTP/1.1\r\n${H}\r\n` },
  { name: 'unknown method with _ and -', send: `FOO_BAR-X /nope HTTP/1.1\r\n${H}\r\n` },
  { name: 'unknown method, 100 letters', send: `${'A'.repeat(100)} / HTTP/1.1\r\n${H}\r\n` },
  { name: 'unknown method, then a kept-alive GET', send: `FOO / HTTP/1.1\r\n${H}\r\n` + get('/robots.txt') },
  {
    name: 'unknown method with a body, then a GET',
    send: `FOO / HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc` + get('/robots.txt'),
  },
  {
    name: 'unknown method with Upgrade',
    send: `FOO /nope HTTP/1.1\r\n${H}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
  },
  { name: 'lower-case method', send: `get / HTTP/1.1\r\n${H}\r\n` },
  { name: 'mixed-case method', send: `Get / HTTP/1.1\r\n${H}\r\n` },
  { name: 'digit in method', send: `G3T / HTTP/1.1\r\n${H}\r\n` },
  { name: 'M-SEARCH', send: `M-SEARCH / HTTP/1.1\r\n${H}\r\n` },
  { name: 'DELETE', send: `DELETE /robots.txt HTTP/1.1\r\n${H}\r\n` },
  { name: 'CONNECT', send: `CONNECT example.org:443 HTTP/1.1\r\n${H}\r\n` },
  { name: 'OPTIONS *', send: `OPTIONS * HTTP/1.1\r\n${H}\r\n` },
  // Versions: nginx reads them by value.
  ...['1.2', '1.9', '1.10', '1.999', '1.01', '1.00', '1.0001'].map((v) => ({
    name: `HTTP/${v}`,
    send: get('/', '', v),
  })),
  ...['2.0', '3.0', '10.0', '100.0', '2.1000'].map((v) => ({ name: `HTTP/${v}`, send: get('/nope', '', v) })),
  ...['1.1000', '01.1', '1', '1.', 'a.1', '1.1a', '0.9', '0.10'].map((v) => ({
    name: `HTTP/${v}`,
    send: get('/nope', '', v),
  })),
  { name: 'lower-case http/1.1', send: `GET / http/1.1\r\n${H}\r\n` },
  { name: 'spaces after the version', send: `GET /robots.txt HTTP/1.1  \r\n${H}\r\n` },
  { name: 'two spaces between parts', send: `GET  /robots.txt  HTTP/1.1\r\n${H}\r\n` },
  { name: 'tab between parts', send: `GET\t/robots.txt HTTP/1.1\r\n${H}\r\n` },
  { name: 'empty lines before the request', send: `\r\n\r\n${get('/robots.txt')}` },
  // Targets.
  { name: 'absolute URI', send: get('http://example.org/robots.txt') },
  { name: 'absolute URI naming another host', send: get('http://other.example/nope') },
  { name: 'absolute https URI without path', send: get('https://example.org') },
  { name: 'target without a slash', send: get('robots.txt') },
  { name: 'target with ..', send: get('/../etc/passwd') },
  { name: 'target with a fragment', send: get('/robots.txt#x') },
  { name: 'target with 8-bit bytes', send: get('/caf\xe9') },
  { name: 'NUL in the target', send: get('/a\x00b') },
  { name: 'control byte in the target', send: get('/a\x01b') },
  { name: 'space in the target', send: get('/a b') },
  { name: 'target of 8 KiB (fits nginx buffer)', send: get('/' + 'a'.repeat(8176)) },
  { name: 'target over 8 KiB: 414', send: get('/' + 'a'.repeat(8177)) },
  { name: 'target of 20 KiB: 414', send: get('/' + 'a'.repeat(20_000)) },
  { name: 'request line over 8 KiB without its end: 414', send: 'GET /' + 'a'.repeat(9000) },
  // Host.
  { name: 'HTTP/1.1 without Host', send: 'GET / HTTP/1.1\r\n\r\n' },
  { name: 'HTTP/1.0 without Host', send: 'GET /robots.txt HTTP/1.0\r\n\r\n' },
  { name: 'two Host headers', send: get('/', H) },
  { name: 'two different Host headers', send: get('/', 'Host: b\r\n') },
  { name: 'Host with a space', send: 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n' },
  { name: 'empty Host', send: 'GET / HTTP/1.1\r\nHost:\r\n\r\n' },
  // Header sizes.
  { name: 'one header of 8 KiB', send: get('/', `X-A: ${'a'.repeat(8100)}\r\n`) },
  {
    name: 'one header over 8 KiB',
    send: get('/', `X-A: ${'a'.repeat(9000)}\r\n`),
  },
  {
    name: 'headers of 20 KiB in short lines',
    send: get('/', lines(200, `X-A: ${'a'.repeat(95)}\r\n`)),
  },
  { name: 'headers of 40 KiB', send: get('/', lines(400, `X-A: ${'a'.repeat(95)}\r\n`)) },
  // nginx's edges, measured: a header line of 8192 bytes with its CRLF, ~32 KiB of lines, 1000 lines.
  { name: 'a header line of 8192 bytes', send: get('/', `X-A: ${'a'.repeat(8185)}\r\n`) },
  { name: 'a header line of 8193 bytes', send: get('/', `X-A: ${'a'.repeat(8186)}\r\n`) },
  { name: '32640 bytes of header lines', send: get('/', lines(320, `X-A: ${'a'.repeat(95)}\r\n`)) },
  { name: '33660 bytes of header lines', send: get('/', lines(330, `X-A: ${'a'.repeat(95)}\r\n`)) },
  { name: '1000 header lines', send: get('/', lines(999, 'X: y\r\n')) },
  { name: '1001 header lines', send: get('/', lines(1000, 'X: y\r\n')) },
  {
    name: '3000 tiny headers',
    send: get('/', lines(3000, 'X: y\r\n')),
  },
  // Header syntax.
  { name: 'space in a header name', send: get('/', 'Foo Bar: x\r\n') },
  { name: 'space before the colon', send: get('/', 'Foo : x\r\n') },
  { name: 'underscore in a header name', send: get('/', 'Foo_Bar: x\r\n') },
  { name: '8-bit header value', send: get('/', 'Foo: a\xffb\r\n') },
  { name: 'NUL in a header value', send: get('/', 'Foo: a\x00b\r\n') },
  { name: 'folded header line', send: get('/', 'Foo: a\r\n b\r\n') },
  { name: 'empty header name', send: get('/', ': x\r\n') },
  {
    name: 'header line without a colon',
    send: get('/', 'Foo\r\n'),
    differs: 'nginx ignores the line (ignore_invalid_headers); Node refuses the request (400, close)',
  },
  {
    name: '@ in a header name',
    send: get('/', 'Fo@o: x\r\n'),
    differs: 'nginx ignores the header; Node refuses the request (400, close)',
  },
  {
    name: 'control byte in a header value',
    send: get('/', 'Foo: a\x01b\r\n'),
    differs: 'nginx takes it; Node refuses the request (400, close)',
  },
  // Line ends.
  { name: 'bare LF line ends', send: 'GET /robots.txt HTTP/1.1\nHost: example.org\n\n' },
  { name: 'bare LF line ends, HTTP/1.0, no headers', send: 'GET /robots.txt HTTP/1.0\n\n' },
  {
    name: 'CRLF request line, bare LF after the headers',
    send: `GET /robots.txt HTTP/1.1\r\n${H}\n`,
    differs:
      'nginx takes a bare LF anywhere; the front reads bare-LF heads only when the request line ends so',
  },
  { name: 'bare CR', send: `GET /robots.txt HTTP/1.1\r${H}\r\n` },
  // Bodies and transfer codings.
  {
    name: 'Transfer-Encoding and Content-Length',
    send: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n`,
  },
  {
    name: 'Transfer-Encoding on HTTP/1.0',
    send: `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  },
  {
    name: 'Transfer-Encoding twice',
    send: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  },
  {
    name: 'Transfer-Encoding: chunked, chunked',
    send: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`,
    differs: "nginx: 501 (a coding list it does not know); Node's parser: 400",
  },
  {
    name: 'Transfer-Encoding: Chunked',
    send: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n`,
  },
  { name: 'Transfer-Encoding: gzip', send: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n` },
  { name: 'a bad chunk', send: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n` },
  {
    name: 'two different Content-Length',
    send: `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`,
  },
  { name: 'negative Content-Length', send: `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n` },
  { name: 'Expect: 100-continue on a file', send: get('/', 'Expect: 100-continue\r\n') },
  {
    name: 'Expect: 100-continue on a 404 with a body',
    send: `POST /nope HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n`,
  },
  // Connection handling.
  { name: 'a request in 1-byte writes', send: [...get('/robots.txt')], gapMs: 2 },
  { name: 'an unknown method in 1-byte writes', send: [...`FOO /nope HTTP/1.1\r\n${H}\r\n`], gapMs: 2 },
  { name: 'two pipelined requests', send: get('/robots.txt') + get('/nope') },
  { name: 'FIN after the request', send: get('/robots.txt'), halfClose: true },
  { name: 'FIN inside the headers', send: `GET /robots.txt HTTP/1.1\r\n${H}`, halfClose: true },
  { name: 'FIN inside the request line', send: 'GET /robots.t', halfClose: true },
  { name: 'Connection: close', send: get('/robots.txt', 'Connection: close\r\n') },
  { name: 'HTTP/1.0 keep-alive', send: 'GET /robots.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' },
  {
    name: 'HTTP/0.9 (no version)',
    send: 'GET /robots.txt\r\n',
    differs: 'nginx sends the body alone, then closes; Node waits for a version (nothing sent)',
  },
  // Not HTTP.
  {
    name: 'TLS ClientHello on the plain port',
    send: Buffer.from('16030100a5010000a10303' + '00'.repeat(32) + '000002c02f01000076', 'hex'),
  },
  { name: 'SSH banner', send: 'SSH-2.0-OpenSSH_8.9\r\n' },
  { name: 'binary garbage', send: Buffer.from('8a7f3c0011223344', 'hex') },
  { name: 'HTTP/2 preface', send: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' },
  { name: 'empty lines only', send: '\r\n\r\n\r\n' },
];

const chunksOf = (c: Case): readonly (string | Buffer)[] =>
  Array.isArray(c.send) ? c.send : [c.send as string | Buffer];

describe('what a prober sends, answered as nginx 1.22 answers it', { skip: nginxSkip() }, () => {
  let site: Awaited<ReturnType<typeof nginxServingSite>>;
  let front: WebFront;
  let builtin: WebFront;
  before(async () => {
    site = await nginxServingSite('prober', 'client_header_timeout 2s; keepalive_timeout 2s;');
    const common = {
      host: '127.0.0.1',
      port: 0,
      secretPath: '/pr0be-secret',
      onUpgrade: () => false,
      headersTimeoutMs: 2000,
      keepAliveTimeoutMs: 2000,
    };
    front = await startWebFront({ ...common, decoy: dirDecoy(site.root) });
    builtin = await startWebFront({ ...common, decoy: builtinDecoy({ seed: 'prober' }) });
  });
  after(async () => {
    await front?.close();
    await builtin?.close();
    await site?.stop();
  });

  // Several at once: each waits for 800 ms of silence.
  describe('request shapes', { concurrency: 6 }, () => {
    for (const c of CASES)
      test(c.differs ? `${c.name} (still differs)` : c.name, async () => {
        const opts = { gapMs: c.gapMs, halfClose: c.halfClose };
        const [theirs, ours, built] = await Promise.all([
          probe(site.nginx.port, chunksOf(c), opts),
          probe(front.port, chunksOf(c), opts),
          probe(builtin.port, chunksOf(c), opts),
        ]);
        const ports = [site.nginx.port, front.port, builtin.port];
        const want = { text: mask(theirs.text, ports), close: theirs.close };
        const got = { text: mask(ours.text, ports), close: ours.close };
        if (c.differs) {
          assert.notDeepEqual(
            got,
            want,
            `now matches nginx: move "${c.name}" out of docs/web-front.md's table`,
          );
          return;
        }
        assert.deepEqual(got, want);
        // The builtin decoy's pages are its own, its error answers nginx's.
        if (
          !/^HTTP\/1\.1 [123]\d\d /m.test(theirs.text) &&
          (theirs.text === '' || splitResponse(theirs.text).status >= 400)
        )
          assert.deepEqual({ text: mask(built.text, ports), close: built.close }, want, 'builtin decoy');
      });
  });

  // Both close without a byte about 2 s after the last request (keepalive_timeout) or after the
  // connection opened (client_header_timeout); Node checks its deadlines once a second.
  const TIMED: { name: string; chunks: string[]; gapMs?: number; withinMs?: number }[] = [
    // One deadline for line and headers together: the front's used to restart at the line's end.
    {
      name: 'a request line, then headers, trickled in',
      chunks: [...'GET / HTTP/1.1\r\n', ...Array.from({ length: 10 }, (_, i) => `X-${i}: y\r\n`)],
      gapMs: 100,
      withinMs: 3300,
    },
    { name: 'a connection that sends nothing', chunks: [] },
    { name: 'a request line trickled in', chunks: [...'GET /robots.txt HT'], gapMs: 250 },
    {
      name: 'headers trickled in',
      chunks: ['GET / HTTP/1.1\r\n', ...Array.from({ length: 10 }, (_, i) => `X-${i}: y\r\n`)],
      gapMs: 500,
    },
  ];
  for (const t of TIMED)
    test(`${t.name}: both close it silently at the header timeout`, async () => {
      const opts = { gapMs: t.gapMs, idleMs: 6000 };
      const [theirs, ours] = await Promise.all([
        probe(site.nginx.port, t.chunks, opts),
        probe(front.port, t.chunks, opts),
      ]);
      for (const [who, p] of [
        ['nginx', theirs],
        ['front', ours],
      ] as const) {
        assert.equal(p.text, '', `${who} sent nothing`);
        assert.notEqual(p.close, 'open', `${who} closed`);
        assert.ok(
          p.closedAfterMs! >= 1500 && p.closedAfterMs! <= (t.withinMs ?? 4500),
          `${who} closed after ${p.closedAfterMs} ms`,
        );
      }
    });

  test('an idle kept-alive connection: both close it silently at the keep-alive timeout', async () => {
    const opts = { idleMs: 6000 };
    const [theirs, ours] = await Promise.all([
      probe(site.nginx.port, [get('/nope')], opts),
      probe(front.port, [get('/nope')], opts),
    ]);
    for (const [who, p] of [
      ['nginx', theirs],
      ['front', ours],
    ] as const) {
      assert.match(p.text, /^HTTP\/1\.1 404 /, who);
      assert.notEqual(p.close, 'open', `${who} closed`);
      assert.ok(
        p.closedAfterMs! >= 1500 && p.closedAfterMs! <= 4500,
        `${who} closed after ${p.closedAfterMs} ms`,
      );
    }
  });
});
