import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseSize, parseWhen, formatTable } from '../../src/cli/commands/keys.js';
import { gib } from '../../src/api/subscriptions/state.js';
import { openStore, parseStoreLocation } from '../../src/store/index.js';
import { tempDir } from './helpers.js';
import { inproc, remoteKeysApi } from './keys-inproc.js';
import { runLadder } from '../helpers/ladder-run.js';

function ladder(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runLadder(args, { killAfterMs: 45_000 });
}

test('size and time parsing', () => {
  assert.equal(parseSize('10GB'), 10e9);
  assert.equal(parseSize('1.5GiB'), 1.5 * 2 ** 30);
  assert.throws(() => parseSize('123'), /a size with a unit/);
  assert.throws(() => parseSize('ten'), /limit must be a positive size like 10GB/);
  const now = Date.UTC(2026, 0, 1);
  assert.equal(parseWhen('30d', now), now + 30 * 86_400_000);
  assert.equal(parseWhen('2026-12-31', now), Date.UTC(2026, 11, 31));
  assert.throws(() => parseWhen('someday', now), /expiry/);
  const table = formatTable([
    {
      id: '0',
      name: 'a',
      password: 'p',
      port: 1,
      method: 'm',
      accessUrl: 'ss://x',
      enabled: true,
      createdTimestampMs: 0,
      state: 'over_limit',
      dataUsed: { bytes: 2e9 },
      dataLimit: { bytes: 1e9 },
      trailing30DaysBytes: 2e9,
    },
  ]);
  assert.match(table, /^ID\s+NAME\s+STATE/);
  // The subscription page's unit helper (binary units), not kB/GB.
  assert.match(table, /over_limit\s+1\.86 GiB\s+953\.67 MiB\s+1\.86 GiB/);
  const row = table.split('\n')[1]!.split(/ {2,}/);
  assert.deepEqual(row.slice(3, 6), [gib(2e9), gib(1e9), gib(2e9)], 'the same figures as the page');
});

