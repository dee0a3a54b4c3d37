/**
 * Issue 14's soak as a bench: a managed server (`node ROOT/bin/ladder.js server --workers 2`, a
 * process of its own at its production priorities) with a --keys store; a measuring client (a
 * thread of this process, test/helpers/soak-client.ts) sends tunnelled requests unloaded, then
 * while this process makes --posts POST /access-keys and --gets full GET /access-keys at once.
 * Prints unloaded p50/p99, loaded p50/p99/max, whether max <= unloaded p99 + 100 ms (the strict
 * bound), the API burst's time, the server's RSS before and its peak (VmHWM), the CPU each of its
 * threads used during the burst (the main thread is the management plane), and the client
 * thread's own event-loop delay. --root runs another checkout's server for an A/B on one machine.
 *
 * --inproc runs the server in this process instead (this checkout only, as the soak test does)
 * and also prints, for the burst, each data-plane worker's and the management thread's event-loop
 * delay, GC pauses and key-delta times (WorkerPlane.loopStats): which thread stalled.
 *
 * In process this thread's priority is lowered as `ladder server` does. V8's GC is per thread
 * only with `node --single-threaded-gc --import tsx bench/soak.ts --inproc`; for the spawned
 * server, --node-flags --single-threaded-gc (a V8 flag that must be on node's command line:
 * switched at run time, V8 aborts at its next marking).
 *
 *   node --import tsx bench/soak.ts [--root DIR] [--keys 5000] [--posts 500] [--gets 200]
 *     [--rounds 1] [--inproc] [--node-flags FLAG]
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startManaged } from '../src/cli/managed.js';
import { LoopMeter } from '../src/server/workers/loop-stats.js';
import type { LoopStats } from '../src/server/workers/messages.js';
import { silentLogger } from '../src/shared/logger.js';
import { createAccessKeys, openStore, parseStoreLocation } from '../src/store/index.js';
import { api, flags as managedFlags } from '../test/api/managed-helpers.js';
import { REPO_ROOT } from '../test/helpers/peers.js';
import { percentile as pct, startSoakClient } from '../test/helpers/soak-client.js';
import { flagOf, procKib, spawnManagedServer } from './managed-server.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: string): string => flagOf(args, name, dflt);
const ROOT = resolve(flag('root', REPO_ROOT));
const KEYS = Number(flag('keys', '5000'));
const POSTS = Number(flag('posts', '500'));
const GETS = Number(flag('gets', '200'));
const ROUNDS = Number(flag('rounds', '1'));
const INPROC = args.includes('--inproc');
/** Flags for the spawned server's node, e.g. --node-flags --single-threaded-gc. */
const NODE_FLAGS = flag('node-flags', '')
  .split(' ')
  .filter((x) => x !== '');

const kib = procKib;
/** CPU ticks (user + system) of each thread of `pid`, by thread id. */
function threadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, Number(f[11]) + Number(f[12]));
    } catch {
      // the thread ended
    }
  }
  return out;
}
function cpuLine(pid: number, before: Map<string, number>, ms: number): string {
  const after = threadTicks(pid);
  const used = [...after].map(([tid, t]) => [tid, (t - (before.get(tid) ?? 0)) * 10] as const);
  const main = used.find(([tid]) => tid === String(pid))?.[1] ?? 0;
  const others = used.filter(([tid]) => tid !== String(pid)).sort((a, b) => b[1] - a[1]);
  const total = used.reduce((s, [, v]) => s + v, 0);
  const pctOf = (v: number): string => `${((100 * v) / ms).toFixed(0)}%`;
  return (
    `CPU over the burst: process ${pctOf(total)} of one core, main thread ${pctOf(main)}, ` +
    `busiest other threads ${others
      .slice(0, 4)
      .map(([, v]) => pctOf(v))
      .join(' ')}`
  );
}
const fmt = (s: LoopStats): string =>
  `delay p99 ${s.delayP99.toFixed(0)} max ${s.delayMax.toFixed(0)} ms, util ${s.utilization.toFixed(2)}, ` +
  `GC ${s.gcs} (max ${s.gcMax.toFixed(1)} ${s.gcMaxKind}, total ${s.gcTotal.toFixed(0)} ms), ` +
  `deltas ${s.deltas} (max ${s.deltaMax.toFixed(1)} ms)`;

