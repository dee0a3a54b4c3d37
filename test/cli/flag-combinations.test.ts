// Flags that were accepted and then ignored, or named their source twice, through the real CLI
// (node bin/ladder.js): each is now refused in one line (exit 2) or honoured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../api/helpers.js';
import { run, waitForStdout } from '../helpers/cli-run.js';
import { escapeRe as esc, oneUsageLine, runLadder } from '../helpers/ladder-run.js';

const KEY = 'ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpKUjAyaXlKYXZPVXpKTWtiUWxGUE9iQTlGUTJyX2pZVg@192.0.2.2:8388';

test('client --status with flags it would ignore is refused, naming them as given; --state-dir is its own', async (t) => {
  const dir = tempDir(t);
  const cases: Array<[string[], string]> = [
    [['--key', KEY], '--key'],
    [['--no-socks', '--http', '127.0.0.1:0'], '--no-socks, --http'],
    [['--socks', '127.0.0.1:0', '--shape', '--log-level', 'debug'], '--socks, --shape, --log-level'],
  ];
  for (const [args, named] of cases) {
    const r = await runLadder(['client', '--status', '--state-dir', dir, ...args], { killAfterMs: 20_000 });
    oneUsageLine(r, args.join(' '), new RegExp(`^ladder: --status .*: drop ${esc(named)}$`));
  }
  const ok = await runLadder(['client', '--status', '--state-dir', dir], { killAfterMs: 20_000 });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^no ladder client status in /);
});

test("two listeners on one port in a config file name the file once (it was 'FILE: port and FILE: web.port')", async (t) => {
  const dir = tempDir(t);
  const server = join(dir, 'server.json');
  const password = 'a long enough test password';
  writeFileSync(
    server,
    JSON.stringify({
      port: 18399,
      host: '127.0.0.1',
      keys: [{ id: 'a', method: 'chacha20-ietf-poly1305', password }],
      web: { port: 18399 },
    }),
  );
  oneUsageLine(
    await runLadder(['server', '--config', server], { killAfterMs: 20_000 }),
    'server --config',
    new RegExp(
      `^ladder: ${esc(server)}: port and web\\.port both name port 18399: give each listener its own port$`,
    ),
  );
  // A flag and a field: both named, the field with its file.
  oneUsageLine(
    await runLadder(['server', '--config', server, '--port', '18400', '--web-port', '18400'], {
      killAfterMs: 20_000,
    }),
    'server --config --port --web-port',
    /^ladder: --port and --web-port both name port 18400: /,
  );
  const client = join(dir, 'client.json');
  writeFileSync(client, JSON.stringify({ keys: [KEY], socks: '127.0.0.1:18401', http: '127.0.0.1:18401' }));
  oneUsageLine(
    await runLadder(['client', '--config', client], { killAfterMs: 20_000 }),
    'client --config',
    new RegExp(
      `^ladder: ${esc(client)}: "socks" and "http" both name 127\\.0\\.0\\.1:18401: give each proxy its own port$`,
    ),
  );
  oneUsageLine(
    await runLadder(['client', '--config', client, '--http', '127.0.0.1:18401'], { killAfterMs: 20_000 }),
    'client --config --http',
    new RegExp(`^ladder: ${esc(client)}: "socks" and --http both name 127\\.0\\.0\\.1:18401: `),
  );
});

test("server access-config / rotate-cert refuse the server's own flags (they were ignored); --data-dir and --store are theirs", async (t) => {
  const dir = tempDir(t);
  const cases: Array<[string[], RegExp]> = [
    [
      ['server', 'access-config', '--show-urls'],
      /^ladder: server access-config does not take --show-urls \(an option of `ladder server` itself\): it prints every key's URL already; a key's QR code: .*keys url ID$/,
    ],
    [
      ['server', 'access-config', '--udp', '--port', '9000'],
      /^ladder: server access-config does not take --port, --udp \(options of `ladder server` itself\)$/,
    ],
    [
      ['server', '--web-port', '443', 'rotate-cert'],
      /^ladder: server rotate-cert does not take --web-port \(an option of `ladder server` itself\)$/,
    ],
  ];
  for (const [args, re] of cases)
    oneUsageLine(await runLadder([...args, '--data-dir', dir], { killAfterMs: 20_000 }), args.join(' '), re);
  // Its own flags still reach it (no store there yet: its own one-line answer).
  for (const sub of ['access-config', 'rotate-cert'])
    oneUsageLine(
      await runLadder(['server', sub, '--data-dir', dir], { killAfterMs: 20_000 }),
      sub,
      new RegExp(`^ladder: no store at ${esc(join(dir, 'ladder.db'))}: `),
    );
});

test('the unmanaged server: --no-udp turns off a config file\'s "udp": true (it was ignored); --udp turns it on', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'server.json');
  const config = (udp: boolean): string =>
    JSON.stringify({
      port: 0,
      host: '127.0.0.1',
      udp,
      keys: [{ id: 'a', method: 'chacha20-ietf-poly1305', password: 'a long enough test password' }],
    });
  const cases: Array<[boolean, string[], string]> = [
    [true, ['--no-udp'], 'TCP'],
    [true, [], 'TCP and UDP'],
    [false, ['--udp'], 'TCP and UDP'],
    [false, [], 'TCP'],
  ];
  for (const [udp, flags, says] of cases) {
    writeFileSync(file, config(udp));
    const r = run(['server', '--config', file, '--workers', '1', ...flags]);
    try {
      const [, what] = await waitForStdout(r, /^Ladder server listening on 127\.0\.0\.1:\d+ \(([^)]+)\)$/m);
      assert.equal(what, says, `"udp": ${udp} ${flags.join(' ')}`);
    } finally {
      r.child.kill('SIGTERM');
      await r.exit;
    }
  }
});

test('keys: the remote flags (--cert-sha256, --insecure) with a local store are refused (they were ignored); with --api they apply', async (t) => {
  const dir = tempDir(t);
  assert.equal((await runLadder(['keys', '--init', '--data-dir', dir, 'add', '--no-qr'])).code, 0);
  const local =
    /(?:goes|go) with --api \(a server's management API\); the keys here are a local store's \(--data-dir, --store\), which has no certificate to check$/;
  const cases: Array<[string[], string]> = [
    [['keys', '--data-dir', dir, 'list', '--cert-sha256', 'AB'], '--cert-sha256'],
    [['keys', 'list', '--data-dir', dir, '--insecure'], '--insecure'],
    [
      ['keys', '--insecure', '--data-dir', dir, 'url', '0', '--cert-sha256', 'AB'],
      '--cert-sha256 and --insecure',
    ],
  ];
  for (const [args, named] of cases) {
    const r = await runLadder(args, { killAfterMs: 20_000 });
    oneUsageLine(r, args.join(' '), new RegExp(`^ladder: ${esc(named)} ${local.source}`));
  }
  // The control: the same list without them; with --api, --cert-sha256 is read (and checked).
  assert.equal((await runLadder(['keys', '--data-dir', dir, 'list'])).code, 0);
  const remote = await runLadder(['keys', '--api', 'https://127.0.0.1:1/x', '--cert-sha256', 'AB', 'list']);
  assert.equal(remote.code, 2, remote.stderr);
  assert.match(remote.stderr, /^ladder: --cert-sha256: expected 64 hex digits/m);
});
