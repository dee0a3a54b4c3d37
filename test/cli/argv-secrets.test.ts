/**
 * A password or secret URL on the command line: `ladder` says once, without the secret, where to
 * put it instead (LADDER_STORE, PGPASSWORD/~/.pgpass, LADDER_API), and on Linux overwrites its
 * /proc/PID/cmdline (what `ps` shows every local user) with the secret starred out. The
 * environment variables are honoured and draw no warning. Real commands (`ladder nodes`,
 * `ladder keys --api`) against a loopback listener that accepts and never answers, so each
 * stays up while its command line is read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { hideArgvSecrets } from '../../src/cli/argv-secrets.js';
import { LADDER_BIN } from '../helpers/peers.js';
import { cleanEnv } from '../helpers/ladder-run.js';
import { waitFor } from '../helpers/wait.js';

const PW = 'S3cretPassw0rd';

test('hideArgvSecrets: passwords in store URLs, API paths, keys; nothing else', () => {
  const h = (...a: string[]) => hideArgvSecrets(a);
  assert.deepEqual(h('nodes', '--store', `postgres://ladder:${PW}@db/x`, 'list').argv, [
    'nodes',
    '--store',
    'postgres://ladder:***@db/x',
    'list',
  ]);
  assert.deepEqual(h(`--store=postgresql://u:${PW}@db:5432/x?sslmode=require`).argv, [
    '--store=postgresql://u:***@db:5432/x?sslmode=require',
  ]);
  assert.deepEqual(h('--store', `postgres://u@db/x?password=${PW}&sslmode=require`).argv, [
    '--store',
    'postgres://u@db/x?password=***&sslmode=require',
  ]);
  // A raw '&' in the password: node-postgres reads `a` and a parameter `b`; both are hidden, up to
  // the next setting node-postgres reads (`&a=b` is none: it may be the password's too).
  assert.deepEqual(h('--store', `postgres://u@db/x?password=a&b&c=d&port=5`).argv, [
    '--store',
    'postgres://u@db/x?password=***&port=5',
  ]);
  // A raw '@' in the password: the user information ends at the last '@', as pg reads it.
  assert.deepEqual(h('--store', `postgres://u:p@ss@db/x`).argv, ['--store', 'postgres://u:***@db/x']);
  // A '@' in the query could end a password holding a raw '?' (`p@s:s@db:5432/x?a=` is one
  // reading): hidden to the last '@', more than the password, never less.
  assert.deepEqual(h('--store', `postgres://u:p@s:s@db:5432/x?a=@b`).argv, ['--store', 'postgres://u:***@b']);
  // `probe --servers` takes keys (secrets) and files, variadic up to the next flag.
  assert.deepEqual(
    h('probe', '--servers', 'ss://a@h:1', 'list.txt', 'ssconf://h/x', '--json', 'ss://b').argv,
    ['probe', '--servers', '***', 'list.txt', '***', '--json', 'ss://b'],
  );
  assert.deepEqual(h('probe', '--servers=ss://a@h:1', 'ss://c@h:2').argv, ['probe', '--servers=***', '***']);
  assert.deepEqual(h('probe', '--via', 'ss://a@h:1', 'x').argv, ['probe', '--via', '***', 'x']);
  const none = h('--store', 'postgres://u@db/x', '--data-dir', 'd');
  assert.deepEqual(none, { argv: ['--store', 'postgres://u@db/x', '--data-dir', 'd'], warnings: [] });
  assert.deepEqual(h('--store', 'sqlite:/a:b@c').warnings, []);
  const api = h('keys', '--api', `{"apiUrl":"https://1.2.3.4:8443/${PW}","certSha256":"AB"}`, 'list');
  assert.equal(api.argv[2], '{"apiUrl":"https://1.2.3.4:8443/***","certSha256":"AB"}');
  assert.equal(api.warnings.length, 1);
  assert.deepEqual(h('client', '--key', `ss://x@h:1`, '--auth', 'u:p').argv, [
    'client',
    '--key',
    '***',
    '--auth',
    '***',
  ]);
  assert.deepEqual(h('keys', 'rotate', '1', '--password', '-').argv, [
    'keys',
    'rotate',
    '1',
    '--password',
    '-',
  ]);
  for (const r of [h('--store', `postgres://u:${PW}@db/x`), api])
    for (const w of r.warnings) assert.ok(!w.includes(PW), w);
});

interface Held {
  port: number;
  connected: Promise<void>;
  close(): void;
}

/** A loopback listener that accepts and never answers (a database or API that hangs). */
async function silentListener(): Promise<Held> {
  const sockets = new Set<net.Socket>();
  let connected!: () => void;
  const p = new Promise<void>((r) => (connected = r));
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    connected();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    connected: p,
    close: () => {
      for (const s of sockets) s.destroy();
      srv.close();
    },
  };
}

