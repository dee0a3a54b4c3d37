/**
 * The request-line reader ahead of Node's parser (src/server/web/request-line.ts): known answers
 * for the lines it hands on rewritten, passes untouched or refuses; a proxy decoy forwards an
 * unknown method under its own name (as nginx's proxy_pass does); the TLS front reads lines the
 * same way; a genuine WebSocket upgrade on the secret path still reaches the endpoint.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket } from 'ws';
import { builtinDecoy, proxyDecoy } from '../../src/server/web/decoy.js';
import { startWebFront } from '../../src/server/web/front.js';
import { inspectRequestLine, MAX_REQUEST_LINE } from '../../src/server/web/request-line.js';
import { echoEndpoint, exchange, makeCert, opensslSkip, splitResponse, tempDir } from './fixtures.js';

const verdict = (text: string): string => {
  const v = inspectRequestLine(Buffer.from(text, 'latin1'));
  if (v.kind === 'rewrite')
    return `rewrite ${JSON.stringify(v.bytes.toString('latin1'))}${v.method ? ` as ${v.method}` : ''}`;
  return v.kind === 'refuse' ? `refuse ${v.status}` : v.kind;
};

describe('inspectRequestLine: known answers', () => {
  const cases: [string, string][] = [
    ['GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'pass'],
    ['GET /x HTTP/1.0\r\n\r\n', 'pass'],
    ['FOO /x HTTP/1.1\r\nHost: a\r\n\r\n', 'rewrite "PROPFIND /x HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n" as FOO'],
    ['FOO_BAR-1 / HTTP/1.1\r\n', 'pass'], // a digit: not nginx's method either (400 from Node)
    ['GET / HTTP/1.2\r\nHost: a\r\n\r\n', 'rewrite "GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n"'],
    ['GET / HTTP/1.999\r\n', 'rewrite "GET / HTTP/1.1\\r\\n"'],
    ['GET / HTTP/1.1000\r\n', 'pass'],
    ['GET / HTTP/1.00\r\n', 'rewrite "GET / HTTP/1.0\\r\\n"'],
    ['GET / HTTP/10.0\r\n', 'rewrite "GET / HTTP/2.0\\r\\n"'],
    ['GET / HTTP/01.1\r\n', 'pass'],
    ['GET / HTTP/1.1  \r\n', 'rewrite "GET / HTTP/1.1\\r\\n"'],
    ['GET /caf\xe9 HTTP/1.1\r\n', 'rewrite "GET /caf%E9 HTTP/1.1\\r\\n"'],
    ['\r\nGET / HTTP/1.3\r\n', 'rewrite "\\r\\nGET / HTTP/1.1\\r\\n"'],
    ['GET / HTTP/1.1\nHost: a\n\nGET', 'rewrite "GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\nGET"'],
    ['GET / HTTP/1.1\nHost: a\n', 'more'],
    ['GET / HTTP/1.1', 'more'],
    ['FOO', 'more'],
    ['get / HTTP/1.1\r\n', 'pass'],
    ['\x16\x03\x01\x00', 'pass'],
    ['GET /\r\n', 'pass'],
    ['GET /' + 'a'.repeat(MAX_REQUEST_LINE - 16) + ' HTTP/1.1\r\n', 'pass'],
    ['GET /' + 'a'.repeat(MAX_REQUEST_LINE - 15) + ' HTTP/1.1\r\n', 'refuse 414'],
    ['GET /' + 'a'.repeat(MAX_REQUEST_LINE), 'refuse 414'],
    ['A'.repeat(MAX_REQUEST_LINE), 'refuse 414'],
  ];
  for (const [input, want] of cases)
    test(JSON.stringify(input.slice(0, 40)), () => assert.equal(verdict(input), want));
});

describe('the front with the reader', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  test('a proxy decoy forwards an unknown method under its own name', async () => {
    // A raw upstream (Node's own parser would refuse FOO): records each request line, answers 200.
    const seen: string[] = [];
    const upstream = net.createServer((s) => {
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        let end: number;
        while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
          const line = buf.slice(0, buf.indexOf('\r\n'));
          buf = buf.slice(end + 4);
          if (!/^[A-Z]+ /.test(line)) continue; // a chunked body's last chunk
          seen.push(line);
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nup');
        }
      });
      s.on('error', () => s.destroy());
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => upstream.close(() => r())));
    const port = (upstream.address() as AddressInfo).port;
    const front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/rl-secret',
      decoy: proxyDecoy(`http://127.0.0.1:${port}`),
      onUpgrade: () => false,
    });
    cleanup.push(() => front.close());
    const r = await exchange(
      front.port,
      'FOO /a HTTP/1.2\r\nHost: x\r\n\r\nPROPFIND /b HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    assert.equal(splitResponse(r.text).status, 200);
    assert.deepEqual(seen, ['FOO /a HTTP/1.1', 'PROPFIND /b HTTP/1.1']);
  });

  test(
    'TLS front: an unknown method gets 405 and the connection stays',
    { skip: opensslSkip() },
    async () => {
      const dir = tempDir('rl-tls');
      cleanup.push(() => dir.remove());
      const cert = makeCert(dir.path, 'rl.example');
      const front = await startWebFront({
        port: 0,
        host: '127.0.0.1',
        secretPath: '/rl-secret',
        tls: { cert: cert.cert, key: cert.key },
        decoy: builtinDecoy({ seed: 'rl' }),
        onUpgrade: () => false,
      });
      cleanup.push(() => front.close());
      const r = await exchange(front.port, 'FOO / HTTP/1.1\r\nHost: rl.example\r\n\r\n', {
        tls: { rejectUnauthorized: false, servername: 'rl.example', ALPNProtocols: ['http/1.1'] },
      });
      assert.match(r.text, /^HTTP\/1\.1 405 Not Allowed\r\n/);
      assert.equal(r.close, 'open');
    },
  );

  test('a WebSocket upgrade on the secret path still reaches the endpoint', async () => {
    const ws = echoEndpoint('/rl-secret', []);
    cleanup.push(() => ws.close());
    const front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/rl-secret',
      decoy: builtinDecoy({ seed: 'rl' }),
      onUpgrade: ws.onUpgrade,
    });
    cleanup.push(() => front.close());
    const client = new WebSocket(`ws://127.0.0.1:${front.port}/rl-secret/tcp`);
    const echoed = await new Promise<string>((resolve, reject) => {
      client.once('open', () => client.send('ping'));
      client.once('message', (m: Buffer) => resolve(m.toString()));
      client.once('error', reject);
    });
    client.close();
    assert.equal(echoed, 'ping');
  });

  test('empty lines before a request are skipped as they come, not kept (review21); one close listener per socket', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const front = await startWebFront({
      port: 0,
      host: '127.0.0.1',
      secretPath: '/rl-secret',
      decoy: builtinDecoy({ seed: 'rl' }),
      onUpgrade: () => false,
    });
    cleanup.push(() => front.close());
    const s = net.connect(front.port, '127.0.0.1');
    s.on('error', () => {});
    await once(s, 'connect');
    const crlf = Buffer.alloc(64 * 1024, '\r\n');
    gc();
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 128; i++) if (!s.write(crlf)) await once(s, 'drain'); // 8 MiB of CR/LF
    await sleep(300); // the front reads what the socket buffers still hold
    gc();
    const grown = process.memoryUsage().arrayBuffers - before;
    // Before, the reader kept every byte (8 MiB, copied again with each chunk) until the deadline.
    assert.ok(grown < 2 * 1024 * 1024, `the front kept ${grown} bytes of empty lines`);
    // Then a request is served as usual, and the same socket takes several decoy upgrades (each
    // handed back to the reader) without a listener per pass.
    const reply: Buffer[] = [];
    s.on('data', (d: Buffer) => reply.push(d));
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      if (w.name === 'MaxListenersExceededWarning') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    cleanup.push(() => void process.off('warning', onWarning));
    const upgrade = 'GET /nope HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
    for (let i = 0; i < 12; i++) s.write(upgrade);
    s.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    const deadline = Date.now() + 5000;
    const count = (): number =>
      (
        Buffer.concat(reply)
          .toString('latin1')
          .match(/^HTTP\/1\.1 /gm) ?? []
      ).length;
    while (count() < 13 && Date.now() < deadline) await sleep(20);
    assert.equal(count(), 13, Buffer.concat(reply).toString('latin1').slice(0, 300));
    assert.deepEqual(warnings, [], "a listener per pass on the front's socket");
    s.destroy();
  });
});
