/**
 * What `ladder keys --api` makes of a management API that answers garbage (a proxy's HTML page,
 * a multi-line error, JSON of the wrong shape): one line on stderr naming what came back, no
 * stack trace, non-zero exit. The API is a pinned HTTPS server on loopback; the mode is chosen by
 * the apiUrl's secret path.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AddressInfo } from 'node:net';
import { ensureCertificate } from '../../src/api/tls.js';
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
  const dir = mkdtempSync(join(tmpdir(), 'ladder-fuzz-api-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cert = await ensureCertificate(dir, '127.0.0.1');
  const srv = https.createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    const mode = (req.url ?? '').split('/')[1] ?? '';
    const [status, body] = ANSWERS[mode] ?? [404, ''];
    res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  const port = (srv.address() as AddressInfo).port;
  const modes = Object.keys(ANSWERS);
  const runs = await Promise.all(
    modes.map((m) =>
      // The secret URL in the environment, as the CLI asks (--api in argv warns on a second line).
      runProgram(
        process.execPath,
        [LADDER_BIN, 'keys', 'list', '--cert-sha256', cert.sha256],
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
