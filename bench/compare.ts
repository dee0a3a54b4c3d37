/**
 * `npm run bench:compare`: several stacks side by side in ONE invocation, the runs interleaved
 * (the order rotates every round), so drift on a shared machine hits every stack alike:
 *
 *   ladder   this checkout, `npm run build` then dist/cli/main.js (as `ladder` runs for a user;
 *            --no-build: the dist/ there is, refused unless built from the sources as they are);
 *            the server with its default data-plane workers (one per core)
 *   ladder-w1  the same with `ladder server --workers 1` (--no-w1 leaves it out)
 *   libev    ss-local + ss-server
 *   libev2   a second, independent libev stack: libev2/libev is the noise floor of every ratio
 *   NAME=PATH[,VAR=VALUE...]  (--stack, repeatable) another Ladder build, e.g. the
 *            dist/cli/main.js of a checkout of an older commit (before/after in one sitting), or
 *            this one with environment set (ladder-defaults=dist/cli/main.js,LADDER_HEAP_TUNE=0);
 *            WORKERS=N is not environment but the server's --workers; CLIENT:VAR=VALUE or
 *            SERVER:VAR=VALUE sets VAR for that process only
 *            (ladder-native-client=dist/cli/main.js,CLIENT:LADDER_NATIVE_RELAY=1)
 *
 * Phases (--phases, default all):
 *   bulk   upload to a counting sink and download from a source through SOCKS5, --size per run
 *   curl   `curl --socks5-hostname` downloading --size from a local HTTP server (a real client:
 *          its own read sizes and window), the way a user's downloader goes through the proxy
 *   short  --short-n short connections per stack (SOCKS5 handshake, 32-byte request, 32-byte
 *          echo, close) plus direct ones; p50/p99 of the time added over direct; after
 *          --short-warm unmeasured ones per stack (50; 5000 for a server that has been serving),
 *          to --short-host (127.0.0.1; localhost for the server's name-resolution path)
 *   conns  --conns-n short connections from 64 concurrent clients: connections per second and
 *          CPU per connection (what a loaded server's capacity is)
 *   flows  8 concurrent bulk flows (upload and download), --size in all: aggregate MiB/s, CPU/GiB;
 *          --flows-driver node (default: this process's Node source, sink and SOCKS5 clients),
 *          c (bench/flows-driver.c: the same flows from a C process, ~1/3 of Node's CPU per
 *          GiB, so the proxies' own difference shows more truly) or node,c (both, as separate rows)
 *   mixed  short connections one after another (as in short) while 8 flows download --size through
 *          the same stack (bench/flows-driver.c): their p50/p90/p99 time, how long a page's small
 *          request waits behind a download on the same proxy
 * Every method of --method (default aes-256-gcm,chacha20-ietf-poly1305) runs all phases with
 * stacks started for it; each stack's idle RSS (client and server right after start) is a row.
 * Reported per stack: median and min-max over --runs of MiB/s and of client + server CPU per GiB
 * (user + sys from /proc, robust to load in a way MiB/s is not), and CPU µs per short connection;
 * ratios against libev. Writes --json (default bench/results/compare.json).
 *
 *   npm run bench:compare -- --size 256MiB --runs 5 --short-n 1000
 *   npm run bench:compare -- --stack before=/path/to/old-checkout/dist/cli/main.js
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startEcho, startSink, startSource } from '../test/helpers/net.js';
import type { TestServer } from '../test/helpers/net.js';
import type { Method, Peer } from '../test/helpers/peers.js';
import {
  cpuMs,
  REPO_ROOT,
  rssKiB,
  ssUrl,
  startLadderClient,
  startLadderServer,
  startSsLocal,
  startSsServer,
  which,
} from '../test/helpers/peers.js';
import { downloadCountVia, uploadCountVia } from '../test/helpers/transfer.js';
import { opt, posInt } from './args.js';
import { currentDist } from './dist.js';
import {
  busyShare,
  concurrentFlows,
  concurrentShort,
  driverMs,
  machineJiffies,
  shortUnderLoad,
  type LoadTarget,
} from './compare-load.js';
import { oneExchange } from './exchange.js';
import { buildFlowsDriver } from './short-drivers.js';
import { median, percentile } from './stats.js';

const MiB = 1024 * 1024;
const argv = process.argv.slice(2);
const sizeMiB = Number(/^(\d+)/.exec(opt('--size', '256MiB'))?.[1] ?? NaN);
if (!(sizeMiB > 0)) throw new Error('--size: expected MiB, e.g. 256MiB');
const size = sizeMiB * MiB;
const runs = posInt('--runs', 3);
const shortN = posInt('--short-n', 1000);
/** --short-warm N: unmeasured connections per stack before the short phase measures (50: a fresh
 *  process, its JIT still cold; 5000 or more: a server that has been serving, V8's optimizing
 *  compiler done with the per-connection code). libev's stacks are warmed the same. */
