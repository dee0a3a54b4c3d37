// Loose web front inputs (note16's list): --acme for an IP address is refused before anything
// starts, in one line naming the value and what to do (before: it went on to ask the CA, which
// cannot issue in this flow); --decoy http:// to a site across the network and --web-public-url
// without TLS start, with one warning each saying what goes wrong; the usual forms (https://, a
// decoy on this machine, wss://) warn nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loopbackFrontNote, looseWebWarnings } from '../../src/cli/web-loose.js';
import { run, waitForStdout } from '../helpers/cli-run.js';

test('--acme IP: one line, exit 2, nothing written, no ACME directory asked', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-acme-ip-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const ip of ['203.0.113.5', 'example.com,2001:db8::5']) {
    // A directory that refuses on loopback: without the check the server would go on to it.
    const r = run([
      'server',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--web-port',
      '0',
      '--web-host',
      '127.0.0.1',
      '--acme',
      ip,
      '--acme-directory',
      'http://127.0.0.1:1/directory',
      '--data-dir',
      dir,
    ]);
    const stop = setTimeout(() => r.child.kill(), 20_000);
    const code = await r.exit;
    clearTimeout(stop);
    assert.equal(code, 2, r.stdout() + r.stderr());
    const bad = ip.split(',').at(-1)!;
    assert.equal(
      r.stderr().trim(),
      `ladder: --acme ${bad}: an IP address, and ACME here issues for domain names only (DNS identifiers, HTTP-01): give the server's DNS name, or a certificate of your own with --tls-cert/--tls-key`,
    );
  }
  assert.deepEqual(readdirSync(dir), [], 'nothing written to the data dir');
});

test('the warnings: --decoy http:// across the network, --web-public-url without TLS; none for the usual forms', () => {
  const [decoy] = looseWebWarnings({ decoy: 'http://user:pw@example.com/some/path' });
  assert.match(
    decoy!,
    /^--decoy http:\/\/example\.com: the decoy fetches that site without TLS, so anyone between this server and it sees and can change the pages/,
  );
  assert.ok(!decoy!.includes('pw') && !decoy!.includes('/some/path'), 'no credentials or path');
  const [pub] = looseWebWarnings({ publicUrl: { host: 'cdn.example', port: 80, tls: false } });
  assert.match(
    pub!,
    /^--web-public-url without TLS \(ws:\/\/ or http:\/\/\): keys tell clients to dial port 80 in plain HTTP, so the secret path crosses the network in clear/,
  );
  for (const quiet of [
    { decoy: 'https://example.com' },
    { decoy: 'http://127.0.0.1:8080' },
    { decoy: 'http://localhost:8080/' },
    { decoy: 'http://10.1.2.3' },
    { decoy: 'http://[::1]:81' },
    { decoy: 'builtin' },
    { decoy: '/srv/www' },
    { publicUrl: { host: 'cdn.example', port: 443, tls: true } },
  ])
    assert.deepEqual(looseWebWarnings(quiet), [], JSON.stringify(quiet));
});

test('a server with both starts and says each once at start', async () => {
  const r = run([
    'server',
    '--password',
    'loose-inputs-pw',
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--web-port',
    '0',
    '--web-host',
    '127.0.0.1',
    '--decoy',
    'http://example.com',
    '--web-public-url',
    'http://cdn.example',
  ]);
  try {
    await waitForStdout(r, /Ctrl-C to stop/, 30_000);
    // The log (JSON lines) is on stderr, the banner on stdout.
    const warned = r
      .stderr()
      .split('\n')
      .filter((l) => l.includes('"level":40'))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    assert.equal(
      warned.filter((m) =>
        m.startsWith('--decoy http://example.com: the decoy fetches that site without TLS'),
      ).length,
      1,
      r.stderr(),
    );
    assert.equal(warned.filter((m) => m.startsWith('--web-public-url without TLS')).length, 1, r.stderr());
  } finally {
    r.child.kill('SIGKILL');
  }
});

test('the banner notes web keys at an address where a loopback-only front does not listen', async () => {
  assert.match(
    loopbackFrontNote('127.0.0.1', undefined, '192.0.2.2') ?? '',
    /^ {2}note: the web front listens on 127\.0\.0\.1 only, so the web keys above \(at 192\.0\.2\.2\) reach nothing from elsewhere: give --web-public-url/,
  );
  for (const [webHost, pub, adv] of [
    [undefined, undefined, '192.0.2.2'],
    ['0.0.0.0', undefined, '192.0.2.2'],
    ['127.0.0.1', { host: 'cdn.example', port: 443, tls: true }, '192.0.2.2'],
    ['127.0.0.1', undefined, '127.0.0.1'],
  ] as const)
    assert.equal(loopbackFrontNote(webHost, pub, adv), undefined, `${webHost} ${adv}`);
  // As the CLI prints it (the docs' first command without its --web-public-url).
  const r = run([
    'server',
    '--password',
    'loose-inputs-pw',
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--web-port',
    '0',
    '--web-host',
    '127.0.0.1',
    '--public-host',
    '198.51.100.7',
    '--show-urls',
  ]);
  try {
    await waitForStdout(r, /Ctrl-C to stop/, 30_000);
    assert.match(
      r.stdout(),
      /v2ray-http-upgrade\S*\n {2}note: the web front listens on 127\.0\.0\.1 only, so the web keys above \(at 198\.51\.100\.7\) reach nothing/,
    );
  } finally {
    r.child.kill('SIGKILL');
  }
});
