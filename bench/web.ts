/**
 * Shadowsocks over WebSocket+TLS (issue 12's speed targets): Ladder's web front against
 * shadowsocks-libev's ss-server behind ss-v2ray-plugin (server mode, TLS), each with both
 * clients (Ladder's client with a v2ray-plugin key, ss-local + ss-v2ray-plugin), same cipher,
 * same loopback topology, stacks alternated per run:
 *
 *   this process ──SOCKS5──▶ client ──WebSocket+TLS──▶ server ──▶ sink / source / echo (this process)
 *
 * Measures single-flow upload and download (--size MiB, median of --runs) and the time of
 * --short connections in a row (each: connect through the proxy, 64 bytes echoed, close), which
 * Mux.Cool (on in both clients, their default) carries over one WebSocket. Also, because
 * MiB/s on a loaded machine is mostly the load: CPU time of client and server (their whole
 * process trees: the plugins are child processes) per MiB moved and per short connection, from
 * /proc, and the distribution of the short connections' times (a Nagle/delayed-ACK stall is a
 * 40 ms step in it whatever the load) with their SOCKS5 phase apart (greeting and CONNECT
 * answered by the client alone: a slow one there is the client process waiting for a CPU).
 * Targets: throughput >= 1.5x theirs, short connections <= 0.5x their time.
 *
 *   npm run bench -- --phases web          (through bench/run.ts)
 *   node --import tsx bench/web.ts [--size 64] [--runs 3] [--short 200] [--method M] [--json FILE]
 *
 * Ladder runs as a user runs it: bin/ladder.js on the dist/ `npm run build` makes first
 * (--no-build: the dist/ there is, refused unless built from the sources as they are now).
 * For A/B and profiling: `--entry DIR/bin/ladder.js` runs another checkout's Ladder (its built
 * dist/, LADDER_DIST=1); `--node-args '--cpu-prof --cpu-prof-dir=D'` goes to both Ladder
 * processes; `--pairs ladder` measures only Ladder client -> Ladder server, `--pairs ends` that
 * and the v2ray-plugin pair; `--raw` adds Ladder's client -> Ladder's server over raw TCP (the
 * same programs without WebSocket, TLS and Mux.Cool); `--libev` adds ss-local -> ss-server over
 * raw TCP (shadowsocks-libev without plugin: the C floor of a short connection, for the
 * arithmetic of the <= 0.5x target); `--httpupgrade` adds Ladder's client -> the same Ladder server over
 * HTTPUpgrade (`/SECRET/up`, no WebSocket frames; Mux.Cool as the WebSocket pair); `--no-mux` gives
 * Ladder's client keys mux=0 (one WebSocket or HTTPUpgrade per connection); `--gap MS` waits between short connections (--driver node only; so none
 * overlaps the previous one's close); `--size 0` skips the throughput phase;
 * `--threads` prints each thread's CPU in the short phase; `--warm-short N` runs N unmeasured short
 * connections through every pair first (Node's JIT: a fresh Ladder process spends about twice the
 * CPU per short connection of one that has carried a few thousand; Go and C have no warm-up);
 * `--ab VAR=VALUE` (repeatable) adds a second Ladder client -> Ladder server pair whose two processes get that
 * environment (e.g. LADDER_MUX_END_DELAY_MS=0), measured in the same runs, order rotated per run;
 * with every pair (no --pairs), also ss-local + v2ray-plugin to that server and that client to
 * ss-server + v2ray-plugin.
 *
 * Ladder runs from this checkout's dist/, built first (`--no-build`: as it is), and every pair
 * carries `--warm MiB` (256) each way unmeasured before the bulk runs: a fresh Ladder process
 * moves its first few hundred MiB at about half its later rate. Each bulk run logs each
 * process's CPU per MiB per direction; the summary gives each run's ratio as well as the medians'.
 *
 * Every short connection's driver and destination are on its critical path as much as the
 * proxies are, and the same for every pair: `--driver c` (the default) is bench/short-driver.c,
 * a SOCKS5 client and echo in C (compiled with cc), `--driver node` this process's Node sockets
 * (the driver of the sessions before the fifteenth: 0.3-0.45 ms of CPU per connection, more than
 * either Ladder process), `--driver curl` `curl --socks5-hostname` GETs from the C helper's HTTP
 * answer; `--driver c,node,curl` measures each in the same runs (bench/short-drivers.ts). Their
 * CPU per short connection is a column of its own ("harness"), and the summary says what the
 * <= 0.5x target leaves the proxies once the harness's share is paid (docs/benchmarks.md, "what
 * <= 0.5x would take").
 * `--delay-ms D`: clients reach servers through a forwarder that delays each byte D ms each way
 * (bench/delay-proxy.ts: a round trip of 2 x D with TCP-window-like in-flight bounds).
 * `--grpc` adds Ladder's client -> the same Ladder server over gRPC (`type=grpc` key, TLS).
 * `--mixed MiB`: after each run's short connections, short connections one after another (bench/exchange.ts,
 * from this process) while one flow downloads MiB through the same pair: how long a page's request
 * waits behind a download on the same proxy (with Mux.Cool, behind it on the same carrier unless the
 * client opens sessions elsewhere: LADDER_MUX_BULK_APART, `--ab LADDER_MUX_BULK_APART=0`).
 * `--help` prints this comment.
 */
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeLabCertificates } from '../src/lab/lab-ca.js';
import { formatSsUrl } from '../src/protocol/sip002/index.js';
import { freePort, startEcho, startSink, startSource, waitForPort } from '../test/helpers/net.js';
import {
  startLadderClient,
  startLadderServer,
  startSsLocal,
  startSsServer,
  which,
  type Method,
  type Peer,
} from '../test/helpers/peers.js';
import { downloadCountVia, uploadCountVia } from '../test/helpers/transfer.js';
import { currentDist } from './dist.js';
import { buildShortDriver, parseDrivers, shortConnections, type Driver } from './short-drivers.js';
import { median } from './stats.js';
import { shortUnderLoad } from './compare-load.js';
import { startDelayProxy, type DelayProxy } from './delay-proxy.js';