/** --short-host NAME: the destination the short connections name (127.0.0.1; "localhost" for the
 *  server's name-resolution path, as browsers' socks5h requests take it). */
const shortHost = opt('--short-host', '127.0.0.1');
const shortWarm = opt('--short-warm', '50') === '0' ? 0 : posInt('--short-warm', 50);
const methods = opt('--method', 'aes-256-gcm,chacha20-ietf-poly1305').split(',') as Method[];
const connsN = posInt('--conns-n', 5000);
const phases = new Set(opt('--phases', 'bulk,curl,short,conns,flows,mixed').split(','));
const jsonOut = opt('--json', join(REPO_ROOT, 'bench', 'results', 'compare.json'));
const extra = argv.flatMap((a, i) => (argv[i - 1] === '--stack' ? [a] : []));
const noFloor = argv.includes('--no-floor');
const noW1 = argv.includes('--no-w1');
const flowsDrivers = opt('--flows-driver', 'node').split(',');
if (!flowsDrivers.every((d) => d === 'node' || d === 'c'))
  throw new Error('--flows-driver node, c or node,c');

function log(msg: string): void {
  process.stderr.write(`[compare ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

interface Stack {
  name: string;
  client: Peer & { socksPort: number };
  server: Peer & { port: number };
}

async function startStack(name: string, spec: string | 'libev', method: Method): Promise<Stack> {
  const password = `bench-${randomBytes(8).toString('hex')}`;
  if (spec === 'libev') {
    const server = await startSsServer({ method, password, timeout: 600 });
    const client = await startSsLocal({ method, password, serverPort: server.port, timeout: 600 });
    return { name, client, server };
  }
  // Another checkout's dist/ runs with that checkout's own addon (native.ts finds it from there).
  const [entry, ...vars] = spec.split(',');
  // CLIENT:VAR=VALUE / SERVER:VAR=VALUE set VAR for that process only.
  const sideEnv = (side: 'CLIENT:' | 'SERVER:'): NodeJS.ProcessEnv =>
    Object.fromEntries(
      vars
        .filter((v) => !/^(CLIENT|SERVER):/.test(v) || v.startsWith(side))
        .map((v) => (v.startsWith(side) ? v.slice(side.length) : v))
        .map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)]),
    );
  const env = sideEnv('SERVER:');
  const workers = env.WORKERS;
  delete env.WORKERS;
  const o = { method, password, entry: entry!, env };
  const server = await startLadderServer({
    ...o,
    ...(workers !== undefined ? { extraArgs: ['--workers', workers] } : {}),
  });
  const clientEnv = sideEnv('CLIENT:');
  delete clientEnv.WORKERS;
  const client = await startLadderClient({
    key: ssUrl(method, password, '127.0.0.1', server.port),
    entry: entry!,
    env: clientEnv,
  });
  return { name, client, server };
}

const pidsOf = (s: Stack): LoadTarget => ({
  socksPort: s.client.socksPort,
  pids: [s.client.pid, s.server.pid],
});

const cpuOf = async (s: Stack): Promise<{ c: number; s: number }> => ({
  c: await cpuMs(s.client.pid),
  s: await cpuMs(s.server.pid),
});

/** Minor page faults of a process so far (/proc/PID/stat field 10): fresh memory touched. */
function minorFaults(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[7]);
}
const faultsOf = (s: Stack): number => minorFaults(s.client.pid) + minorFaults(s.server.pid);

/** An HTTP server answering GET /N with N bytes (one random block repeated), for curl. */
async function startHttpSource(): Promise<Server> {
  const block = randomBytes(64 * 1024);
  const srv = createServer((req, res) => {
    const n = Number((req.url ?? '/').slice(1));
    if (!Number.isSafeInteger(n) || n < 0) return void res.writeHead(400).end();
    res.writeHead(200, { 'content-length': String(n), 'content-type': 'application/octet-stream' });
    let left = n;
    const pump = (): void => {
      while (left > 0) {
        const k = Math.min(block.length, left);
        left -= k;
        if (!res.write(k === block.length ? block : block.subarray(0, k)))
          return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return srv;
}

function curlDownload(socksPort: number, httpPort: number, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile(
      'curl',
      [
        '-sS',
        '--fail',
        '--max-time',
        '300',
        '--socks5-hostname',
        `127.0.0.1:${socksPort}`,
        '-o',
        '/dev/null',
        '-w',
        '%{size_download}',
        `http://127.0.0.1:${httpPort}/${bytes}`,
      ],
      (err, stdout) => {
        if (err) return reject(err);
        if (Number(stdout) !== bytes) return reject(new Error(`curl got ${stdout} of ${bytes} bytes`));
        resolve(performance.now() - t0);
      },
    );
  });
}

