/**
 * What `ladder keys --api` makes of a management API that answers garbage (a proxy's HTML page,
 * a multi-line error, JSON of the wrong shape): one line on stderr naming what came back, no
 * stack trace, non-zero exit. The API is a pinned HTTPS server on loopback; the mode is chosen by
 * the apiUrl's secret path.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startGarbageApi } from '../helpers/garbage-api.js';
import { cleanEnv, runProgram } from '../helpers/ladder-run.js';
import { LADDER_BIN } from '../helpers/peers.js';

const ANSWERS: Record<string, [number, string]> = {
  html: [200, '<html>\n<body>\nSign in to the captive portal\n</body>\n</html>\n'],
  error: [502, 'Bad gateway\nupstream: connection refused\n'],
  object: [403, '{"message":{"nested":true}}'],
  shape: [200, '{}'],
  nulls: [200, 'null'],
};

test('keys --api: a management API answering garbage gets one line, no stack, non-zero exit', async (t) => {
  const { port, sha256, dir } = await startGarbageApi(t, (_method, url) => {
    const mode = url.split('/')[1] ?? '';
    return ANSWERS[mode] ?? [404, ''];
  });
  const modes = Object.keys(ANSWERS);
  const runs = await Promise.all(
    modes.map((m) =>
      // The secret URL in the environment, as the CLI asks (--api in argv warns on a second line).
      runProgram(
        process.execPath,
        [LADDER_BIN, 'keys', 'list', '--cert-sha256', sha256],
        cleanEnv({ LADDER_LOG_LEVEL: 'silent', LADDER_API: `https://127.0.0.1:${port}/${m}` }),
        { cwd: dir, killAfterMs: 30_000 },
      ),
    ),
  );
  runs.forEach((r, i) => {
    const what = `${modes[i]} -> ${r.code}: ${JSON.stringify(r.stderr)}`;
    assert.equal(r.code, 2, what);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, `not one line: ${what}`);
    assert.doesNotMatch(r.stderr, /this is a bug|\n\s+at /, what);
  });
  assert.match(
    runs[0]!.stderr,
    /answered GET \/access-keys with 200 and a body that is not JSON: <html> <body> Sign in/,
  );
  assert.match(runs[1]!.stderr, /API error 502: Bad gateway upstream: connection refused$/m);
  assert.match(runs[3]!.stderr, /without an "accessKeys" list/);
});

/** A key with a field of the wrong type (`ladder keys` printed "NaN" for its limit). */
const BAD_KEY = { id: '1', name: 'n', accessUrl: 'ss://x@h:1', dataLimit: { bytes: '5GB' } };

/** What a wrong-shaped API answers each request: `{}` to all, or keys with a wrong field, or a long one. */
function wrongShape(mode: string, method: string, path: string): [number, string] {
  if (method === 'PUT' || method === 'DELETE') return [204, ''];
  if (mode === 'empty') return [200, '{}'];
  if (mode === 'long') return [200, JSON.stringify({ pad: 'x'.repeat(100_000) })];
  if (path === '/metrics/transfer') return [200, '{"bytesTransferredByUserId":{}}'];
  if (path === '/access-keys' && method === 'GET') return [200, JSON.stringify({ accessKeys: [BAD_KEY] })];
  if (path === '/access-keys/bulk') return [200, JSON.stringify({ accessKeys: [BAD_KEY, BAD_KEY] })];
  return [200, JSON.stringify(BAD_KEY)];
}

test('keys --api: every command refuses an answer of the wrong shape in one bounded line naming the request', async (t) => {
  const { port, sha256, dir } = await startGarbageApi(t, (method, url) => {
    const [, mode = '', ...rest] = url.split('/');
    return wrongShape(mode, method, `/${rest.join('/')}`);
  });
  const commands: [string[], RegExp][] = [
    [['list'], /answered GET \/access-keys without an "accessKeys" list of keys: /],
    [['add'], /answered POST \/access-keys without a key: /],
    [['add', '--count', '2'], /answered POST \/access-keys\/bulk without an "accessKeys" list of keys: /],
    [['url', '1'], /answered GET \/access-keys\/1 without a key: /],
    [['rename', '1', 'x'], /answered GET \/access-keys\/1 without a key: /],
    [['limit', '1', '5GB'], /answered GET \/access-keys\/1 without a key: /],
    [['enable', '1'], /answered GET \/access-keys\/1 without a key: /],
  ];
  const runs = [
    ...commands.flatMap(([args, line]) => ['empty', 'badkey'].map((mode) => ({ mode, args, line }))),
    { mode: 'long', args: ['url', '1'], line: /answered GET \/access-keys\/1 without a key: \{"pad":"x+…$/m },
  ];
  const results = await Promise.all(
    runs.map((r) =>
      runProgram(
        process.execPath,
        [LADDER_BIN, 'keys', ...r.args, '--cert-sha256', sha256],
        cleanEnv({ LADDER_LOG_LEVEL: 'silent', LADDER_API: `https://127.0.0.1:${port}/${r.mode}` }),
        { cwd: dir, killAfterMs: 30_000 },
      ),
    ),
  );
  results.forEach((res, i) => {
    const { mode, args, line } = runs[i]!;
    const what = `${mode} keys ${args.join(' ')} -> ${res.code}: ${JSON.stringify(res.stderr)}`;
    assert.equal(res.code, 2, what);
    assert.equal(res.stderr.trimEnd().split('\n').length, 1, `not one line: ${what}`);
    assert.ok(res.stderr.length < 400, `not bounded: ${what}`);
    assert.doesNotMatch(res.stderr, /this is a bug|\n\s+at /, what);
    assert.match(res.stderr, line, what);
    assert.match(res.stderr, mode === 'badkey' ? /"5GB"/ : mode === 'empty' ? /: \{\}$/m : /…$/m, what);
    assert.equal(res.stdout, '', `nothing printed as if it worked: ${what}`);
  });
});