/**
 * A control: an idle process that only measures its own event-loop delay, until stdin closes,
 * then prints its p99 and max (ms). With `ownSession` it is in a session of its own (its own
 * scheduler autogroup, as another service on the machine); otherwise in this bench's (the server's).
 */
const PROBE = `const h = require('node:perf_hooks').monitorEventLoopDelay({ resolution: 10 }); h.enable();
setInterval(() => {}, 1000);
process.stdin.resume().on('end', () => { process.stdout.write((h.percentile(99) / 1e6).toFixed(0) + ' ' + (h.max / 1e6).toFixed(0)); process.exit(0); });`;
function probe(ownSession: boolean): { stop(): Promise<string> } {
  const child = spawn(process.execPath, ['-e', PROBE], {
    detached: ownSession,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  return {
    stop: async () => {
      child.stdin.end();
      await new Promise((r) => child.once('exit', r));
      const [p99, max] = out.split(' ');
      return `p99 ${p99} max ${max} ms`;
    },
  };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

interface Server {
  pid: number;
  cfg: { apiUrl: string; certSha256: string };
  dataPort: number;
  loopStats?: () => Promise<{ workers: LoopStats[]; main: LoopStats }>;
  /** In process: the store calls made since the last call (name: calls, rows returned). */
  storeCalls?: () => string;
  close(): Promise<void>;
}

async function spawned(dir: string, prefix: string, dataPort: number): Promise<Server> {
  const extra = ['--workers', '2', '--allow-private']; // the echo origin is on loopback
  const child = await spawnManagedServer(ROOT, dir, { extra, nodeFlags: NODE_FLAGS, port: dataPort });
  const apiPort = child.apiPort;
  // A restart prints no secrets: the API's port from the banner, its pin from the data directory.
  const pem = readFileSync(join(dir, 'api-cert.pem'), 'utf8');
  const certSha256 = new X509Certificate(pem).fingerprint256.replace(/:/g, '');
  return {
    pid: child.pid,
    cfg: { apiUrl: `https://127.0.0.1:${apiPort}/${prefix}`, certSha256 },
    dataPort,
    close: () => child.stop(),
  };
}

/** Count the store's calls and the rows they return (wrapping its methods on the instance). */
function countStoreCalls(store: Record<string, unknown>): () => string {
  const seen = new Map<string, { calls: number; rows: number }>();
  let proto = Object.getPrototypeOf(store) as object | null;
  while (proto && proto !== Object.prototype) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const f = Object.getOwnPropertyDescriptor(proto, name)?.value as unknown;
      if (name === 'constructor' || typeof f !== 'function' || Object.hasOwn(store, name)) continue;
      store[name] = function (this: unknown, ...a: unknown[]): unknown {
        const r = (f as (...x: unknown[]) => unknown).apply(this, a);
        const e = seen.get(name) ?? { calls: 0, rows: 0 };
        seen.set(name, e);
        e.calls++;
        if (r instanceof Promise) {
          void r.then(
            (v: unknown) => {
              const rows = Array.isArray(v) ? v : (v as { keys?: unknown[] } | undefined)?.keys;
              if (Array.isArray(rows)) e.rows += rows.length;
            },
            () => undefined,
          );
        }
        return r;
      };
    }
    proto = Object.getPrototypeOf(proto) as object | null;
  }
  return () => {
    const out = [...seen].sort((a, b) => b[1].rows - a[1].rows || b[1].calls - a[1].calls);
    seen.clear();
    return out.map(([n, e]) => `${n} ${e.calls}${e.rows > 0 ? ` (${e.rows} rows)` : ''}`).join(', ');
  };
}

async function inproc(dir: string, dataPort: number): Promise<Server> {
  // This thread's priority lowered as `ladder server` does; each thread collects its own garbage
  // only if node was started with --single-threaded-gc (bin/ladder.js sets it for `server`).
  const m = await startManaged({ ...managedFlags(dir), port: String(dataPort), workers: '2' }, silentLogger, {
    enforceIntervalMs: 60_000,
    lowerPriority: true,
  });
  const cfg = JSON.parse(m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'))!) as Server['cfg'];
  const meter = new LoopMeter();
  const calls = countStoreCalls(m.store as unknown as Record<string, unknown>);
  const plane = m.plane as unknown as { loopStats(): Promise<LoopStats[]>; address: AddressInfo };
  return {
    pid: process.pid,
    cfg,
    dataPort: plane.address.port,
    loopStats: async () => ({ workers: await plane.loopStats(), main: meter.take() }),
    storeCalls: calls,
    close: async () => {
      meter.stop();
      await m.close();
    },
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-bench-soak-'));
  try {
    const store = await openStore(parseStoreLocation(undefined, dir));
    // The keys' port is the data plane's (a key of another port would get a listener of its own).
    const dataPort = await freePort();
    await store.updateSettings({ portForNewAccessKeys: dataPort });
    await createAccessKeys(store, { count: KEYS, method: 'chacha20-ietf-poly1305', name: 'bench' });
    const prefix = (await store.getSettings()).apiPrefix;
    const first = (await store.listKeys())[0]!;
    await store.close();
    const client = startSoakClient(); // before an in-process server lowers this thread's priority
    const server = INPROC ? await inproc(dir, dataPort) : await spawned(dir, prefix, dataPort);
    await client.connect({ port: server.dataPort, method: first.method, password: first.secret });
    const call = (method: string, body?: unknown): Promise<{ status: number }> =>
      api(server.cfg, method, '/access-keys', body).catch(() => ({ status: 0 }));
    console.log(
      `root ${INPROC ? `${REPO_ROOT} (in process)` : `${ROOT} ${NODE_FLAGS.join(' ')}`}: ${KEYS} keys, ${POSTS} POST + ${GETS} GET`,
    );
    for (let round = 1; round <= ROUNDS; round++) {
      const load = loadavg()[0]!.toFixed(1);
      const idle = await client.run(15_000, 300);
      const p99 = pct(idle.lat, 99);
      const rssBefore = kib(server.pid, 'VmRSS');
      if (!INPROC) writeFileSync(`/proc/${server.pid}/clear_refs`, '5'); // VmHWM := VmRSS
      await server.loopStats?.(); // starts measuring
      server.storeCalls?.();
      const ticks = threadTicks(server.pid);
      const probes = [probe(false), probe(true)];
      const loadedP = client.run(180_000, 1_000_000);
      const t0 = Date.now();
      const results = await Promise.all([
        ...Array.from({ length: POSTS }, (_, i) => call('POST', { name: `soak ${i}` })),
        ...Array.from({ length: GETS }, () => call('GET')),
      ]);
      const apiMs = Date.now() - t0;
      const cpu = cpuLine(server.pid, ticks, apiMs);
      const loops = await server.loopStats?.();
      const [sameSession, ownSession] = await Promise.all(probes.map((p) => p.stop()));
      client.stop();
      const loaded = await loadedP;
      const max = Math.max(...loaded.lat);
      const statuses = new Map<number, number>();
      for (const r of results) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      console.log(
        `round ${round} (load ${load}): unloaded n=${idle.lat.length} p50 ${pct(idle.lat, 50).toFixed(1)} ` +
          `p99 ${p99.toFixed(1)} ms; loaded n=${loaded.lat.length} p50 ${pct(loaded.lat, 50).toFixed(1)} ` +
          `p99 ${pct(loaded.lat, 99).toFixed(1)} max ${max.toFixed(1)} ms; strict bound (p99 + 100) ` +
          `${max <= p99 + 100 ? 'held' : 'NOT held'}; API burst ${apiMs} ms, statuses ` +
          `${JSON.stringify([...statuses])}; server RSS ${(rssBefore / 1024).toFixed(0)} -> peak ` +
          `${(Math.max(kib(server.pid, 'VmHWM'), rssBefore) / 1024).toFixed(0)} MiB`,
      );
      console.log(`  ${cpu}`);
      console.log(
        `  idle probe process loop delay: in this session ${sameSession}; in a session of its own ${ownSession}`,
      );
      console.log(
        `  client thread loop delay p99 ${loaded.loopP99.toFixed(0)} max ${loaded.loopMax.toFixed(0)} ms`,
      );
      if (loops) {
        loops.workers.forEach((s, i) => console.log(`  worker ${i}: ${fmt(s)}`));
        console.log(`  main thread: ${fmt(loops.main)}`);
        console.log(`  store calls: ${server.storeCalls?.() ?? ''}`);
      }
    }
    await client.terminate();
    await server.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