test('ladder keys against the local store: add, limit, disable, list, url --qr-png, rm', async (t) => {
  const dir = tempDir(t);
  const d = ['--data-dir', dir];
  let r = await ladder(['keys', '--init', 'add', '--name', 'Alice', '--limit', '10GB', ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^created key 0 "Alice"/);
  assert.match(r.stdout, /ss:\/\/[A-Za-z0-9_-]+@[^:]+:8388\/\?outline=1#Alice/);
  assert.doesNotMatch(r.stdout, /[▀▄█]/, 'no QR code: stdout is not a terminal');
  r = await inproc(['keys', 'add', '--count', '2', '--name', 'team', '--expires', '30d', ...d]);
  assert.equal(r.code, 0, r.stderr);
  r = await inproc(['keys', 'disable', '2', ...d]);
  assert.equal(r.code, 0, r.stderr);
  r = await inproc(['keys', 'list', ...d]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 4);
  assert.match(lines[1]!, /^0\s+Alice\s+active\s+0 B\s+9\.31 GiB/);
  assert.match(lines[3]!, /^2\s+team 2\s+disabled/);
  const png = join(dir, 'qr.png');
  r = await inproc(['keys', 'url', '0', '--no-qr', '--qr-png', png, ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(png));
  // A picture that cannot be written: one line, before any URL (a secret) is printed.
  r = await inproc(['keys', 'url', '0', '--qr-png', join(dir, 'no', 'such', 'dir', 'qr.png'), ...d]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^ladder: --qr-png \S+qr\.png: its directory \S+dir: does not exist\n$/);
  r = await inproc(['keys', 'rm', '0', ...d]);
  assert.equal(r.code, 0, r.stderr);
  r = await inproc(['keys', 'rm', '7', ...d]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim(), 'ladder: no access key with id "7"');
  r = await inproc(['keys', 'add', '--name', 'Bob', '--qr', ...d]);
  assert.match(r.stdout, /[▀▄█]/, 'QR code with --qr');
});

test('ladder keys against a remote API with the access config line (certificate pinned)', async (t) => {
  const { cfg } = await remoteKeysApi(t);

  let r = await ladder([
    'keys',
    'add',
    '--name',
    'Remote',
    '--limit',
    '1GB',
    '--period',
    'monthly',
    '--api',
    cfg,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^created key 0 "Remote"/);
  assert.match(r.stdout, /ssconf:\/\/127\.0\.0\.1:\d+\/access\/\S+#Remote/);
  r = await inproc(['keys', 'expire', '0', '2030-01-01', '--api', cfg]);
  assert.equal(r.code, 0, r.stderr);
  r = await inproc(['keys', 'list', '--json', '--api', cfg]);
  const list = JSON.parse(r.stdout) as { id: string; expiresAt: string; dataLimitPeriod: string }[];
  assert.equal(list[0]!.expiresAt, '2030-01-01T00:00:00.000Z');
  assert.equal(list[0]!.dataLimitPeriod, 'monthly');
  const wrongPin = JSON.stringify({ ...(JSON.parse(cfg) as object), certSha256: 'AB'.repeat(32) });
  r = await ladder(['keys', 'list', '--api', wrongPin]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /certificate does not match/);
  r = await inproc(['keys', 'list', '--api', (JSON.parse(cfg) as { apiUrl: string }).apiUrl]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--cert-sha256/);
  // A wrong secret path: every command says so, `rm 0` too (it said "no access key with id").
  const parsed = JSON.parse(cfg) as { apiUrl: string };
  const wrongPath = JSON.stringify({
    ...parsed,
    apiUrl: parsed.apiUrl.replace(/\/[^/]+$/, '/not-the-secret'),
  });
  for (const args of [['list'], ['rm', '0'], ['url', '0']]) {
    r = await inproc(['keys', ...args, '--api', wrongPath]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(
      r.stderr,
      /^ladder: --api: the server has no such API path \(404\): check the secret path/,
      args.join(' '),
    );
    assert.ok(!r.stderr.includes('not-the-secret'), 'the path typed is not repeated');
  }
  r = await inproc(['keys', 'rm', '7', '--api', cfg]);
  assert.match(r.stderr, /no access key with id "7"/, 'a missing key is still named');
});

/** A store for vpn.example.org:4444 whose API is on port 8443 (so keys have ssconf:// URLs): its directory. */
async function storeWithApi(t: TestContext): Promise<string> {
  const dir = tempDir(t);
  const store = await openStore(parseStoreLocation(undefined, dir), {
    defaults: { hostname: 'vpn.example.org', port: 4444 },
  });
  await store.updateSettings({ apiPort: 8443 });
  await store.close();
  return dir;
}

test('ladder keys url: the ss://, ssconf:// and subscription URLs, labelled; QR codes only with --qr off a terminal', async (t) => {
  const d = ['--data-dir', await storeWithApi(t)];
  let r = await inproc(['keys', 'add', '--name', 'Carol', '--no-qr', ...d]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[1]!, /^ss:\/\/\S+#Carol$/);
  assert.match(lines[2]!, /^ssconf:\/\/vpn\.example\.org:8443\/access\/[\w-]{22}#Carol$/);
  assert.match(lines[3]!, /^https:\/\/vpn\.example\.org:8443\/sub\/[\w-]{22}$/);
  const token = lines[2]!.split('/access/')[1]!.split('#')[0]!;
  assert.ok(lines[3]!.endsWith(`/sub/${token}`), 'the subscription reuses the dynamic key token');

  // stdout here is not a terminal: no QR code unless asked for.
  r = await inproc(['keys', 'url', '0', ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /[▀▄█]/);
  const out = r.stdout.split('\n');
  assert.match(out[0]!, /^static key \(Outline/);
  assert.match(out[1]!, /^ {2}ss:\/\//);
  assert.match(out[2]!, /^dynamic key \(Outline/);
  assert.match(out[3]!, /^ {2}ssconf:\/\//);
  assert.match(out[4]!, /^subscription \(Clash\/mihomo, sing-box/);
  assert.equal(out[5], `  https://vpn.example.org:8443/sub/${token}`);
  r = await inproc(['keys', 'url', '0', '--qr', ...d]);
  const blocks = r.stdout.split('\n').filter((l) => /^ {2}(ss|ssconf|https):\/\//.test(l)).length;
  assert.equal(blocks, 3);
  const rows = r.stdout.split('\n');
  const qrBlocks = rows.filter((l, i) => /[▀▄█]/.test(l) && !/[▀▄█]/.test(rows[i - 1] ?? '')).length;
  assert.equal(qrBlocks, 3, 'one QR code per URL');

  // A key that does not work now: its URLs still print (stdout), with a note why on stderr.
  assert.equal((await inproc(['keys', 'disable', '0', ...d])).code, 0);
  const off = await ladder(['keys', 'url', '0', '--no-qr', ...d]);
  assert.equal(off.code, 0, off.stderr);
  assert.match(off.stdout, /^static key \(Outline/);
  assert.match(
    off.stderr,
    /^note: key 0 is disabled: these URLs do not connect until it is enabled \(.* keys enable 0\)\n$/,
  );
  const on = await (async () => {
    await inproc(['keys', 'enable', '0', ...d]);
    return ladder(['keys', 'url', '0', '--no-qr', ...d]);
  })();
  assert.equal(on.stderr, '', 'an active key: no note');
});

test('a Shadowsocks-2022 key: keys add and keys url say Outline apps cannot use its ss:// and ssconf:// keys', async (t) => {
  const d = ['--data-dir', await storeWithApi(t)];
  const note2022 =
    /^note: key 0 uses 2022-blake3-aes-256-gcm \(Shadowsocks-2022\), which Outline apps do not have: its ss:\/\/ and ssconf:\/\/ keys do not work in them; use shadowsocks-rust, sing-box/;
  let r = await ladder([
    'keys',
    'add',
    '--name',
    'Dan',
    '--method',
    '2022-blake3-aes-256-gcm',
    '--no-qr',
    ...d,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^created key 0 "Dan"\nss:\/\/2022-blake3-aes-256-gcm:\S+#Dan\nssconf:\/\/\S+\nhttps:\/\/\S+\n$/,
  );
  assert.match(r.stderr, note2022);
  assert.equal(r.stderr.split('\n').length, 2, 'one line');

  r = await ladder(['keys', 'url', '0', '--no-qr', ...d]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout.split('\n');
  assert.match(
    out[0]!,
    /^static key \(shadowsocks-rust, .*not Outline apps: they have no Shadowsocks-2022 ciphers\):$/,
  );
  assert.match(out[2]!, /^dynamic key \(ladder client; Outline apps get a message that they cannot use it/);
  assert.match(out[3]!, /^ {2}ssconf:\/\//);
  assert.doesNotMatch(out[4]!, /Outline/, 'the subscription label names no Outline app');

  // A SIP004 key: no note, Outline named as before.
  r = await ladder(['keys', 'add', '--name', 'Eve', '--method', 'aes-256-gcm', '--no-qr', ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  r = await ladder(['keys', 'add', '--count', '2', '--method', '2022-blake3-chacha20-poly1305', ...d]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /^note: these keys use 2022-blake3-chacha20-poly1305 .*their ss:\/\/ keys do not work in them/,
  );
});
