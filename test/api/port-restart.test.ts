import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startManaged, type ManagedFlags } from '../../src/cli/managed.js';
import { createLogger } from '../../src/shared/logger.js';
import { freePort } from '../helpers/net.js';
import { HAVE_POSTGRES, startPostgres } from '../helpers/postgres.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { api, flags } from './managed-helpers.js';

/** The Outline Manager access config line of a banner. */
function accessConfig(banner: string): { apiUrl: string; certSha256: string } {
  return JSON.parse(banner.split('\n').find((l) => l.startsWith('{"apiUrl":'))!) as {
    apiUrl: string;
    certSha256: string;
  };
}

type Managed = Awaited<ReturnType<typeof startManaged>>;

/** PUT `body` at `path` through the API, stop the server, clear the log lines, start it again. */
async function putAndRestart(
  m: Managed,
  path: string,
  body: unknown,
  lines: string[],
  start: () => Promise<Managed>,
): Promise<Managed> {
  const put = await api(accessConfig(m.banner), 'PUT', path, body);
  assert.equal(put.status, 204, put.body);
  await m.close();
  lines.length = 0;
  return start();
}

/**
 * Finding 4: `--port` sets the port for new keys at the first server start on a store only; a
 * later restart with a different --port keeps the value set through the API and says so in one
 * line, on SQLite as on PostgreSQL (a fleet node). The first start's --port taking effect is the
 * control (the flag is not simply ignored).
 */
for (const kind of ['sqlite', 'postgres'] as const) {
  test(`${kind}: a restart with --port keeps the port for new keys set through the API`, async (t) => {
    if (kind === 'postgres' && !requireOrSkip(t, HAVE_POSTGRES, 'PostgreSQL (initdb, pg_ctl)')) return;
    const dir = mkdtempSync(join(tmpdir(), 'ladder-port-restart-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const pg = kind === 'postgres' ? await startPostgres() : undefined;
    t.after(() => pg?.destroy());
    const [p1, p2, apiPort] = [await freePort(), await freePort(), await freePort()];
    const lines: string[] = [];
    const log = createLogger({
      level: 'info',
      destination: { write: (l: string) => lines.push(l) } as never,
    });
    const f: ManagedFlags = {
      ...flags(dir),
      port: String(p1),
      apiPort: String(apiPort),
      metrics: false,
      ...(pg ? { store: pg.url, node: 'n1' } : {}),
    };
    const start = () => startManaged(f, log, { drawQr: false });
    let m = await start();
    t.after(() => m.close());
    assert.equal((await m.store.getSettings()).portForNewAccessKeys, p1, 'the first start sets --port');
    const cfg = accessConfig(m.banner);
    m = await putAndRestart(m, '/server/port-for-new-access-keys', { port: p2 }, lines, start);
    assert.equal((await m.store.getSettings()).portForNewAccessKeys, p2, 'the API value stays');
    const key = JSON.parse((await api(cfg, 'POST', '/access-keys', { name: 'after' })).body) as {
      port: number;
    };
    assert.equal(key.port, p2, 'a new key gets the API value');
    assert.ok(m.pool.ports.includes(p1) || m.plane.address.port === p1, '--port is still listened on');
    const said = lines.filter((l) => l.includes('differs from the store'));
    assert.equal(said.length, 1, lines.join(''));
    assert.match(said[0]!, new RegExp(`--port ${p1} .* ${p2}, which stays`));
  });
}

/**
 * A restart with --public-host puts the flag's host back into hostnameForAccessKeys (it names
 * where this server is reached), which undoes a change made through the API (Outline Manager's
 * "hostname" setting). It is not silent: one info line names both hosts and how to keep the API's
 * value. Control: a restart whose flag matches the stored host says nothing.
 */
test('a restart with --public-host that replaces the hostname set through the API says so', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-host-restart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  const log = createLogger({ level: 'info', destination: { write: (l: string) => lines.push(l) } as never });
  const f: ManagedFlags = { ...flags(dir), apiPort: String(await freePort()), metrics: false };
  const start = () => startManaged(f, log, { drawQr: false });
  let m = await start();
  t.after(() => m.close());
  m = await putAndRestart(
    m,
    '/server/hostname-for-access-keys',
    { hostname: 'vpn.example.net' },
    lines,
    start,
  );
  assert.equal((await m.store.getSettings()).hostnameForAccessKeys, '127.0.0.1', 'the flag wins');
  const said = lines.filter((l) => l.includes('--public-host'));
  assert.equal(said.length, 1, lines.join(''));
  assert.match(
    said[0]!,
    /--public-host 127\.0\.0\.1 replaces the hostname for access keys, vpn\.example\.net/,
  );
  await m.close();
  lines.length = 0;
  m = await start();
  assert.deepEqual(
    lines.filter((l) => l.includes('--public-host')),
    [],
    'same host: no line',
  );
});