interface Series {
  mibps: number[];
  cpu: number[];
  client: number[];
  server: number[];
  /** Minor page faults of client + server per GiB. */
  faults: number[];
  /** The bench process's own CPU ms per GiB (its sink/source/clients; not curl's). */
  driver: number[];
  /** Share of the machine's CPU busy during the run. */
  busy: number[];
}
type BulkKind =
  | 'upload'
  | 'download'
  | 'curl download'
  | '8 flows upload'
  | '8 flows download'
  | '8 flows upload (C driver)'
  | '8 flows download (C driver)';

/** CPU ms of driver processes (bench/flows-driver.c) so far: bulk() adds it to the bench's own. */
let childDriverMs = 0;

/** 8 flows of `bytes` in all through `socksPort` by bench/flows-driver.c (`bin`): wall ms. */
function cFlows(bin: string, socksPort: number, bytes: number, dir: 'download' | 'upload'): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      [String(socksPort), '8', String(Math.floor(bytes / 8)), dir],
      { timeout: 600_000 },
      (err, out) => {
        if (err) return reject(err);
        const [ns, user, sys] = out.trim().split(' ').map(Number);
        childDriverMs += (user! + sys!) / 1000;
        resolve(ns! / 1e6);
      },
    );
  });
}

async function bulk(stacks: Stack[], kind: BulkKind, run: (st: Stack) => Promise<number>) {
  const out = new Map<string, Series>(
    stacks.map((s) => [
      s.name,
      { mibps: [], cpu: [], client: [], server: [], faults: [], driver: [], busy: [] },
    ]),
  );
  for (let r = 0; r < runs; r++) {
    for (let j = 0; j < stacks.length; j++) {
      const st = stacks[(r + j) % stacks.length]!;
      const c0 = await cpuOf(st);
      const pf0 = faultsOf(st);
      const [d0, m0] = [driverMs() + childDriverMs, machineJiffies()];
      const ms = await run(st);
      const [d1, m1] = [driverMs() + childDriverMs, machineJiffies()];
      const c1 = await cpuOf(st);
      const pf1 = faultsOf(st);
      const gib = size / 1024 ** 3;
      const rec = out.get(st.name)!;
      rec.mibps.push(sizeMiB / (ms / 1000));
      rec.client.push((c1.c - c0.c) / gib);
      rec.server.push((c1.s - c0.s) / gib);
      rec.cpu.push((c1.c - c0.c + c1.s - c0.s) / gib);
      rec.faults.push((pf1 - pf0) / gib);
      rec.driver.push((d1 - d0) / gib);
      rec.busy.push(busyShare(m0, m1));
      log(
        `${kind} ${st.name} run ${r + 1}/${runs}: ${rec.mibps.at(-1)!.toFixed(0)} MiB/s, ${rec.cpu.at(-1)!.toFixed(0)} CPU-ms/GiB (client ${rec.client.at(-1)!.toFixed(0)}), ${rec.faults.at(-1)!.toFixed(0)} page faults/GiB`,
      );
    }
  }
  return out;
}

