/**
 * Requests pipelined on one connection by a client that does not read the answers: the decoy
 * works on at most PIPELINE_DEPTH of them at once and the connection is not read meanwhile, yet
 * every request is answered, in order, once the client reads. Before, every pipelined request
 * was taken on at once: with the dir decoy each held an open file (one connection: 3,500 files
 * and +650 MB in six seconds), with the proxy decoy an upstream request.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { dirDecoy, type Decoy } from '../../src/server/web/decoy.js';
import { startWebFront } from '../../src/server/web/front.js';
import { PIPELINE_DEPTH } from '../../src/server/web/pipelining.js';

const requests = (n: number, path: (i: number) => string): string =>
  Array.from({ length: n }, (_, i) => `GET ${path(i)} HTTP/1.1\r\nHost: blog.example\r\n\r\n`).join('');

/**
 * Connect, write `payload`, read nothing for `holdMs`, then read until `count` responses came
 * (counted by their header ends: the bodies here have none). The text when `keep` (small bodies).
 */
async function pipeline(
  port: number,
  payload: string,
  opts: { holdMs: number; count: number; keep?: boolean; during?: () => void },
): Promise<{ answers: number; text: string }> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  s.pause();
  await new Promise((r) => s.once('connect', r));
  s.write(payload);
  await new Promise((r) => setTimeout(r, opts.holdMs));
  opts.during?.();
  let answers = 0;
  let tail = '';
  let text = '';
  s.setEncoding('latin1');
  s.on('data', (d: string) => {
    const t = tail + d;
    answers += t.split('\r\n\r\n').length - 1;
    tail = t.slice(-3);
    if (opts.keep) text += d;
  });
  s.resume();
  const deadline = Date.now() + 20_000;
  while (answers < opts.count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  s.destroy();
  return { answers, text };
}

test('a decoy that answers later works on at most PIPELINE_DEPTH pipelined requests; all are answered in order', async () => {
  let busy = 0;
  let most = 0;
  const decoy: Decoy = {
    kind: 'builtin',
    handle(req, res) {
      most = Math.max(most, ++busy);
      setTimeout(() => {
        busy--;
        const body = `${req.url}\n`;
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(body.length) });
        res.end(body);
      }, 1);
    },
    close() {},
  };
  const front = await startWebFront({
    port: 0,
    host: '127.0.0.1',
    secretPath: '/s3cret-path',
    decoy,
    onUpgrade: () => false,
  });
  after(() => front.close());
  const n = 1500;
  const { text } = await pipeline(
    front.port,
    requests(n, (i) => `/p${i}`),
    { holdMs: 300, count: n, keep: true },
  );
  const bodies = text
    .split('\r\n\r\n')
    .slice(1)
    .map((part) => part.split('\n')[0]);
  assert.equal(bodies.length, n, 'every request answered');
  assert.deepEqual(
    bodies,
    Array.from({ length: n }, (_, i) => `/p${i}`),
    'in order',
  );
  assert.ok(most <= PIPELINE_DEPTH, `at most ${PIPELINE_DEPTH} at once, saw ${most}`);
});

test('the dir decoy does not open a file per pipelined request of a client that does not read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-pipelining-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // Larger than a read stream's first read, so a response waiting for the socket keeps its file open.
  writeFileSync(join(dir, 'index.html'), 'x'.repeat(100_000));
  const front = await startWebFront({
    port: 0,
    host: '127.0.0.1',
    secretPath: '/s3cret-path',
    decoy: dirDecoy(dir),
    onUpgrade: () => false,
  });
  after(() => front.close());
  const fds = (): number => readdirSync('/proc/self/fd').length;
  const before = fds();
  let held = 0;
  const n = 600;
  const { answers } = await pipeline(
    front.port,
    requests(n, () => '/'),
    {
      holdMs: 500,
      count: n,
      during: () => (held = fds() - before),
    },
  );
  assert.equal(answers, n, 'every request answered once read');
  assert.ok(held <= PIPELINE_DEPTH + 4, `files held open while the client did not read: ${held}`);
});
