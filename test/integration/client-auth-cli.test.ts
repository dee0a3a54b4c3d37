/**
 * `ladder client` with proxy credentials: the banner's `try:` command works as printed once the
 * user puts the credentials in its USER:PASSWORD placeholder (real curl, through SOCKS5 and the
 * HTTP proxy; the old line without credentials is curl error 97 / 407), and never shows the
 * password; the credentials come from the config file's "auth" or LADDER_AUTH (out of `ps`), --auth
 * winning; a bad value is one line naming where it came from, never echoing it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { run, waitForStdout, type Run } from '../helpers/cli-run.js';
import { which } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';

const PASSWORD = 'pw-4e1b:9a7c';
// Route direct: the proxy's own authentication is what is tested; the key is never dialled.
const KEY = formatSsUrl({ method: 'aes-256-gcm', password: 'unused-key-pw', host: '127.0.0.1', port: 9 });

function curl(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--fail', '--max-time', '10', ...args], (err, stdout) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, out: stdout }),
    );
  });
}

/** The banner's try: command for `kind`, as argv (the URL swapped for the local site). */
function tryArgs(banner: string, kind: 'SOCKS5' | 'HTTP', site: string): string[] {
  const line = banner.split('\n').find((l) => l.includes(`${kind} `) && l.includes('try: curl'));
  assert.ok(line, banner);
  const argv = line.split('try: curl ')[1]!.trim().split(/\s+/);
  assert.equal(argv.at(-1), 'https://example.com');
  return [...argv.slice(0, -1), site];
}

test(
  'proxy credentials from the config file or LADDER_AUTH; the banner try: command works with them filled in',
  { skip: skipUnless(which('curl') !== undefined, 'curl missing (apt-get install curl)') },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-auth-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const site = http.createServer((_req, res) => res.end('hello through the proxy'));
    await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => site.close(() => r())));
    const url = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
    const running: Run[] = [];
    t.after(async () => {
      for (const r of running) {
        r.child.kill('SIGTERM');
        await r.exit;
      }
    });
    const start = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> => {
      const r = run(
        ['client', '--socks', '127.0.0.1:0', '--http', '127.0.0.1:0', '--route', 'direct', ...args],
        {
          env: { LADDER_AUTH: '', ...env },
        },
      );
      running.push(r);
      await waitForStdout(r, /Ctrl-C to stop/);
      return r;
    };

    const cfg = join(dir, 'c.json');
    writeFileSync(cfg, JSON.stringify({ keys: [KEY], auth: `alice:${PASSWORD}` }));
    const viaFile = await start(['--config', cfg]);
    const banner = viaFile.stdout();
    assert.match(
      banner,
      /auth {9}applications must give the user name and password \(\S*c\.json: "auth"; not shown here\)/,
    );
    for (const kind of ['SOCKS5', 'HTTP'] as const) {
      const argv = tryArgs(banner, kind, url);
      assert.ok(argv.includes('USER:PASSWORD'), argv.join(' '));
      const filled = argv.map((a) => (a === 'USER:PASSWORD' ? `alice:${PASSWORD}` : a));
      assert.deepEqual(await curl(filled), { code: 0, out: 'hello through the proxy' }, kind);
      // Negative controls: no credentials (what the banner used to print), wrong ones.
      const bare = argv.filter((a, i) => a !== '--proxy-user' && argv[i - 1] !== '--proxy-user');
      assert.notEqual((await curl(bare)).code, 0, `${kind} without credentials`);
      const wrong = argv.map((a) => (a === 'USER:PASSWORD' ? 'alice:wrong' : a));
      assert.notEqual((await curl(wrong)).code, 0, `${kind} with a wrong password`);
    }

    // LADDER_AUTH (no secret on the command line); --auth wins over both.
    const viaEnv = await start(['--key', KEY], { LADDER_AUTH: `bob:${PASSWORD}` });
    assert.match(viaEnv.stdout(), /\(LADDER_AUTH; not shown here\)/);
    const envArgv = tryArgs(viaEnv.stdout(), 'SOCKS5', url).map((a) =>
      a === 'USER:PASSWORD' ? `bob:${PASSWORD}` : a,
    );
    assert.equal((await curl(envArgv)).code, 0);
    const viaFlag = await start(['--config', cfg, '--auth', 'carol:other'], {
      LADDER_AUTH: `bob:${PASSWORD}`,
    });
    assert.match(viaFlag.stdout(), /\(--auth; not shown here\)/);
    for (const r of [viaFile, viaEnv, viaFlag])
      assert.ok(!r.stdout().includes(PASSWORD) && !r.stderr().includes(PASSWORD));

    // Bad values: one line naming the source, never the value; exit 2.
    for (const [args, env, want] of [
      [['--key', KEY], { LADDER_AUTH: 'nocolon-s3cret' }, /^ladder: LADDER_AUTH must be user:password$/],
      [['--config', join(dir, 'bad.json')], {}, /^ladder: \S*bad\.json: "auth" must be "user:password" or/],
    ] as const) {
      writeFileSync(join(dir, 'bad.json'), JSON.stringify({ keys: [KEY], auth: 'nocolon-s3cret' }));
      const r = run(['client', '--socks', '127.0.0.1:0', ...args], { env: { LADDER_AUTH: '', ...env } });
      assert.equal(await r.exit, 2);
      assert.match(r.stderr().trim(), want);
      assert.ok(!r.stderr().includes('s3cret'));
    }
  },
);