/** Start `ladder ARGS`, wait until it connects to `held`, return its /proc cmdline and stderr so far. */
async function whileRunning(
  args: string[],
  held: Held,
  env: NodeJS.ProcessEnv = {},
): Promise<{ cmdline: string; ps: string; comm: string; stderr: string }> {
  const child = spawn(process.execPath, [LADDER_BIN, ...args], {
    env: cleanEnv({ LADDER_LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await Promise.race([
      held.connected,
      new Promise((_, reject) => child.once('exit', (c) => reject(new Error(`exited ${c}: ${stderr}`)))),
    ]);
    const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
    const ps = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    const comm = readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim();
    await waitFor(() => stderr.length > 0 || args.every((a) => !a.includes(PW)), { timeoutMs: 5000 }).catch(
      () => undefined,
    );
    return { cmdline, ps, comm, stderr };
  } finally {
    child.kill('SIGKILL');
  }
}

test(
  'a password in --store: one warning without it, starred out of /proc/PID/cmdline; LADDER_STORE is quiet',
  {
    skip: process.platform !== 'linux' && 'Linux /proc only',
  },
  async (t) => {
    const db = await silentListener();
    t.after(() => db.close());
    const url = `postgres://ladder:${PW}@127.0.0.1:${db.port}/ladder`;
    const r = await whileRunning(['nodes', '--store', url, 'list'], db);
    assert.ok(!r.cmdline.includes(PW), `cmdline: ${r.ps}`);
    assert.ok(
      r.ps.startsWith(`ladder nodes --store postgres://ladder:***@127.0.0.1:${db.port}/ladder list`),
      r.ps,
    );
    // The rewrite renames the process too (/proc/PID/comm: pgrep -x, top, journald): as ladder.
    assert.equal(r.comm, 'ladder nodes --');
    assert.ok(!r.stderr.includes(PW), r.stderr);
    const warned = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('ladder: warning: --store carries a PostgreSQL password'));
    assert.equal(warned.length, 1, r.stderr);
    assert.match(warned[0]!, /LADDER_STORE.*PGPASSWORD or ~\/\.pgpass/);

    // The same store from the environment: it is the one used (the connection came), no warning.
    const db2 = await silentListener();
    t.after(() => db2.close());
    const e = await whileRunning(['nodes', 'list'], db2, {
      LADDER_STORE: `postgres://ladder:${PW}@127.0.0.1:${db2.port}/ladder`,
    });
    assert.ok(!e.cmdline.includes(PW));
    assert.doesNotMatch(e.stderr, /warning/);
  },
);

test(
  "a raw '@' in a --store password (node-postgres reads it): starred out all the same",
  {
    skip: process.platform !== 'linux' && 'Linux /proc only',
  },
  async (t) => {
    const db = await silentListener();
    t.after(() => db.close());
    // The password is PW@ (to the URL's last '@'); node-postgres connects to the silent listener,
    // so the process stays up. (A raw '/' is refused before any connection: store-password.test.ts.)
    const url = `postgres://ladder:${PW}@@127.0.0.1:${db.port}/ladder`;
    const r = await whileRunning(['nodes', '--store', url, 'list'], db);
    assert.ok(!r.cmdline.includes(PW), `cmdline: ${r.ps}`);
    assert.ok(
      r.ps.startsWith(`ladder nodes --store postgres://ladder:***@127.0.0.1:${db.port}/ladder list`),
      r.ps,
    );
    assert.ok(!r.stderr.includes(PW), r.stderr);
    assert.equal(r.stderr.match(/warning: --store carries a PostgreSQL password/g)?.length, 1, r.stderr);
  },
);

test(
  "the API's secret path in --api: one warning, starred out; LADDER_API is quiet",
  {
    skip: process.platform !== 'linux' && 'Linux /proc only',
  },
  async (t) => {
    const api = await silentListener();
    t.after(() => api.close());
    const target = `https://127.0.0.1:${api.port}/${PW}`;
    const pin = ['--cert-sha256', 'AA'.repeat(32)];
    const r = await whileRunning(['keys', '--api', target, ...pin, 'list'], api);
    assert.ok(!r.cmdline.includes(PW), r.ps);
    assert.ok(r.ps.includes(`--api https://127.0.0.1:${api.port}/*** --cert-sha256`), r.ps);
    assert.equal(r.stderr.match(/warning: --api carries/g)?.length, 1, r.stderr);
    assert.ok(!r.stderr.includes(PW));

    const api2 = await silentListener();
    t.after(() => api2.close());
    const e = await whileRunning(['keys', ...pin, 'list'], api2, {
      LADDER_API: `https://127.0.0.1:${api2.port}/${PW}`,
    });
    assert.doesNotMatch(e.stderr, /warning/);
  },
);