async function short(stacks: Stack[], echo: TestServer) {
  const kinds = [...stacks.map((s) => s.name), 'direct'];
  const port = new Map(stacks.map((s) => [s.name, s.client.socksPort]));
  const samples = new Map<string, number[]>(kinds.map((k) => [k, []]));
  for (let i = 0; i < shortWarm; i++) {
    for (const k of kinds) await oneExchange(port.get(k), echo, shortHost).catch(() => 0);
    if ((i + 1) % 1000 === 0) log(`short warm-up ${i + 1}/${shortWarm}`);
  }
  const c0 = new Map(await Promise.all(stacks.map(async (s) => [s.name, await cpuOf(s)] as const)));
  for (let i = 0; i < shortN; i++) {
    for (let j = 0; j < kinds.length; j++) {
      const k = kinds[(i + j) % kinds.length]!;
      samples.get(k)!.push(await oneExchange(port.get(k), echo, k === 'direct' ? undefined : shortHost));
    }
    if ((i + 1) % 250 === 0) log(`short ${i + 1}/${shortN}`);
  }
  const direct = { p50: percentile(samples.get('direct')!, 50), p99: percentile(samples.get('direct')!, 99) };
  const res: Record<string, { addedP50: number; addedP99: number; cpuUs: number; clientUs: number }> = {};
  for (const s of stacks) {
    const c1 = await cpuOf(s);
    const a = c0.get(s.name)!;
    const ss = samples.get(s.name)!;
    res[s.name] = {
      addedP50: percentile(ss, 50) - direct.p50,
      addedP99: percentile(ss, 99) - direct.p99,
      cpuUs: ((c1.c - a.c + c1.s - a.s) * 1000) / shortN,
      clientUs: ((c1.c - a.c) * 1000) / shortN,
    };
  }
  return { direct, res };
}

const f0 = (x: number): string => x.toFixed(0);
const f2 = (x: number): string => x.toFixed(2);
const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
const spread = (a: number[], f: (x: number) => string): string =>
  `${f(median(a))} (${f(Math.min(...a))}-${f(Math.max(...a))})`;

