import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/shared/clock.js';
import {
  KeyEnforcer,
  openStore,
  parseStoreLocation,
  HOUR_MS,
  type StoreLocation,
} from '../../src/store/index.js';
import { freePort } from '../helpers/net.js';
import { check2022RoundTrip } from './keys2022-roundtrip.js';
import { skipUnless } from '../helpers/prereq.js';

/**
 * The same Store on a real PostgreSQL server (fleet mode), started here with initdb/pg_ctl in a
 * temp dir on loopback. Skips loudly when PostgreSQL is not installed; fails instead under CI.
 */

/** initdb/pg_ctl on PATH, else Debian's /usr/lib/postgresql/<version>/bin (not on PATH there). */
function pgBin(name: string): string | undefined {
  if (spawnSync(name, ['--version']).status === 0) return name;
  let versions: string[];
  try {
    versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  } catch {
    return undefined;
  }
  for (const v of versions) {
    const p = join('/usr/lib/postgresql', v, 'bin', name);
    if (existsSync(p)) return p;
  }
  return undefined;
}
const INITDB = pgBin('initdb');
const PG_CTL = pgBin('pg_ctl');
const have = INITDB !== undefined && PG_CTL !== undefined;
const asRoot = process.getuid?.() === 0;
// PostgreSQL refuses to run as root: as root, run it as the postgres user.
const RUNUSER = ['runuser', '/usr/sbin/runuser', '/sbin/runuser'].find(
  (c) => spawnSync(c, ['--version']).status === 0,
);
const runAs = (cmd: string, args: string[]) =>
  asRoot
    ? execFileSync(RUNUSER ?? 'runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: 'ignore' })
    : execFileSync(cmd, args, { stdio: 'ignore' });

let dir = '';
let loc: StoreLocation;
let started = false;

const SKIP = skipUnless(have, 'PostgreSQL (initdb, pg_ctl; Debian package postgresql) not installed');

before(async () => {
  if (!have) return;
  dir = mkdtempSync(join(tmpdir(), 'ladder-pg-'));
  if (asRoot) execFileSync('chown', ['postgres', dir]);
  const port = await freePort();
  runAs(INITDB!, ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'ladder', '--no-sync']);
  runAs(PG_CTL!, [
    '-D',
    join(dir, 'data'),
    '-o',
    `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off`,
    '-l',
    join(dir, 'log'),
    '-w',
    'start',
  ]);
  started = true;
  loc = parseStoreLocation(`postgres://ladder@127.0.0.1:${port}/postgres`, '.');
});

after(() => {
  if (started) runAs(PG_CTL!, ['-D', join(dir, 'data'), '-m', 'immediate', '-w', 'stop']);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const base = { method: 'chacha20-ietf-poly1305', secret: 'pw', port: 4444 };

test(
  'postgres: keys, 100 parallel creations/deletions, usage sums, restart, enforcement',
  { skip: SKIP },
  async () => {
    assert.equal(loc.kind, 'postgres');
    const clock = new ManualClock(Date.UTC(2026, 10, 22, 10, 0));
    let store = await openStore(loc, { clock });
    assert.equal(store.dialect, 'postgres');
    const made = await Promise.all(
      Array.from({ length: 100 }, (_, i) => store.createKey({ ...base, name: `k${i}` })),
    );
    assert.equal(new Set(made.map((k) => k.id)).size, 100);
    await Promise.all([
      ...made.slice(0, 50).map((k) => store.deleteKey(k.id)),
      ...Array.from({ length: 50 }, () => store.createKey(base)),
    ]);
    assert.equal(await store.countKeys(), 100);
    const keep = made[60]!;
    store.addBytes(keep.id, 3_000_000_000, 4_000_000_000); // > 2^32: bigint columns
    clock.advance(HOUR_MS);
    store.addBytes(keep.id, 1, 1);
    assert.deepEqual((await store.usageSince(0)).get(keep.id), { up: 3_000_000_001, down: 4_000_000_001 });
    await store.updateKey(keep.id, { dataLimitBytes: 5_000_000_000, expiresAt: clock.now() + 1000 });
    await store.close();

    store = await openStore(loc, { clock });
    try {
      const k = await store.getKey(keep.id);
      assert.equal(k?.dataLimitBytes, 5_000_000_000);
      assert.equal(typeof k?.createdAt, 'number');
      assert.equal(k?.lastSeenAt, clock.now());
      const ids: string[] = [];
      const control = {
        setKeys: (keys: readonly { id: string }[]) => ids.splice(0, ids.length, ...keys.map((x) => x.id)),
        closeKeyConnections: () => 0,
        openConnections: () => new Map<string, number>(),
      };
      const enforcer = new KeyEnforcer({ store, control, clock });
      await enforcer.refresh();
      assert.equal(ids.length, 99, 'over-limit key left out');
      assert.ok(!ids.includes(keep.id));
    } finally {
      await store.close();
    }
  },
);

test(
  'postgres: 2022 keys (multi-user iPSK:uPSK, single-user) and identity PSKs round-trip',
  { skip: SKIP },
  async () => {
    await check2022RoundTrip(loc);
  },
);
