/**
 * What the fleet tests share: `ladder server --node` processes on one PostgreSQL store, each on its
 * own loopback address (127.0.0.N) and the same data port, as a fleet's hosts would be; their API
 * reached with the certificate each made; and a probe "does this key carry traffic through that
 * node now".
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, parseStoreLocation, type KyselyStore } from '../../src/store/index.js';
import { run, waitForStdout, type Run } from '../helpers/cli-run.js';
import { openTestTunnel, type TestTunnel } from '../helpers/test-client.js';
import { freePort } from '../helpers/net.js';
import { startPostgres, type PgCluster } from '../helpers/postgres.js';
import { api, echoServer } from '../api/managed-helpers.js';

export interface FleetNodeProc {
  name: string;
  host: string;
  dataDir: string;
  run: Run;
  apiPort: number;
  /** The API certificate's SHA-256 (hex, no colons). */
  certSha256: string;
  metricsUrl?: string | undefined;
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }>;
}

export interface NodeStart {
  name: string;
  host: string;
  dataDir: string;
  pgUrl: string;
  port: number;
  apiPrefix: () => Promise<string>;
  env?: NodeJS.ProcessEnv;
  extra?: string[];
  /** What keys list (default `host`): e.g. a lab forwarder's address in front of the node. */
  publicHost?: string;
  /** The API's bind address (default 127.0.0.1; `host` makes the node's URLs reachable). */
  apiHost?: string;
}

/** Start `ladder server --node NAME` and wait for its banner. */
export async function startNodeProc(o: NodeStart): Promise<FleetNodeProc> {
  const args = ['server', '--store', o.pgUrl, '--node', o.name, '--public-host', o.publicHost ?? o.host];
  args.push('--data-dir', o.dataDir, '--host', o.host, '--port', String(o.port), '--workers', '1');
  args.push(
    '--api-host',
    o.apiHost ?? '127.0.0.1',
    '--api-port',
    '0',
    '--allow-private',
    ...(o.extra ?? ['--no-metrics']),
  );
  const r = run(args, { env: { LADDER_LOG_LEVEL: 'info', ...o.env } });
  await waitForStdout(r, /Ctrl-C to stop/, 90_000);
  const apiPort = Number(/management API on port (\d+)/.exec(r.stdout())![1]);
  const metricsUrl = /Prometheus metrics: (\S+)/.exec(r.stdout())?.[1];
  const pem = readFileSync(join(o.dataDir, 'api-cert.pem'), 'utf8');
  const certSha256 = new X509Certificate(pem).fingerprint256.replace(/:/g, '');
  const prefix = await o.apiPrefix();
  const cfg = { apiUrl: `https://${o.apiHost ?? '127.0.0.1'}:${apiPort}/${prefix}`, certSha256 };
  return {
    name: o.name,
    host: o.host,
    dataDir: o.dataDir,
    run: r,
    apiPort,
    certSha256,
    metricsUrl,
    call: (method, path, body) => api(cfg, method, path, body),
  };
}

/**
 * A node of `fx` on `host` (its data dir `fx.dir/NAME`, its API on `host` so its URLs are
 * reachable), stopped by `fx.close()`; `extra` replaces the default `--no-metrics`.
 */
export async function startOwnNode(
  fx: FleetFixture,
  name: string,
  host: string,
  extra?: string[],
): Promise<FleetNodeProc> {
  const dataDir = join(fx.dir, name);
  mkdirSync(dataDir);
  const n = await startNodeProc({
    name,
    host,
    apiHost: host,
    dataDir,
    pgUrl: fx.pg.url,
    port: fx.port,
    apiPrefix: () => fx.apiPrefix(),
    ...(extra ? { extra } : {}),
  });
  fx.procs.push(n.run);
  return n;
}

export interface KeyCreds {
  method: string;
  password: string;
}

/**
 * One tunnel through `host:port` with the key to the echo server: resolves with it when the echo
 * comes back within `ms`, undefined when it does not (an unknown key gets no answer at all).
 */
export async function tryTunnel(
  host: string,
  port: number,
  key: KeyCreds,
  echoPort: number,
  ms = 400,
): Promise<TestTunnel | undefined> {
  const word = Buffer.from('ping');
  let t: TestTunnel;
  try {
    t = await openTestTunnel({
      host,
      port,
      ...key,
      target: { host: '127.0.0.1', port: echoPort },
      initial: word,
    });
  } catch {
    return undefined;
  }
  try {
    await t.read(word.length, ms);
    return t;
  } catch {
    t.destroy();
    return undefined;
  }
}

/** Poll until the key carries traffic through host:port; the time it took (ms), or throws after `limitMs`. */
export async function untilCarries(
  host: string,
  port: number,
  key: KeyCreds,
  echoPort: number,
  limitMs: number,
): Promise<{ ms: number; tunnel: TestTunnel }> {
  const start = Date.now();
  for (let i = 0; i < 1000 && Date.now() - start < limitMs; i++) {
    const t = await tryTunnel(host, port, key, echoPort, 300);
    if (t) return { ms: Date.now() - start, tunnel: t };
  }
  throw new Error(`the key did not carry traffic through ${host}:${port} within ${limitMs} ms`);
}

export async function stopProc(p: Run): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  await p.exit;
  clearTimeout(t);
}

/**
 * What every fleet test sets up in `before`: a PostgreSQL cluster, a data directory (one
 * subdirectory per node), the data port every node shares, and an echo server; `close()` (in
 * `after`) stops the processes in `procs`, runs `cleanups`, and removes it all.
 */
export interface FleetFixture {
  pg: PgCluster;
  dir: string;
  port: number;
  echoPort: number;
  /** The test's own client of the store, opened at the first call (after the first node made it). */
  store(): Promise<KyselyStore>;
  /** The management API's secret prefix (startNodeProc's apiPrefix). */
  apiPrefix(): Promise<string>;
  procs: Run[];
  cleanups: (() => Promise<void>)[];
  close(): Promise<void>;
}

export async function fleetFixture(dirPrefix: string): Promise<FleetFixture> {
  const pg = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), dirPrefix));
  const procs: Run[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  let opened: KyselyStore | undefined;
  const store = async (): Promise<KyselyStore> =>
    (opened ??= await openStore(parseStoreLocation(pg.url, dir)));
  return {
    pg,
    dir,
    port: await freePort(),
    echoPort: await echoServer({ after: (fn) => void cleanups.push(fn) }),
    store,
    apiPrefix: async () => (await (await store()).getSettings()).apiPrefix,
    procs,
    cleanups,
    async close() {
      for (const p of procs) await stopProc(p);
      await opened?.close();
      for (const c of cleanups) await c();
      pg.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