async function main(): Promise<void> {
  for (const tool of ['ss-server', 'ss-local', ...(phases.has('curl') ? ['curl'] : [])])
    if (!which(tool)) throw new Error(`${tool} not found (apt-get install shadowsocks-libev curl)`);
  const dist = currentDist(!argv.includes('--no-build'), log);
  const specs: [string, string][] = [
    ['ladder', dist],
    ...(noW1 ? [] : ([['ladder-w1', `${dist},WORKERS=1`]] as [string, string][])),
    ...extra.map((e) => {
      const at = e.indexOf('=');
      if (at < 1) throw new Error(`--stack NAME=PATH/dist/cli/main.js[,VAR=VALUE], got "${e}"`);
      return [e.slice(0, at), e.slice(at + 1)] as [string, string];
    }),
    ['libev', 'libev'],
    ...(noFloor ? [] : ([['libev2', 'libev']] as [string, string][])),
  ];
  const load0 = loadavg();
  const sink = await startSink({ hash: false });
  const source = await startSource({ hash: false, fresh: false });
  const echo = await startEcho();
  const http = await startHttpSource();
  const httpPort = (http.address() as AddressInfo).port;
  const result: Record<string, unknown> = {
    sizeMiB,
    runs,
    shortN,
    shortWarm,
    shortHost,
    connsN,
    loadAtStart: load0,
    stacks: specs,
  };
  const rows: string[][] = [];
  const ratio = (name: string, v: number, base: number | undefined): string =>
    name === 'libev' || base === undefined ? '' : f2(v / base);
  try {
    for (const method of methods) {
      const stacks: Stack[] = [];
      const perMethod: Record<string, unknown> = {};
      result[method] = perMethod;
      const row = (measure: string, ...rest: string[]): number =>
        rows.push([`${method} ${measure}`, ...rest]);
      try {
        for (const [name, entry] of specs) stacks.push(await startStack(name, entry, method));
        await new Promise((r) => setTimeout(r, 1000));
        const idle: Record<string, [number, number]> = {};
        for (const st of stacks) {
          idle[st.name] = [(await rssKiB(st.client.pid)) / 1024, (await rssKiB(st.server.pid)) / 1024];
          row(
            'idle RSS MiB (client / server)',
            st.name,
            idle[st.name]!.map((x) => x.toFixed(1)).join(' / '),
            '',
          );
        }
        perMethod.idleRssMiB = idle;
        const via = (st: Stack) => ({ proxyPort: st.client.socksPort });
        const up = (st: Stack, bytes: number) =>
          uploadCountVia(via(st), { host: '127.0.0.1', port: sink.port }, bytes);
        const down = (st: Stack, bytes: number) =>
          downloadCountVia(via(st), { host: '127.0.0.1', port: source.port }, bytes);
        for (const st of stacks) {
          await up(st, 16 * MiB);
          await down(st, 16 * MiB);
        }
        const bulkKinds: [BulkKind, (st: Stack) => Promise<number>][] = [];
        if (phases.has('bulk')) {
          bulkKinds.push(['upload', (st) => up(st, size)]);
          bulkKinds.push(['download', (st) => down(st, size)]);
        }
        if (phases.has('curl'))
          bulkKinds.push(['curl download', (st) => curlDownload(st.client.socksPort, httpPort, size)]);
        if (phases.has('flows') && flowsDrivers.includes('node')) {
          bulkKinds.push(['8 flows upload', (st) => concurrentFlows(size, (b) => up(st, b))]);
          bulkKinds.push(['8 flows download', (st) => concurrentFlows(size, (b) => down(st, b))]);
        }
        if (phases.has('flows') && flowsDrivers.includes('c')) {
          const bin = buildFlowsDriver(mkdtempSync(join(tmpdir(), 'ladder-flows-')));
          const port = (st: Stack) => st.client.socksPort;
          bulkKinds.push(['8 flows upload (C driver)', (st) => cFlows(bin, port(st), size, 'upload')]);
          bulkKinds.push(['8 flows download (C driver)', (st) => cFlows(bin, port(st), size, 'download')]);
        }
        for (const [kind, run] of bulkKinds) {
          const series = await bulk(stacks, kind, run);
          perMethod[kind] = Object.fromEntries(series);
          const libev = series.get('libev')!;
          for (const [name, s] of series) {
            row(
              `${kind} MiB/s`,
              name,
              spread(s.mibps, f0),
              ratio(name, median(s.mibps), median(libev.mibps)),
            );
            row(
              `${kind} CPU-ms/GiB (client / server)`,
              name,
              `${spread(s.cpu, f0)} (${f0(median(s.client))} / ${f0(median(s.server))})`,
              ratio(name, median(s.cpu), median(libev.cpu)),
            );
            row(`${kind} page faults/GiB`, name, spread(s.faults, f0), '');
            // What the stack competes with for the cores: the bench's own work and how busy the
            // machine was (near 1: the figure is a CPU share, bounded by the driver's cost).
            row(
              `${kind} bench process CPU-ms/GiB, machine busy`,
              name,
              `${spread(s.driver, f0)}, ${spread(s.busy, pct)}`,
              '',
            );
          }
        }
        if (phases.has('conns')) {
          const out = new Map<
            string,
            { perSecond: number[]; cpuUs: number[]; driverUs: number[]; busy: number[] }
          >(stacks.map((s) => [s.name, { perSecond: [], cpuUs: [], driverUs: [], busy: [] }]));
          for (let r = 0; r < runs; r++) {
            for (let j = 0; j < stacks.length; j++) {
              const st = stacks[(r + j) % stacks.length]!;
              const c = await concurrentShort(pidsOf(st), echo, connsN, 64);
              out.get(st.name)!.perSecond.push(c.perSecond);
              out.get(st.name)!.cpuUs.push(c.cpuUs);
              out.get(st.name)!.driverUs.push(c.driverUs);
              out.get(st.name)!.busy.push(c.busy);
              log(`conns ${st.name} run ${r + 1}/${runs}: ${f0(c.perSecond)}/s, ${f0(c.cpuUs)} CPU µs each`);
            }
          }
          perMethod.conns = Object.fromEntries(out);
          const libev = out.get('libev')!;
          for (const [name, s] of out) {
            const [ps, cu] = [median(s.perSecond), median(s.cpuUs)];
            row(
              '64 concurrent: connections/s',
              name,
              spread(s.perSecond, f0),
              ratio(name, ps, median(libev.perSecond)),
            );
            row(
              '64 concurrent: CPU µs/conn',
              name,
              spread(s.cpuUs, f0),
              ratio(name, cu, median(libev.cpuUs)),
            );
            row(
              '64 concurrent: bench process CPU µs/conn, machine busy',
              name,
              `${spread(s.driverUs, f0)}, ${spread(s.busy, pct)}`,
              '',
            );
          }
        }
        if (phases.has('mixed')) {
          const bin = buildFlowsDriver(mkdtempSync(join(tmpdir(), 'ladder-flows-')));
          const out = new Map<string, { samples: number[]; mibps: number[] }>(
            stacks.map((s) => [s.name, { samples: [], mibps: [] }]),
          );
          for (let r = 0; r < runs; r++) {
            for (let j = 0; j < stacks.length; j++) {
              const st = stacks[(r + j) % stacks.length]!;
              const m = await shortUnderLoad(pidsOf(st), echo, () =>
                cFlows(bin, st.client.socksPort, size, 'download'),
              );
              out.get(st.name)!.samples.push(...m.samples);
              out.get(st.name)!.mibps.push(sizeMiB / (m.bulkMs / 1000));
              log(
                `mixed ${st.name} run ${r + 1}/${runs}: ${m.samples.length} short, p50 ${f2(percentile(m.samples, 50))} p99 ${f2(percentile(m.samples, 99))} ms`,
              );
            }
          }
          perMethod.mixed = Object.fromEntries(out);
          const lib = out.get('libev')!.samples;
          for (const [name, s] of out) {
            const q = (p: number): number => percentile(s.samples, p);
            row(
              'short under 8 flows: p50 / p90 / p99 ms (n)',
              name,
              `${f2(q(50))} / ${f2(q(90))} / ${f2(q(99))} (${s.samples.length})`,
              name === 'libev'
                ? ''
                : `${f2(q(50) / percentile(lib, 50))} / ${f2(q(99) / percentile(lib, 99))}`,
            );
            row('short under 8 flows: bulk MiB/s meanwhile', name, spread(s.mibps, f0), '');
          }
        }
        if (phases.has('short')) {
          const sh = await short(stacks, echo);
          perMethod.short = sh;
          const lib = sh.res.libev!;
          for (const st of stacks) {
            const r = sh.res[st.name]!;
            row('short: added p50 ms', st.name, f2(r.addedP50), ratio(st.name, r.addedP50, lib.addedP50));
            row('short: added p99 ms', st.name, f2(r.addedP99), ratio(st.name, r.addedP99, lib.addedP99));
            row(
              'short: CPU µs/conn (client)',
              st.name,
              `${f0(r.cpuUs)} (${f0(r.clientUs)})`,
              ratio(st.name, r.cpuUs, lib.cpuUs),
            );
          }
          row('short: direct p50 / p99 ms', 'direct', `${f2(sh.direct.p50)} / ${f2(sh.direct.p99)}`, '');
        }
      } finally {
        await Promise.all(stacks.flatMap((s) => [s.client.stop(5000), s.server.stop(5000)]));
      }
    }
  } finally {
    await Promise.all([sink.close(), source.close(), echo.close()]);
    http.close();
  }
  result.loadAtEnd = loadavg();
  const head = ['measure', 'stack', `median (min-max of ${runs})`, 'ratio / libev'];
  console.log(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  console.log(
    `\n${methods.join(', ')}, ${sizeMiB} MiB per bulk run, ${shortN} short connections per stack after ${shortWarm} unmeasured (to ${shortHost}), ${connsN} from 64 concurrent clients; load average ${load0.map(f2).join(' ')} at start, ${loadavg().map(f2).join(' ')} at end`,
  );
  mkdirSync(dirname(jsonOut), { recursive: true });
  writeFileSync(jsonOut, JSON.stringify(result, null, 2));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`compare: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
