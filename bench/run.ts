/**
 * `npm run bench`: Ladder (client + server, spawned through its CLI) versus shadowsocks-libev
 * (ss-local + ss-server), same cipher, same loopback topology, side by side in one invocation:
 *
 *   app (this process) ──SOCKS5──▶ client ──AEAD──▶ server ──▶ sink / source / echo (this process)
 *
 * Phases (each with its own timeout, the whole run capped):
 *   throughput  bulk upload and download of --size (default 1 GiB) per run, median of --runs
 *               (default 3), for each --methods (default aes-256-gcm, chacha20-ietf-poly1305);
 *               runs alternate ladder/libev order so drift on a shared machine hits both alike
 *   latency     --latency-n (default 2,000) short request/response connections (SOCKS5 handshake,
 *               32-byte request, 32-byte echo, close), interleaved ladder / libev / direct;
 *               p50 and p99 of total time and of the time added over direct
 *   floor       (only with --phases …,floor) the same topology with Ladder's relay and no crypto
 *               (bench/floor-relay.ts): the CPU Node's sockets cost before any encryption
 *   memory      VmRSS of client + server processes with --idle-n (default 1,000) idle tunnelled
 *               connections open (each proven alive by one echo round trip), then with twice
 *               as many: the RSS each connection adds at N and at 2N, and between them (what one
 *               more connection costs, without the one-time costs a burst of set-ups brings:
 *               V8's optimizing compiler paged in, arenas of GC threads). Ladder runs as a user
 *               runs it, through bin/ladder.js (its start-up V8 flags), from the dist/ just built
 *   sip022-auth server time to authenticate a first packet: 2022 identity headers with 1 vs
 *               10,000 users, SIP004 with 1,000 keys (worst case, returning) (bench/sip022-auth.ts)
 *   sip022-throughput  2022 edition next to SIP004 in Ladder, libev SIP004 reference
 *               (bench/sip022-throughput.ts; Ladder from source, 64 MiB per run)
 *   udp         UDP round trips/s through the relays, Ladder vs libev (bench/udp-pps.ts)
 *   web         (only with --phases …,web) Ladder's web front vs ss-server + v2ray-plugin over
 *               WebSocket+TLS, both clients, single flow and 200 short connections (bench/web.ts)
 *   The last ones run as child scripts; their tables are printed after the main table.
 *
 * Prints a table (ours, theirs, ratio) and writes JSON to bench/results/latest.json.
 * Flags: --size 256MiB --runs 3 --methods a,b --latency-n N --idle-n N --phases throughput,latency,memory
 *        --cap-min 15 --profile (run the Ladder processes under --cpu-prof, profiles in bench/results/prof)
 *        --json FILE  --ours libev (noise-floor check: libev against itself)
 *        --from-source (run Ladder through tsx; by default `npm run build` compiles it into dist/
 *        first and it runs from there, as an installed package runs dist/)
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import type net from 'node:net';
import type { TestServer } from '../test/helpers/net.js';
import { freePort, readExactly, startEcho, startSink, startSource } from '../test/helpers/net.js';
import type { Method, Peer } from '../test/helpers/peers.js';
import {
  cpuMs,
  REPO_ROOT,
  rssKiB,
  spawnPeer,
  ssUrl,
  startLadderClient,
  startLadderServer,
  startSsLocal,
  startSsServer,
  which,
} from '../test/helpers/peers.js';
import { socks5Connect } from '../test/helpers/socks5.js';
import { downloadCountVia, uploadCountVia } from '../test/helpers/transfer.js';
import { buildDist } from './build-dist.js';
import { oneExchange, REQ } from './exchange.js';
import { median, percentile } from './stats.js';

// ---------------------------------------------------------------------------------------------
// Arguments

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(k|ki|kib|m|mi|mib|g|gi|gib|b)?$/i.exec(s.trim());
  if (!m) throw new Error(`--size: cannot parse "${s}" (examples: 1GiB, 256MiB)`);
  const n = Number(m[1]);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = unit.startsWith('g')
    ? 1024 ** 3
    : unit.startsWith('m')
      ? 1024 ** 2
      : unit.startsWith('k')
        ? 1024
        : 1;
  return Math.round(n * mult);
}

interface Args {
  size: number;
  runs: number;
  methods: Method[];
  latencyN: number;
  latencyMethod: Method;
  idleN: number;
  phases: Set<string>;
  capMin: number;
  profile: boolean;
  json: string;
  /** 'libev' runs libev against itself: a noise-floor check of the harness (ratio should be ~1). */
  ours: 'ladder' | 'libev';
  /** Run Ladder from the TypeScript sources through tsx instead of compiling it first. */
  fromSource: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    size: 1024 ** 3,
    runs: 3,
    methods: ['aes-256-gcm', 'chacha20-ietf-poly1305'],
    latencyN: 2000,
    latencyMethod: 'aes-256-gcm',
    idleN: 1000,
    phases: new Set(['throughput', 'latency', 'memory', 'sip022-auth', 'sip022-throughput', 'udp']),
    capMin: 15,
    profile: false,
    json: join(REPO_ROOT, 'bench', 'results', 'latest.json'),
    ours: 'ladder',
    fromSource: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    const int = (name: string, x: string): number => {
      const n = Number(x);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected a positive integer, got "${x}"`);
      return n;
    };
    switch (k) {
      case '--size':
        a.size = parseSize(v());
        break;
      case '--runs':
        a.runs = int(k, v());
        break;
      case '--methods':
        a.methods = v().split(',') as Method[];
        break;
      case '--latency-n':
        a.latencyN = int(k, v());
        break;
      case '--latency-method':
        a.latencyMethod = v() as Method;
        break;
      case '--idle-n':
        a.idleN = int(k, v());
        break;
      case '--phases':
        a.phases = new Set(v().split(','));
        break;
      case '--cap-min':
        a.capMin = Number(v());
        break;
      case '--profile':
        a.profile = true;
        break;
      case '--from-source':
        a.fromSource = true;
        break;
      case '--json':
        a.json = v();
        break;
      case '--ours': {
        const o = v();
        if (o !== 'ladder' && o !== 'libev') throw new Error('--ours: ladder or libev');
        a.ours = o;
        break;
      }
      case '--help':
        console.log(
          'usage: npm run bench -- [--size 1GiB] [--runs 3] [--methods aes-256-gcm,chacha20-ietf-poly1305] [--latency-n 2000] [--latency-method M] [--idle-n 1000] [--phases throughput,latency,memory,floor,sip022-auth,sip022-throughput,udp,web] [--cap-min 15] [--profile] [--json FILE] [--ours ladder|libev] [--from-source]',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${k} (try --help)`);
    }
  }
  for (const m of [...a.methods, a.latencyMethod]) {
    if (!['aes-128-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305'].includes(m))
      throw new Error(`unknown method ${m}`);
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Utilities

const MiB = 1024 * 1024;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what} timed out after ${(ms / 1000).toFixed(0)} s`)), ms);
    }),
  ]);
}

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

type Impl = 'ladder' | 'libev';
const IMPLS: Impl[] = ['ladder', 'libev'];

interface Stack {
  impl: Impl;
  method: Method;
  client: Peer & { socksPort: number };
  server: Peer & { port: number };
}

const allPeers = new Set<Peer>();
/** The compiled CLI entry, when not running from source. */
let ladderEntry: string | undefined;

/**
 * `npm run build` (scripts/build.mjs: tsc into dist/ and its freshness stamp), then run
 * dist/cli/main.js: exactly what `ladder` runs for a user. dist/ (not a copy under node_modules)
 * so the compiled native.ts finds this checkout's build/Release addon: a worktree whose
 * node_modules is a symlink would otherwise load the addon of the checkout it points into.
 */
function buildLadder(): string {
  buildDist();
  const entry = join(REPO_ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(entry)) throw new Error(`build did not produce ${entry}`);
  return entry;
}

/**
 * `user`: start Ladder through bin/ladder.js, which a user runs (`ladder`, `npm start`), rather
 * than dist/cli/main.js: it sets V8's start-up flags (bin/ladder.js) that idle memory depends on.
 * LADDER_DIST=1: the dist/ this run built (a source file edited meanwhile must not switch it to tsx).
 */
async function startStack(impl: Impl, method: Method, args: Args, user = false): Promise<Stack> {
  const password = `bench-${randomBytes(8).toString('hex')}`;
  let server: Peer & { port: number };
  let client: Peer & { socksPort: number };
  if (impl === 'libev' || args.ours === 'libev') {
    // -n: raise the fd limit for the idle-connection phase.
    server = await startSsServer({ method, password, timeout: 600, extraArgs: ['-n', '8192'] });
    allPeers.add(server);
    client = await startSsLocal({
      method,
      password,
      serverPort: server.port,
      timeout: 600,
      extraArgs: ['-n', '8192'],
    });
  } else {
    const profDir = join(REPO_ROOT, 'bench', 'results', 'prof');
    const nodeArgs = args.profile ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
    const entry = user
      ? { env: ladderEntry ? { LADDER_DIST: '1' } : {} }
      : ladderEntry
        ? { entry: ladderEntry }
        : {};
    server = await startLadderServer({ method, password, nodeArgs, ...entry });
    allPeers.add(server);
    client = await startLadderClient({
      key: ssUrl(method, password, '127.0.0.1', server.port),
      nodeArgs,
      ...entry,
    });
  }
  allPeers.add(client);
  return { impl, method, client, server };
}

async function stopStack(s: Stack): Promise<void> {
  await Promise.all([s.client.stop(5000), s.server.stop(5000)]);
  allPeers.delete(s.client);
  allPeers.delete(s.server);
}

// ---------------------------------------------------------------------------------------------
// Phases

/**
 * Run a separate benchmark script (bench/sip022-*.ts, bench/udp-pps.ts) as a child through tsx;
 * its stdout is the table, its --json file the data. Stopped with the other peers on the cap.
 */
async function scriptPhase(
  name: string,
  file: string,
  scriptArgs: string[],
): Promise<{ table: string; data: unknown }> {
  const json = join(REPO_ROOT, 'bench', 'results', `${name}.json`);
  rmSync(json, { force: true });
  const p = await spawnPeer(
    name,
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'bench', file), ...scriptArgs, '--json', json],
    { maxOutput: 256 * 1024 },
  );
  allPeers.add(p);
  try {
    await new Promise<void>((resolve) => {
      if (p.exited) resolve();
      else p.child.once('exit', () => resolve());
    });
  } finally {
    allPeers.delete(p);
  }
  if (!existsSync(json))
    throw new Error(`${file} wrote no results: ${p.output().split('\n').slice(-3).join(' | ')}`);
  const out = p.output();
  const table = out
    .split('\n')
    .filter((l) => !l.startsWith('['))
    .join('\n')
    .trim();
  return { table, data: JSON.parse(readFileSync(json, 'utf8')) as unknown };
}

interface ThroughputResult {
  method: Method;
  direction: 'upload' | 'download';
  /** MiB/s per run, per impl. */
  runs: Record<Impl, number[]>;
  median: Record<Impl, number>;
  ratio: number;
  /**
   * CPU time (user+sys) the client and server processes spent per GiB moved, median of runs.
   * Less sensitive than MiB/s to other load on a shared machine.
   */
  cpuMsPerGiB: Record<Impl, number>;
  cpuRatio: number;
  /** The same, split into the client and the server process (medians). */
  cpuSplit: Record<Impl, { client: number; server: number }>;
}

async function throughputPhase(
  args: Args,
  sink: TestServer,
  source: TestServer,
  deadline: number,
): Promise<ThroughputResult[]> {
  const out: ThroughputResult[] = [];
  for (const method of args.methods) {
    const stacks = {} as Record<Impl, Stack>;
    try {
      for (const impl of IMPLS) stacks[impl] = await startStack(impl, method, args);
      // Warm-up: a small transfer each way through each stack (JIT, TCP windows).
      for (const impl of IMPLS) {
        await uploadCountVia(
          { proxyPort: stacks[impl].client.socksPort },
          { host: '127.0.0.1', port: sink.port },
          16 * MiB,
        );
        await downloadCountVia(
          { proxyPort: stacks[impl].client.socksPort },
          { host: '127.0.0.1', port: source.port },
          16 * MiB,
        );
      }
      for (const direction of ['upload', 'download'] as const) {
        const runs: Record<Impl, number[]> = { ladder: [], libev: [] };
        const cpu: Record<Impl, number[]> = { ladder: [], libev: [] };
        const split: Record<Impl, { client: number[]; server: number[] }> = {
          ladder: { client: [], server: [] },
          libev: { client: [], server: [] },
        };
        for (let r = 0; r < args.runs; r++) {
          const order = r % 2 === 0 ? IMPLS : [...IMPLS].reverse();
          for (const impl of order) {
            const left = deadline - Date.now();
            if (left < 10_000) throw new Error('overall time cap reached');
            const st = stacks[impl];
            const via = { proxyPort: st.client.socksPort };
            const cc0 = await cpuMs(st.client.pid);
            const sc0 = await cpuMs(st.server.pid);
            const perRunCap = Math.min(left, 5 * 60_000);
            const ms = await withTimeout(
              direction === 'upload'
                ? uploadCountVia(via, { host: '127.0.0.1', port: sink.port }, args.size, perRunCap)
                : downloadCountVia(via, { host: '127.0.0.1', port: source.port }, args.size, perRunCap),
              perRunCap,
              `${impl} ${method} ${direction}`,
            );
            const gib = args.size / 1024 ** 3;
            const clientPerGiB = ((await cpuMs(st.client.pid)) - cc0) / gib;
            const serverPerGiB = ((await cpuMs(st.server.pid)) - sc0) / gib;
            const mibps = args.size / MiB / (ms / 1000);
            const perGiB = clientPerGiB + serverPerGiB;
            runs[impl].push(mibps);
            cpu[impl].push(perGiB);
            split[impl].client.push(clientPerGiB);
            split[impl].server.push(serverPerGiB);
            log(
              `${method} ${direction} ${impl} run ${r + 1}/${args.runs}: ${mibps.toFixed(1)} MiB/s, ${perGiB.toFixed(0)} CPU-ms/GiB (client ${clientPerGiB.toFixed(0)}, server ${serverPerGiB.toFixed(0)})`,
            );
          }
        }
        const med = { ladder: median(runs.ladder), libev: median(runs.libev) };
        const cpuMed = { ladder: median(cpu.ladder), libev: median(cpu.libev) };
        out.push({
          method,
          direction,
          runs,
          median: med,
          ratio: med.ladder / med.libev,
          cpuMsPerGiB: cpuMed,
          cpuRatio: cpuMed.ladder / cpuMed.libev,
          cpuSplit: {
            ladder: { client: median(split.ladder.client), server: median(split.ladder.server) },
            libev: { client: median(split.libev.client), server: median(split.libev.server) },
          },
        });
      }
    } finally {
      await Promise.all(Object.values(stacks).map(stopStack));
    }
  }
  return out;
}

interface FloorResult {
  direction: 'upload' | 'download' | 'short connections';
  /** Bulk: MiB/s. Short connections: p50 total ms per connection. */
  mibps: number;
  /** Bulk: CPU-ms per GiB. Short connections: CPU µs per connection. */
  cpuMsPerGiB: number;
}

/**
 * The no-crypto floor: bench/floor-relay.ts (Ladder's relay with identity transforms) in the
 * same two-process topology. Its CPU per GiB is what Node sockets cost before any encryption.
 */
async function floorPhase(
  args: Args,
  sink: TestServer,
  source: TestServer,
  echo?: TestServer,
): Promise<FloorResult[]> {
  const script = join(REPO_ROOT, 'bench', 'floor-relay.ts');
  const sp = await freePort();
  const cp = await freePort();
  const server = await spawnPeer(
    'floor server',
    process.execPath,
    ['--import', 'tsx', script, 'server', String(sp)],
    { waitPort: sp },
  );
  allPeers.add(server);
  const client = await spawnPeer(
    'floor client',
    process.execPath,
    ['--import', 'tsx', script, 'client', String(cp), String(sp)],
    { waitPort: cp },
  );
  allPeers.add(client);
  try {
    const out: FloorResult[] = [];
    const via = { proxyPort: cp };
    await uploadCountVia(via, { host: '127.0.0.1', port: sink.port }, 16 * MiB);
    for (const direction of ['upload', 'download'] as const) {
      const rates: number[] = [];
      const cpus: number[] = [];
      for (let r = 0; r < args.runs; r++) {
        const c0 = (await cpuMs(client.pid)) + (await cpuMs(server.pid));
        const ms =
          direction === 'upload'
            ? await uploadCountVia(via, { host: '127.0.0.1', port: sink.port }, args.size)
            : await downloadCountVia(via, { host: '127.0.0.1', port: source.port }, args.size);
        const used = (await cpuMs(client.pid)) + (await cpuMs(server.pid)) - c0;
        rates.push(args.size / MiB / (ms / 1000));
        cpus.push(used / (args.size / 1024 ** 3));
        log(
          `floor ${direction} run ${r + 1}/${args.runs}: ${rates.at(-1)!.toFixed(1)} MiB/s, ${cpus.at(-1)!.toFixed(0)} CPU-ms/GiB`,
        );
      }
      out.push({ direction, mibps: median(rates), cpuMsPerGiB: median(cpus) });
    }
    if (echo) {
      const n = Math.min(args.latencyN, 1000);
      for (let i = 0; i < 50; i++) await oneExchange(cp, echo);
      const c0 = (await cpuMs(client.pid)) + (await cpuMs(server.pid));
      const lat: number[] = [];
      for (let i = 0; i < n; i++) lat.push(await oneExchange(cp, echo));
      const used = (await cpuMs(client.pid)) + (await cpuMs(server.pid)) - c0;
      out.push({
        direction: 'short connections',
        mibps: percentile(lat, 50),
        cpuMsPerGiB: (used * 1000) / n,
      });
      log(
        `floor short connections: p50 ${percentile(lat, 50).toFixed(2)} ms, ${((used * 1000) / n).toFixed(0)} CPU-µs/conn`,
      );
    }
    return out;
  } finally {
    await Promise.all([client.stop(), server.stop()]);
    allPeers.delete(client);
    allPeers.delete(server);
  }
}

interface LatencyResult {
  method: Method;
  n: number;
  /** Total per-connection time, ms. */
  p50: Record<Impl | 'direct', number>;
  p99: Record<Impl | 'direct', number>;
  /** Added over direct (p50/p99 of proxied minus p50/p99 of direct), ms. */
  addedP50: Record<Impl, number>;
  addedP99: Record<Impl, number>;
  ratioP50: number;
  ratioP99: number;
  errors: Record<Impl | 'direct', number>;
  /** CPU (user+sys) of client+server per connection, µs. */
  cpuUsPerConn: Record<Impl, number>;
}

async function latencyPhase(args: Args, echo: TestServer, deadline: number): Promise<LatencyResult> {
  const method = args.latencyMethod;
  const stacks = {} as Record<Impl, Stack>;
  try {
    for (const impl of IMPLS) stacks[impl] = await startStack(impl, method, args);
    const kinds = ['ladder', 'libev', 'direct'] as const;
    const samples: Record<(typeof kinds)[number], number[]> = { ladder: [], libev: [], direct: [] };
    const errors: Record<(typeof kinds)[number], number> = { ladder: 0, libev: 0, direct: 0 };
    // Warm-up.
    for (let i = 0; i < 50; i++)
      for (const k of kinds)
        await oneExchange(k === 'direct' ? undefined : stacks[k].client.socksPort, echo).catch(() => 0);
    const cpuOf = async (st: Stack): Promise<number> =>
      (await cpuMs(st.client.pid)) + (await cpuMs(st.server.pid));
    const cpu0 = { ladder: await cpuOf(stacks.ladder), libev: await cpuOf(stacks.libev) };
    for (let i = 0; i < args.latencyN; i++) {
      if (Date.now() > deadline) throw new Error('overall time cap reached');
      // Rotate the order every iteration so no kind always goes first.
      for (let j = 0; j < 3; j++) {
        const k = kinds[(i + j) % 3]!;
        try {
          samples[k].push(await oneExchange(k === 'direct' ? undefined : stacks[k].client.socksPort, echo));
        } catch {
          errors[k]++;
        }
      }
      if ((i + 1) % 500 === 0) log(`latency ${i + 1}/${args.latencyN}`);
    }
    const cpuUsPerConn = {
      ladder: (((await cpuOf(stacks.ladder)) - cpu0.ladder) * 1000) / args.latencyN,
      libev: (((await cpuOf(stacks.libev)) - cpu0.libev) * 1000) / args.latencyN,
    };
    const p50 = {
      ladder: percentile(samples.ladder, 50),
      libev: percentile(samples.libev, 50),
      direct: percentile(samples.direct, 50),
    };
    const p99 = {
      ladder: percentile(samples.ladder, 99),
      libev: percentile(samples.libev, 99),
      direct: percentile(samples.direct, 99),
    };
    const addedP50 = { ladder: p50.ladder - p50.direct, libev: p50.libev - p50.direct };
    const addedP99 = { ladder: p99.ladder - p99.direct, libev: p99.libev - p99.direct };
    return {
      method,
      n: args.latencyN,
      p50,
      p99,
      addedP50,
      addedP99,
      ratioP50: addedP50.ladder / addedP50.libev,
      ratioP99: addedP99.ladder / addedP99.libev,
      errors,
      cpuUsPerConn,
    };
  } finally {
    await Promise.all(Object.values(stacks).map(stopStack));
  }
}

interface MemoryResult {
  method: Method;
  n: number;
  /** KiB, client + server, before and with n idle connections open, then with 2n. */
  baseline: Record<Impl, { client: number; server: number }>;
  loaded: Record<Impl, { client: number; server: number }>;
  loaded2n: Record<Impl, { client: number; server: number }>;
  totalLoadedMiB: Record<Impl, number>;
  /** (RSS with n open - baseline) / n; the same at 2n; (RSS at 2n - RSS at n) / n. */
  perConnKiB: Record<Impl, number>;
  perConnKiB2n: Record<Impl, number>;
  marginalKiB: Record<Impl, number>;
  ratio: number;
}

async function memoryPhase(args: Args, echo: TestServer, deadline: number): Promise<MemoryResult> {
  const method = args.latencyMethod;
  const baseline = {} as MemoryResult['baseline'];
  const loaded = {} as MemoryResult['loaded'];
  const loaded2n = {} as MemoryResult['loaded2n'];
  const rss = async (st: Stack): Promise<{ client: number; server: number }> => ({
    client: await rssKiB(st.client.pid),
    server: await rssKiB(st.server.pid),
  });
  for (const impl of IMPLS) {
    const st = await startStack(impl, method, args, true);
    const socks: net.Socket[] = [];
    const open = async (upTo: number): Promise<void> => {
      const batch = 50;
      while (socks.length < upTo) {
        if (Date.now() > deadline) throw new Error('overall time cap reached');
        const opened = await Promise.all(
          Array.from({ length: Math.min(batch, upTo - socks.length) }, async () => {
            const s = await socks5Connect({
              proxyPort: st.client.socksPort,
              host: '127.0.0.1',
              port: echo.port,
              timeoutMs: 20_000,
            });
            s.on('error', () => undefined);
            const p = readExactly(s, 8, 20_000);
            s.write(REQ.subarray(0, 8));
            await p;
            return s;
          }),
        );
        socks.push(...opened);
      }
      await new Promise((r) => setTimeout(r, 1000));
    };
    try {
      // Let startup settle, then one exchange so lazy initialisation is counted in the baseline.
      await oneExchange(st.client.socksPort, echo);
      await new Promise((r) => setTimeout(r, 500));
      baseline[impl] = await rss(st);
      await open(args.idleN);
      loaded[impl] = await rss(st);
      await open(2 * args.idleN);
      loaded2n[impl] = await rss(st);
      log(
        `memory ${impl}: RSS client ${loaded[impl].client} / ${loaded2n[impl].client} KiB, server ${loaded[impl].server} / ${loaded2n[impl].server} KiB with ${args.idleN} / ${socks.length} idle connections`,
      );
    } finally {
      for (const s of socks) s.destroy();
      await stopStack(st);
    }
  }
  const sum = (x: { client: number; server: number }): number => x.client + x.server;
  const per = (f: (i: Impl) => number): Record<Impl, number> => ({ ladder: f('ladder'), libev: f('libev') });
  const n = args.idleN;
  return {
    method,
    n,
    baseline,
    loaded,
    loaded2n,
    totalLoadedMiB: per((i) => sum(loaded[i]) / 1024),
    perConnKiB: per((i) => (sum(loaded[i]) - sum(baseline[i])) / n),
    perConnKiB2n: per((i) => (sum(loaded2n[i]) - sum(baseline[i])) / (2 * n)),
    marginalKiB: per((i) => (sum(loaded2n[i]) - sum(loaded[i])) / n),
    ratio: sum(loaded.ladder) / sum(loaded.libev),
  };
}

// ---------------------------------------------------------------------------------------------
// Report

function machineFacts(): Record<string, string> {
  const sh = (cmd: string, a: string[]): string => {
    try {
      return execFileSync(cmd, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return 'unknown';
    }
  };
  const ssVersion = /shadowsocks-libev (\S+)/.exec(sh('ss-server', ['-h']))?.[1] ?? 'unknown';
  return {
    cpu: `${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`,
    memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: sh('uname', ['-sr']),
    node: process.version,
    openssl: process.versions.openssl ?? 'unknown',
    'shadowsocks-libev': ssVersion,
    'loadavg at start': loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
  };
}

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]): string =>
    '| ' + r.map((x, c) => (c === 0 ? x.padEnd(widths[c]!) : x.padStart(widths[c]!))).join(' | ') + ' |';
  const sep =
    '|' + widths.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n');
}

interface Results {
  startedAt: string;
  args: Omit<Args, 'phases'> & { phases: string[] };
  machine: Record<string, string>;
  throughput?: ThroughputResult[];
  floor?: FloorResult[];
  latency?: LatencyResult;
  memory?: MemoryResult;
  /** Tables and JSON of the phases run as child scripts (sip022-auth, sip022-throughput, udp). */
  scripts?: Record<string, { table: string; data: unknown }>;
  errors: string[];
  durationS?: number;
}

function render(r: Results): string {
  const ours = r.args.ours === 'libev' ? 'libev (as ours)' : 'ladder';
  const rows: string[][] = [['metric', ours, 'shadowsocks-libev', 'ratio ours/libev']];
  for (const t of r.throughput ?? []) {
    rows.push([
      `throughput ${t.method} ${t.direction} (MiB/s, median of ${t.runs.ladder.length})`,
      fmt(t.median.ladder),
      fmt(t.median.libev),
      fmt(t.ratio, 2),
    ]);
  }
  for (const t of r.throughput ?? []) {
    rows.push([
      `CPU per GiB ${t.method} ${t.direction} (client+server CPU-ms)`,
      fmt(t.cpuMsPerGiB.ladder, 0),
      fmt(t.cpuMsPerGiB.libev, 0),
      fmt(t.cpuRatio, 2),
    ]);
  }
  for (const f of r.floor ?? []) {
    if (f.direction === 'short connections') {
      rows.push([`floor: Node relay without crypto, short conn p50 total (ms)`, fmt(f.mibps, 2), '', '']);
      rows.push([`floor: Node relay without crypto, CPU per short conn (µs)`, fmt(f.cpuMsPerGiB, 0), '', '']);
      continue;
    }
    rows.push([`floor: Node relay without crypto, ${f.direction} (MiB/s)`, fmt(f.mibps), '', '']);
    rows.push([
      `floor: Node relay without crypto, ${f.direction} (CPU-ms/GiB)`,
      fmt(f.cpuMsPerGiB, 0),
      '',
      '',
    ]);
  }
  if (r.latency) {
    const l = r.latency;
    rows.push([
      `latency p50 added (ms, ${l.n} conns, ${l.method})`,
      fmt(l.addedP50.ladder, 2),
      fmt(l.addedP50.libev, 2),
      fmt(l.ratioP50, 2),
    ]);
    rows.push([
      `latency p99 added (ms)`,
      fmt(l.addedP99.ladder, 2),
      fmt(l.addedP99.libev, 2),
      fmt(l.ratioP99, 2),
    ]);
    rows.push([
      `latency p50 total (ms; direct ${fmt(l.p50.direct, 2)})`,
      fmt(l.p50.ladder, 2),
      fmt(l.p50.libev, 2),
      fmt(l.p50.ladder / l.p50.libev, 2),
    ]);
    rows.push([
      `CPU per short connection, client+server (µs)`,
      fmt(l.cpuUsPerConn.ladder, 0),
      fmt(l.cpuUsPerConn.libev, 0),
      fmt(l.cpuUsPerConn.ladder / l.cpuUsPerConn.libev, 2),
    ]);
  }
  if (r.memory) {
    const m = r.memory;
    rows.push([
      `RSS client+server, ${m.n} idle conns (MiB)`,
      fmt(m.totalLoadedMiB.ladder),
      fmt(m.totalLoadedMiB.libev),
      fmt(m.ratio, 2),
    ]);
    const perConn: [string, Record<Impl, number>][] = [
      [`RSS per idle connection, ${m.n} open (KiB)`, m.perConnKiB],
      [`RSS per idle connection, ${2 * m.n} open (KiB)`, m.perConnKiB2n],
      [`RSS per idle connection, ${m.n} -> ${2 * m.n} (KiB)`, m.marginalKiB],
    ];
    for (const [what, v] of perConn)
      rows.push([what, fmt(v.ladder), fmt(v.libev), fmt(v.ladder / v.libev, 2)]);
  }
  const facts = Object.entries(r.machine)
    .map(([k, v]) => `${k}: ${v}`)
    .join('; ');
  return `${table(rows)}\n\nmachine: ${facts}\nsize per run: ${(r.args.size / MiB).toFixed(0)} MiB; runs: ${r.args.runs}${r.errors.length ? `\nerrors: ${r.errors.join('; ')}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  for (const bin of ['ss-server', 'ss-local']) {
    if (!which(bin)) throw new Error(`${bin} not found: apt-get install shadowsocks-libev`);
  }
  const started = Date.now();
  const deadline = started + args.capMin * 60_000;
  const results: Results = {
    startedAt: new Date(started).toISOString(),
    args: { ...args, phases: [...args.phases] },
    machine: machineFacts(),
    errors: [],
  };
  mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  if (args.profile) {
    const profDir = join(REPO_ROOT, 'bench', 'results', 'prof');
    rmSync(profDir, { recursive: true, force: true });
    mkdirSync(profDir, { recursive: true });
  }

  if (!args.fromSource && args.ours === 'ladder') {
    log('compiling Ladder (npm run build) into dist/');
    ladderEntry = buildLadder();
  }
  results.machine.ladder = ladderEntry
    ? 'compiled with tsc (dist/, npm run build)'
    : 'from source through tsx';

  const sink = await startSink({ hash: false });
  const source = await startSource({ hash: false, fresh: false });
  const echo = await startEcho();
  const cap = setTimeout(
    () => {
      log(`overall cap of ${args.capMin} min reached; stopping`);
      results.errors.push('overall time cap reached');
      void finish(1);
    },
    args.capMin * 60_000 + 30_000,
  );
  cap.unref();

  let finished = false;
  const finish = async (code: number): Promise<number> => {
    if (finished) return code;
    finished = true;
    await Promise.all([...allPeers].map((p) => p.stop(3000)));
    await Promise.all([sink.close(), source.close(), echo.close()]);
    results.durationS = (Date.now() - started) / 1000;
    writeFileSync(args.json, JSON.stringify(results, null, 2) + '\n');
    console.log(render(results));
    for (const [name, sc] of Object.entries(results.scripts ?? {})) console.log(`\n## ${name}\n${sc.table}`);
    console.log(`\nJSON: ${args.json}`);
    if (args.profile) {
      const dir = join(REPO_ROOT, 'bench', 'results', 'prof');
      console.log(
        `profiles: ${
          readdirSync(dir)
            .map((f) => join(dir, f))
            .join(', ') || '(none written)'
        }`,
      );
    }
    if (code !== 0) process.exit(code);
    return code;
  };

  const phase = async <T>(name: string, capMs: number, fn: () => Promise<T>): Promise<T | undefined> => {
    if (!args.phases.has(name)) return undefined;
    log(`phase ${name} (cap ${(capMs / 60_000).toFixed(1)} min)`);
    try {
      return await withTimeout(fn(), capMs, `phase ${name}`);
    } catch (err) {
      const msg = `${name}: ${(err as Error).message.split('\n')[0]}`;
      log(`FAILED ${msg}`);
      results.errors.push(msg);
      return undefined;
    }
  };

  const left = (): number => Math.max(10_000, deadline - Date.now());
  const tp = await phase('throughput', Math.min(left(), args.capMin * 60_000 * 0.7), () =>
    throughputPhase(args, sink, source, deadline),
  );
  if (tp) results.throughput = tp;
  const fl = await phase('floor', Math.min(left(), 5 * 60_000), () => floorPhase(args, sink, source, echo));
  if (fl) results.floor = fl;
  const lat = await phase('latency', Math.min(left(), 4 * 60_000), () => latencyPhase(args, echo, deadline));
  if (lat) results.latency = lat;
  const mem = await phase('memory', Math.min(left(), 3 * 60_000), () => memoryPhase(args, echo, deadline));
  if (mem) results.memory = mem;
  const scripts: Array<[string, string, string[]]> = [
    ['sip022-auth', 'sip022-auth.ts', ['--n', '1000', '--rounds', '3', '--cap-s', '120']],
    ['sip022-throughput', 'sip022-throughput.ts', ['--size', '64', '--runs', '3', '--cap-min', '4']],
    ['udp', 'udp-pps.ts', ['--n', '10000', '--runs', '3', '--cap-min', '3']],
    // Only with --phases …,web: WebSocket+TLS against ss-server + v2ray-plugin (bench/web.ts).
    ['web', 'web.ts', ['--size', '64', '--runs', '3', '--short', '200', '--cap-min', '8']],
  ];
  for (const [name, file, scriptArgs] of scripts) {
    const sc = await phase(name, Math.min(left(), 5 * 60_000), () => scriptPhase(name, file, scriptArgs));
    if (sc) (results.scripts ??= {})[name] = sc;
  }
  return finish(results.errors.length > 0 ? 1 : 0);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err: unknown) => {
    console.error(`bench: ${(err as Error).message}`);
    await Promise.all([...allPeers].map((p) => p.stop(2000)));
    process.exit(2);
  },
);
