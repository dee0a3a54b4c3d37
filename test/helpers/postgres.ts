/**
 * A throwaway PostgreSQL cluster for tests (fleet mode): initdb + pg_ctl in a temp dir, listening
 * on 127.0.0.1 only, fsync off. Debian puts initdb/pg_ctl under /usr/lib/postgresql/<v>/bin (not
 * on PATH); PostgreSQL refuses to run as root, so as root it runs as the postgres user. Missing
 * PostgreSQL skips loudly on a laptop and fails under CI=true (see prereq.ts).
 *
 * The cluster can be stopped and started again on the same port (`stop()`/`start()`), for tests
 * of a database outage.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type Pg from 'pg';
import { freePort } from './net.js';
import { skipUnless } from './prereq.js';

/** initdb/pg_ctl on PATH, else Debian's /usr/lib/postgresql/<version>/bin. */
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
export const HAVE_POSTGRES = INITDB !== undefined && PG_CTL !== undefined;
/** For `{ skip: SKIP_WITHOUT_POSTGRES }` on a describe/test. */
export const SKIP_WITHOUT_POSTGRES = skipUnless(
  HAVE_POSTGRES,
  'PostgreSQL (initdb, pg_ctl; Debian package postgresql) not installed',
);

const asRoot = process.getuid?.() === 0;
const RUNUSER = ['runuser', '/usr/sbin/runuser', '/sbin/runuser'].find(
  (c) => spawnSync(c, ['--version']).status === 0,
);
const runAs = (cmd: string, args: string[]): void => {
  if (asRoot) execFileSync(RUNUSER ?? 'runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: 'ignore' });
  else execFileSync(cmd, args, { stdio: 'ignore' });
};

export interface PgCluster {
  /** postgres://ladder@127.0.0.1:PORT/postgres (trust authentication, loopback only). */
  url: string;
  port: number;
  /** Fast stop (immediate): connections break as in a crash or a network cut. */
  stop(): void;
  /** Start again on the same port and data directory. */
  start(): void;
  /** Stop (if running) and delete the data directory. */
  destroy(): void;
}

/** Create database `name` in the cluster at `url` (…/postgres); returns the new database's URL. */
export async function createDatabase(url: string, name: string): Promise<string> {
  const { Client } = createRequire(import.meta.url)('pg') as typeof Pg;
  const admin = new Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  return url.replace(/\/postgres$/, `/${name}`);
}

/**
 * Create and start a cluster; call destroy() after (e.g. in `after`). Requires HAVE_POSTGRES.
 * `maxConnections` (default 300): the fleet bench's 100 nodes hold more.
 */
export async function startPostgres(opts: { maxConnections?: number } = {}): Promise<PgCluster> {
  if (!HAVE_POSTGRES) throw new Error('PostgreSQL is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'ladder-pg-'));
  if (asRoot) execFileSync('chown', ['postgres', dir]);
  const port = await freePort();
  const data = join(dir, 'data');
  runAs(INITDB!, ['-D', data, '-A', 'trust', '-U', 'ladder', '--no-sync']);
  let running = false;
  const start = (): void => {
    runAs(PG_CTL!, [
      '-D',
      data,
      '-o',
      `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c max_connections=${opts.maxConnections ?? 300}`,
      '-l',
      join(dir, 'log'),
      '-w',
      'start',
    ]);
    running = true;
  };
  const stop = (): void => {
    if (!running) return;
    runAs(PG_CTL!, ['-D', data, '-m', 'immediate', '-w', 'stop']);
    running = false;
  };
  start();
  return {
    url: `postgres://ladder@127.0.0.1:${port}/postgres`,
    port,
    stop,
    start,
    destroy: () => {
      try {
        stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
