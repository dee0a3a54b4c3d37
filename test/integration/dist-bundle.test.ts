/**
 * The built program (dist/, the esbuild bundle bin/ladder.js runs after `npm install`), not the
 * sources: almost every other test runs src/ in-process or through tsx, and a bundle can differ
 * (a CommonJS package's named exports through a dynamic `import()` were undefined in the bundle
 * only, so every YAML subscription answered 500 to real users while the tests passed).
 * A managed server started from dist/ answers every subscription format with a body that parses
 * in its format, and `ladder client` from dist/ carries bytes with the dynamic key it printed.
 * dist/ must be current (npm ci builds it): stale, this test skips loudly; under CI=true it fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
// @ts-expect-error: plain JavaScript module without types (it runs before anything is compiled)
import { staleReason } from '../../scripts/src-freshness.mjs';
import { tempDir } from '../api/helpers.js';
import { echoServer } from '../api/managed-helpers.js';
import { LADDER_BIN, REPO_ROOT } from '../helpers/peers.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { echoVia } from '../helpers/transfer.js';
import { cleanEnv } from '../helpers/clean-env.js';

const stale = staleReason(join(REPO_ROOT, 'src'), join(REPO_ROOT, 'dist')) as string | undefined;

/** `ladder ARGS` from dist/ (LADDER_DIST=1); resolves with the first stdout match of `ready`. */
async function startDist(
  args: string[],
  ready: RegExp,
): Promise<{ child: ChildProcess; match: RegExpMatchArray; out: () => string }> {
  const child = spawn(process.execPath, [LADDER_BIN, ...args], {
    env: cleanEnv({ LADDER_DIST: '1', LADDER_DEBUG: '1', LADDER_LOG_LEVEL: 'warn' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  for (let i = 0; i < 400; i++) {
    const m = ready.exec(out);
    if (m) return { child, match: m, out: () => out };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`ladder ${args[0]} from dist/ did not get ready:\n${out}`);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** GET over HTTPS from the server's self-signed API listener (the pin is not what is tested here). */
function get(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

test('dist/: every subscription format answers and parses; the client carries bytes with the printed dynamic key', async (t) => {
  if (!requireOrSkip(t, stale === undefined, `dist/ is not current (${stale}): run npm run build`)) return;
  const dir = tempDir(t);
  const echoPort = await echoServer(t);
  const server = await startDist(
    [
      'server',
      '--data-dir',
      join(dir, 'data'),
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--api-host',
      '127.0.0.1',
      '--api-port',
      '0',
      '--no-metrics',
      '--allow-private',
    ],
    /subscription \(every app[^\n]*?(https:\/\/127\.0\.0\.1:\d+\/sub\/[\w-]+)[^\n]*\n[\s\S]*?Ctrl-C/,
  );
  t.after(() => stop(server.child));
  assert.match(server.out(), /ladder: running dist\//, 'the bundle ran, not the sources');
  const sub = server.match[1]!;

  const bodies = new Map<string, string>();
  for (const format of ['outline', 'outline-json', 'clash', 'sing-box', 'base64', 'sip008', 'html']) {
    const r = await get(`${sub}/${format}`);
    assert.equal(r.status, 200, `${format}: ${r.body.slice(0, 200)}`);
    bodies.set(format, r.body);
  }
  const clash = parseYaml(bodies.get('clash')!) as { proxies: { server: string; cipher: string }[] };
  assert.equal(clash.proxies[0]!.server, '127.0.0.1');
  const outline = parseYaml(bodies.get('outline')!) as { transport?: unknown };
  assert.ok(outline.transport, 'Outline YAML has a transport');
  for (const f of ['outline-json', 'sing-box', 'sip008'])
    assert.doesNotThrow(() => JSON.parse(bodies.get(f)!), f);
  assert.match(Buffer.from(bodies.get('base64')!, 'base64').toString(), /^ss:\/\//m);
  assert.match(bodies.get('html')!, /<html/i);

  // The client, also from dist/, with the ssconf:// key the banner printed (the pin is checked).
  const dynamic = /dynamic: (ssconf:\/\/\S+)/.exec(server.out())![1]!;
  const client = await startDist(
    ['client', '--key', dynamic, '--socks', '127.0.0.1:0', '--state-dir', join(dir, 'client')],
    /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/,
  );
  t.after(() => stop(client.child));
  const body = randomBytes(100_000);
  const e = await echoVia(
    { proxyPort: Number(client.match[1]) },
    { host: '127.0.0.1', port: echoPort },
    body,
    20_000,
  );
  assert.ok(e.gotSha.equals(e.sentSha), 'echo through the client and server from dist/');
});