if (process.argv.includes('--help')) {
  const src = readFileSync(new URL(import.meta.url), 'utf8');
  const doc = src.slice(src.indexOf('/**') + 3, src.indexOf('*/'));
  process.stdout.write(doc.replace(/^ \* ?/gm, '').trim() + '\n');
  process.exit(0);
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const MiB = 1024 * 1024;
const SIZE = Number(arg('--size', '64')) * MiB;
const RUNS = Number(arg('--runs', '3'));
const SHORT = Number(arg('--short', '200'));
const METHOD = arg('--method', 'chacha20-ietf-poly1305') as Method;
const JSON_OUT = arg('--json', '');
const ENTRY = arg('--entry', '');
const NODE_ARGS = arg('--node-args', '').split(' ').filter(Boolean);
const PAIRS = arg('--pairs', 'all');
const RAW = process.argv.includes('--raw');
const LIBEV = process.argv.includes('--libev');
/** `--httpupgrade`: also Ladder's client -> Ladder's web front over HTTPUpgrade (/SECRET/up), same server. */
const HTTPUPGRADE = process.argv.includes('--httpupgrade');
/** `--grpc`: also Ladder's client -> the same Ladder server over gRPC (Tun calls on HTTP/2, TLS). */
const GRPC = process.argv.includes('--grpc');
/** `--delay-ms D`: every client reaches its server through bench/delay-proxy.ts (RTT 2 x D). */
const DELAY_MS = Number(arg('--delay-ms', '0'));
const delayProxies: DelayProxy[] = [];
/** The port a client dials for a server listening on `port`: the port itself, or a delay proxy's. */
async function reach(port: number): Promise<number> {
  if (DELAY_MS <= 0) return port;
  const p = await startDelayProxy(port, DELAY_MS);
  delayProxies.push(p);
  return p.port;
}
/** `--no-mux`: Ladder's client keys say mux=0 (a WebSocket or HTTPUpgrade per connection, no Mux.Cool). */
const NO_MUX = process.argv.includes('--no-mux');
const GAP_MS = Number(arg('--gap', '0'));
const MIXED = Number(arg('--mixed', '0')) * MiB;
/** --mixed: each pair's short connections' ms under the download, and the download's MiB/s. */
const mixed = new Map<string, { ms: number[]; mibps: number[] }>();
const WARM_SHORT = Number(arg('--warm-short', '0'));
/** `--driver c,node,curl`: who drives the short connections and answers them (bench/short-drivers.ts). */
const DRIVERS = parseDrivers(arg('--driver', 'c'));
/**
 * `--ab VAR=VALUE[,VAR=VALUE]` (repeatable): one more Ladder client -> server pair per use, its
 * two processes with that environment, measured in the same runs as the default one.
 */
const AB = process.argv.flatMap((a, i) =>
  a === '--ab' && process.argv[i + 1] ? [process.argv[i + 1]!] : [],
);
const envOf = (spec: string): Record<string, string> =>
  Object.fromEntries(
    spec
      .split(',')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
// bin/ladder.js (what a user runs: its start-up V8 flags) on this checkout's dist/, built and
// current (or another checkout's, --entry), never the sources through tsx (forced with
// LADDER_DIST=1: a dist/ older than a source file would silently run src/ through tsx).
/**
 * `--warm MiB`: unmeasured upload and download through every pair before the runs. A fresh
 * Ladder process moves its first few hundred MiB at half its later rate (the JIT: CPU per MiB
 * halves), and with only --size 64 and 3 runs the medians measured that warm-up, not the path.
 */
const WARM_MIB = Number(arg('--warm', '256'));
const ladderSpawn = {
  nodeArgs: NODE_ARGS,
  ...(ENTRY ? { entry: ENTRY } : {}),
  env: { LADDER_DIST: '1' },
};
const DEADLINE = Date.now() + Number(arg('--cap-min', '10')) * 60_000;
const HOST = 'bench.web.lab';
const PATH = '/ladderbenchpath';
const PASSWORD = 'web-bench-password';
const log = (m: string): void =>
  void process.stderr.write(`[web ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

for (const bin of ['ss-server', 'ss-local', 'ss-v2ray-plugin']) {
  if (!which(bin)) {
    log(
      `${bin} is missing (apt-get install shadowsocks-libev shadowsocks-v2ray-plugin): no reference, nothing to compare`,
    );
    process.exit(2);
  }
}

if (!ENTRY) currentDist(!process.argv.includes('--no-build'), log);

const dir = mkdtempSync(join(tmpdir(), 'ladder-web-bench-'));
const certs = await makeLabCertificates([HOST]);
const f = (name: string, data: Buffer): string => {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
};
const caFile = f('ca.pem', certs.ca);
const certFile = f('cert.pem', certs.cert);
const keyFile = f('key.pem', certs.key);
const driverBin = DRIVERS.some((d) => d !== 'node') ? buildShortDriver(dir) : '';

const peers: Peer[] = [];
const track = <T extends Peer>(p: T): T => (peers.push(p), p);

interface Server {
  name: string;
  port: number;
  pid: number;
  /** Ladder's server: its raw Shadowsocks TCP port (for the --raw reference pair). */
  tcpPort?: number;
}
interface Client {
  name: string;
  socksPort: number;
  pid: number;
}

/** CPU time (user + system, ms) of `pid` and every live descendant, from /proc (CLK_TCK 100). */
function treeCpuMs(pid: number): number {
  let ms = 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ms = (Number(f[11]) + Number(f[12])) * 10;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      for (const k of kids ? kids.split(' ') : []) ms += treeCpuMs(Number(k));
    }
  } catch {
    // gone meanwhile
  }
  return ms;
}

/** CPU ms (user, system) of each thread of `pid`, by thread name and id. */
function threadCpuMs(pid: number): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(`${name}/${t}`, [Number(f[11]) * 10, Number(f[12]) * 10]);
    }
  } catch {
    // gone meanwhile
  }
  return out;
}

/** `--threads`: where a phase's CPU went, per thread of each process (user/system ms). */
function threadDelta(
  label: string,
  before: Map<string, [number, number]>,
  after: Map<string, [number, number]>,
): void {
  const parts: string[] = [];
  for (const [k, [u, s]] of after) {
    const [u0, s0] = before.get(k) ?? [0, 0];
    if (u - u0 + s - s0 > 0) parts.push(`${k} ${u - u0}+${s - s0}`);
  }
  log(`${label}: ${parts.join(', ')}`);
}
const THREADS = process.argv.includes('--threads');

async function ladderWebServer(env: NodeJS.ProcessEnv): Promise<Server> {
  const webPort = await freePort();
  const ladder = track(
    await startLadderServer({
      ...ladderSpawn,
      env: { ...ladderSpawn.env, ...env },
      method: METHOD,
      password: PASSWORD,
      extraArgs: [
        '--web-port',
        String(webPort),
        '--web-host',
        '127.0.0.1',
        '--web-path',
        PATH,
        '--tls-cert',
        certFile,
        '--tls-key',
        keyFile,
      ],
    }),
  );
  await waitForPort(webPort);
  const [port, tcpPort] = [await reach(webPort), await reach(ladder.port)];
  return { name: 'ladder server (web front)', port, pid: ladder.pid, tcpPort };
}

function ladderKey(server: Server, up = false): string {
  return formatSsUrl({
    method: METHOD,
    password: PASSWORD,
    host: '127.0.0.1',
    port: server.port,
    plugin: 'v2ray-plugin',
    pluginOptions: `${up ? `tls;host=${HOST};path=${PATH}/up;v2ray-http-upgrade` : `tls;host=${HOST};path=${PATH}`}${NO_MUX ? ';mux=0' : ''}`,
  });
}

async function ladderWebClient(server: Server, env: NodeJS.ProcessEnv, up = false): Promise<Client> {
  // Ladder's client verifies against the system CAs plus NODE_EXTRA_CA_CERTS (the bench CA).
  const ladder = track(
    await startLadderClient({
      ...ladderSpawn,
      key: ladderKey(server, up),
      env: { ...ladderSpawn.env, ...env, NODE_EXTRA_CA_CERTS: caFile },
    }),
  );
  return { name: 'ladder client', socksPort: ladder.socksPort, pid: ladder.pid };
}

async function servers(): Promise<Server[]> {
  const ladder = await ladderWebServer({});
  const ss = track(
    await startSsServer({
      method: METHOD,
      password: PASSWORD,
      extraArgs: [
        '--plugin',
        'ss-v2ray-plugin',
        '--plugin-opts',
        `server;tls;host=${HOST};path=${PATH};cert=${certFile};key=${keyFile};loglevel=none`,
      ],
    }),
  );
  return [ladder, { name: 'ss-server + v2ray-plugin', port: await reach(ss.port), pid: ss.pid }];
}

async function clients(server: Server): Promise<Client[]> {
  const ladder = await ladderWebClient(server, {});
  const ss = track(
    await startSsLocal({
      method: METHOD,
      password: PASSWORD,
      serverPort: server.port,
      extraArgs: [
        '--plugin',
        'ss-v2ray-plugin',
        '--plugin-opts',
        `tls;host=${HOST};path=${PATH};cert=${caFile};loglevel=none`,
      ],
    }),
  );
  return [ladder, { name: 'ss-local + v2ray-plugin', socksPort: ss.socksPort, pid: ss.pid }];
}

interface Row {
  pair: string;
  /** Who drove the short connections (the bulk figures are the pair's, the same in each driver's row). */
  driver: Driver;
  upload: number[];
  download: number[];
  shortMs: number[];
  /** CPU ms of client + server per MiB moved (upload and download together), per run. */
  cpuPerMiB: number[];
  /** CPU ms of client + server per short connection, per run. */
  cpuPerShort: number[];
  /** CPU ms of the driver and the destination (the echo) per short connection, per run. */
  harnessPerShort: number[];
  /** Every short connection's time (ms), all runs. */
  each: number[];
  /** Of which the SOCKS5 phase (ms), same order. */
  socks: number[];
}

const OURS = 'ladder client -> ladder server (web front)';
const RAW_PAIR = 'ladder client -> ladder server (raw TCP, no WebSocket)';
const LIBEV_PAIR = 'ss-local -> ss-server (raw TCP, no plugin)';
const THEIRS = 'ss-local + v2ray-plugin -> ss-server + v2ray-plugin';
const sink = await startSink({ hash: false });
const source = await startSource({ hash: false });
const echo = await startEcho();
const rows: Row[] = [];
const load0 = loadavg()[0]!;
try {
  const pairs: Array<{ label: string; socksPort: number; pids: number[] }> = [];
  const all = await servers();
  for (const s of all)
    for (const c of await clients(s)) {
      const label = `${c.name} -> ${s.name}`;
      const wanted = PAIRS === 'all' || label === OURS || (PAIRS === 'ends' && label === THEIRS);
      if (wanted) pairs.push({ label, socksPort: c.socksPort, pids: [c.pid, s.pid] });
      if (HTTPUPGRADE && s.tcpPort !== undefined && c.name === 'ladder client') {
        const up = await ladderWebClient(s, {}, true);
        pairs.push({ label: `${OURS} over HTTPUpgrade`, socksPort: up.socksPort, pids: [up.pid, s.pid] });
      }
      if (GRPC && s.tcpPort !== undefined && c.name === 'ladder client') {
        const key = formatSsUrl({
          method: METHOD,
          password: PASSWORD,
          host: '127.0.0.1',
          port: s.port,
          transport: { type: 'grpc', serviceName: PATH.slice(1), tls: true, sni: HOST },
        });
        const env = { ...ladderSpawn.env, NODE_EXTRA_CA_CERTS: caFile };
        const g = track(await startLadderClient({ ...ladderSpawn, key, env }));
        pairs.push({ label: `${OURS} over gRPC`, socksPort: g.socksPort, pids: [g.pid, s.pid] });
      }
      if (RAW && s.tcpPort !== undefined && c.name === 'ladder client') {
        // The same two programs without WebSocket, TLS and Mux.Cool: a new TCP connection each.
        const key = formatSsUrl({ method: METHOD, password: PASSWORD, host: '127.0.0.1', port: s.tcpPort });
        const raw = track(await startLadderClient({ ...ladderSpawn, key }));
        pairs.push({ label: RAW_PAIR, socksPort: raw.socksPort, pids: [raw.pid, s.pid] });
      }
    }
  if (LIBEV) {
    // shadowsocks-libev without WebSocket, TLS and Mux.Cool: the floor the arithmetic refers to.
    const ss = track(await startSsServer({ method: METHOD, password: PASSWORD }));
    const local = track(await startSsLocal({ method: METHOD, password: PASSWORD, serverPort: ss.port }));
    pairs.push({ label: LIBEV_PAIR, socksPort: local.socksPort, pids: [local.pid, ss.pid] });
  }
  for (const spec of AB) {
    const s = await ladderWebServer(envOf(spec));
    const c = await ladderWebClient(s, envOf(spec));
    pairs.push({ label: `${OURS} ${spec}`, socksPort: c.socksPort, pids: [c.pid, s.pid] });
    if (PAIRS === 'all') {
      // The mixed pairs too: ss-local + v2ray-plugin to this server, this client's kind to ss-server.
      const [ssLocal] = (await clients(s)).filter((x) => x.name !== 'ladder client');
      pairs.push({
        label: `${ssLocal!.name} -> ${s.name} ${spec}`,
        socksPort: ssLocal!.socksPort,
        pids: [ssLocal!.pid, s.pid],
      });
      const ss = all.find((x) => x.name !== s.name)!;
      const lc = await ladderWebClient(ss, envOf(spec));
      pairs.push({
        label: `${lc.name} -> ${ss.name} ${spec}`,
        socksPort: lc.socksPort,
        pids: [lc.pid, ss.pid],
      });
    }
  }
  for (const p of pairs) {
    // Warm-up: the WebSocket and TLS set up, JIT warm (for short connections only with --warm-short).
    log(`warming ${p.label}`);
    const warm = Math.max(4, SIZE > 0 ? WARM_MIB : 0) * MiB;
    await uploadCountVia({ proxyPort: p.socksPort }, { host: '127.0.0.1', port: sink.port }, warm);
    if (SIZE > 0 && WARM_MIB > 0)
      await downloadCountVia({ proxyPort: p.socksPort }, { host: '127.0.0.1', port: source.port }, warm);
    for (const driver of DRIVERS) {
      if (WARM_SHORT > 0)
        await shortConnections(driver, { socksPort: p.socksPort, n: WARM_SHORT, bin: driverBin, echo });
      rows.push({
        pair: p.label,
        driver,
        upload: [],
        download: [],
        shortMs: [],
        cpuPerMiB: [],
        cpuPerShort: [],
        harnessPerShort: [],
        each: [],
        socks: [],
      });
    }
  }
  outer: for (let r = 0; r < RUNS; r++) {
    // Rotated per run, so every pair takes every position (the machine drifts within a sitting).
    const k = r % pairs.length;
    const order = [...pairs.slice(k), ...pairs.slice(0, k)];
    for (const p of order) {
      if (Date.now() > DEADLINE) {
        log('cap reached; stopping with the runs so far');
        break outer;
      }
      const via = { proxyPort: p.socksPort };
      const cpu = (): number => p.pids.reduce((a, pid) => a + treeCpuMs(pid), 0);
      const each0 = p.pids.map(treeCpuMs);
      const cpu0 = cpu();
      const up = SIZE > 0 ? await uploadCountVia(via, { host: '127.0.0.1', port: sink.port }, SIZE) : NaN;
      const eachUp = p.pids.map(treeCpuMs);
      const down =
        SIZE > 0 ? await downloadCountVia(via, { host: '127.0.0.1', port: source.port }, SIZE) : NaN;
      const cpu1 = cpu();
      const eachDown = p.pids.map(treeCpuMs);
      // CPU ms per MiB of each process (client, server) in each direction: less noisy than MiB/s.
      const perMiB = (a: number[], b: number[]): string =>
        a.map((x, i) => ((b[i]! - x) / (SIZE / MiB)).toFixed(1)).join('/');
      log(
        `${p.label}: up ${(SIZE / MiB / (up / 1000)).toFixed(0)} MiB/s, down ${(SIZE / MiB / (down / 1000)).toFixed(0)} MiB/s; CPU ms/MiB client/server up ${perMiB(each0, eachUp)}, down ${perMiB(eachUp, eachDown)}`,
      );
      // Every driver after the bulk phase, their order rotated per run too.
      const dk = r % DRIVERS.length;
      for (const driver of [...DRIVERS.slice(dk), ...DRIVERS.slice(0, dk)]) {
        const row = rows.find((x) => x.pair === p.label && x.driver === driver)!;
        const threads0 = THREADS ? p.pids.map(threadCpuMs) : [];
        const cpuS = cpu();
        const opts = { socksPort: p.socksPort, n: SHORT, bin: driverBin, echo, gapMs: GAP_MS };
        const { total: short, each, socks, harnessMs } = await shortConnections(driver, opts);
        const cpu2 = cpu();
        if (THREADS)
          p.pids.forEach((pid, i) => threadDelta(`short, pid ${pid}`, threads0[i]!, threadCpuMs(pid)));
        row.upload.push(SIZE / MiB / (up / 1000));
        row.download.push(SIZE / MiB / (down / 1000));
        row.shortMs.push(short);
        row.cpuPerMiB.push((cpu1 - cpu0) / ((2 * SIZE) / MiB));
        row.cpuPerShort.push((cpu2 - cpuS) / SHORT);
        row.harnessPerShort.push(harnessMs / SHORT);
        row.each.push(...each);
        row.socks.push(...socks);
        log(
          `${p.label}: ${SHORT} short (driver ${driver}) ${short.toFixed(0)} ms, CPU ${((cpu2 - cpuS) / SHORT).toFixed(2)} ms/conn, harness ${(harnessMs / SHORT).toFixed(2)}`,
        );
      }
      if (MIXED > 0) {
        const m = await shortUnderLoad(p, echo, () =>
          downloadCountVia(via, { host: '127.0.0.1', port: source.port }, MIXED),
        );
        const rec = mixed.get(p.label) ?? { ms: [], mibps: [] };
        mixed.set(p.label, {
          ms: [...rec.ms, ...m.samples],
          mibps: [...rec.mibps, MIXED / MiB / (m.bulkMs / 1000)],
        });
        log(`${p.label}: ${m.samples.length} short under a download, p50 ${median(m.samples).toFixed(2)} ms`);
      }
    }
  }
} finally {
  await Promise.all(peers.map((p) => p.stop()));
  await Promise.all(delayProxies.map((p) => p.close()));
  await Promise.all([sink.close(), source.close(), echo.close()]);
  rmSync(dir, { recursive: true, force: true });
}

const med = (xs: number[]): number => (xs.length ? median(xs) : NaN);
const pct = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN;
};
const out = rows.map((r) => ({
  pair: r.pair,
  driver: r.driver,
  upload: med(r.upload),
  download: med(r.download),
  shortMs: med(r.shortMs),
  cpuPerMiB: med(r.cpuPerMiB),
  cpuPerShort: med(r.cpuPerShort),
  harnessPerShort: med(r.harnessPerShort),
  shortP50: pct(r.each, 0.5),
  shortP90: pct(r.each, 0.9),
  /** Short connections that took 40 ms or more (a delayed-ACK step, or the load). */
  short40: r.each.filter((x) => x >= 40).length / Math.max(1, r.each.length),
  /** Of those, the share whose SOCKS5 phase alone (client only, before any server byte) took >= 20 ms. */
  slowInSocks:
    r.each.filter((x, i) => x >= 40 && r.socks[i]! >= 20).length /
    Math.max(1, r.each.filter((x) => x >= 40).length),
  socksP90: pct(r.socks, 0.9),
  socksP50: pct(r.socks, 0.5),
  /** After the SOCKS5 phase: the first data through the tunnel and back (p50). */
  dataP50: pct(
    r.each.map((x, i) => x - r.socks[i]!),
    0.5,
  ),
  runs: r.upload.length,
}));
const lines = [
  `Shadowsocks over WebSocket+TLS, ${METHOD}${ENTRY ? ` (ladder from ${ENTRY})` : ''}, ${SIZE / MiB} MiB single flow, ${SHORT} short connections (driver ${DRIVERS.join(', ')}; Mux.Cool on${WARM_SHORT > 0 ? `; after ${WARM_SHORT} unmeasured` : ''}), median of ${RUNS}${SIZE > 0 ? ` after ${WARM_MIB} MiB each way unmeasured` : ''}; load ${load0.toFixed(1)} at start`,
  '',
  `| client -> server | driver | upload MiB/s | download MiB/s | ${SHORT} short conns, s | CPU ms/MiB | CPU ms/short conn | harness CPU ms/short conn | short conn p50 / p90 ms | >= 40 ms | SOCKS phase p50 / p90 ms | data phase p50 ms | of >= 40 ms: SOCKS phase >= 20 ms |`,
  '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ...out.map(
    (r) =>
      `| ${r.pair} | ${r.driver} | ${r.upload.toFixed(0)} | ${r.download.toFixed(0)} | ${(r.shortMs / 1000).toFixed(2)} | ${r.cpuPerMiB.toFixed(1)} | ${r.cpuPerShort.toFixed(2)} | ${r.harnessPerShort.toFixed(2)} | ${r.shortP50.toFixed(2)} / ${r.shortP90.toFixed(2)} | ${(100 * r.short40).toFixed(0)}% | ${r.socksP50.toFixed(2)} / ${r.socksP90.toFixed(2)} | ${r.dataP50.toFixed(2)} | ${r.short40 > 0 ? `${(100 * r.slowInSocks).toFixed(0)}%` : '-'} |`,
  ),
];
for (const driver of DRIVERS) {
  const ours = out.find((r) => r.pair === OURS && r.driver === driver);
  const theirs = out.find((r) => r.pair === THEIRS && r.driver === driver);
  if (!ours || !theirs) continue;
  // Each run's ratio (the two pairs measured in the same run), lowest to highest.
  const oursRow = rows.find((r) => r.pair === OURS && r.driver === driver)!;
  const theirsRow = rows.find((r) => r.pair === THEIRS && r.driver === driver)!;
  const range = (k: 'upload' | 'download' | 'shortMs'): string => {
    const rs = oursRow[k].map((x, i) => x / theirsRow[k][i]!).filter(Number.isFinite);
    return rs.length > 1 ? ` (runs ${Math.min(...rs).toFixed(2)}-${Math.max(...rs).toFixed(2)})` : '';
  };
  lines.push(
    '',
    budget(
      theirs,
      out.find((r) => r.pair === LIBEV_PAIR && r.driver === driver),
    ),
    `driver ${driver}: ladder/ladder vs v2ray-plugin/ss-server: upload ${(ours.upload / theirs.upload).toFixed(2)}x${range('upload')}, download ${(ours.download / theirs.download).toFixed(2)}x${range('download')} (target >= 1.5x); short connections ${(ours.shortMs / theirs.shortMs).toFixed(2)}x the time${range('shortMs')} (target <= 0.5x); CPU ${(ours.cpuPerMiB / theirs.cpuPerMiB).toFixed(2)}x per MiB, ${(ours.cpuPerShort / theirs.cpuPerShort).toFixed(2)}x per short connection`,
  );
}
process.stdout.write(lines.join('\n') + '\n');
if (mixed.size > 0) {
  const mixedLines = [
    `\nshort connections under one ${MIXED / MiB} MiB download through the same pair (driver: this process), all runs`,
    '| client -> server | short p50 / p90 / p99 ms (n) | download MiB/s meanwhile (median) |',
    '|---|--:|--:|',
  ];
  for (const [label, m] of mixed)
    mixedLines.push(
      `| ${label} | ${[0.5, 0.9, 0.99].map((q) => pct(m.ms, q).toFixed(2)).join(' / ')} (${m.ms.length}) | ${med(m.mibps).toFixed(0)} |`,
    );
  process.stdout.write(mixedLines.join('\n') + '\n');
}

/**
 * What the <= 0.5x target leaves the proxies per short connection: half their time per
 * connection, less this harness's own CPU on the same path (sequential connections on loopback:
 * each process wakes the next, so every process's work is on the path).
 */
function budget(theirs: (typeof out)[number], libev: (typeof out)[number] | undefined): string {
  const per = theirs.shortMs / SHORT;
  const harness = median(
    out
      .filter((r) => r.driver === theirs.driver)
      .map((r) => r.harnessPerShort)
      .filter(Number.isFinite),
  );
  const floor = libev
    ? `; ss-local -> ss-server over raw TCP (no TLS, WebSocket or Mux.Cool) takes ${(libev.shortMs / SHORT).toFixed(2)} ms per connection, ${libev.cpuPerShort.toFixed(2)} ms of its CPU`
    : '';
  return `budget at the target: 0.5 x their ${per.toFixed(2)} ms per connection = ${(per / 2).toFixed(2)} ms, of which this harness's own CPU takes ${harness.toFixed(2)} ms${floor}`;
}
if (JSON_OUT)
  writeFileSync(
    JSON_OUT,
    JSON.stringify(
      { method: METHOD, size: SIZE, runs: RUNS, short: SHORT, drivers: DRIVERS, load: load0, rows: out },
      null,
      2,
    ),
  );
