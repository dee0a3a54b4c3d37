/**
 * Where a short connection's time goes on Ladder client -> Ladder server over WebSocket+TLS with
 * Mux.Cool, hop by hop (issue 12's <= 0.5x figure; docs/benchmarks.md, "what <= 0.5x would
 * take"). Runs `--n` short connections in a row (SOCKS5, 64 bytes echoed, close) after `--warm`
 * unmeasured, as bench/web.ts does, and prints:
 *
 * - CPU per connection of each thread of both Ladder processes and of the driver (the SOCKS5
 *   client and the echo server, on the same path), and the time per connection;
 * - with `--perf` (needs `perf` and the rights to trace other processes): the median of each hop
 *   from syscall tracepoints of both processes (the application's first data read -> the client's
 *   TLS write -> the server's TLS read -> connect(2) -> the first send to the destination -> its
 *   reply read -> the server's TLS write -> the client's TLS read -> the send to the
 *   application), the sizes of the TLS writes (one record per message: New + data, Keep, and
 *   how often an End left alone), and system calls and context switches per connection.
 *
 *   node --import tsx bench/web-hops.ts [--n 2000] [--warm 2000] [--perf] [--raw] [--env VAR=V,...]
 *       [--driver c|node|curl]
 *
 * The connections come from bench/short-drivers.ts's driver (default `c`: a SOCKS5 client and
 * echo in C, a few system calls per connection; `node`: this process's Node sockets, as before
 * the fifteenth session; `curl`: curl GETs; the hop table expects the 64-byte exchange, so not
 * with curl).
 *
 * `--callgrind` runs both Ladder processes under valgrind's callgrind (counts zeroed after the
 * warm-up, dumped after the measured connections) and adds instructions per connection: the
 * figure to compare on a shared machine (use --warm 600 --n 300: ~50x slower); `--keep` keeps
 * the dumps for callgrind_annotate.
 * `--raw` dials the server's raw Shadowsocks port instead (the same programs without WebSocket,
 * TLS and Mux.Cool; --perf's hop table is for the WebSocket path only). Runs this checkout's
 * dist/, built first unless `--no-build`.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeLabCertificates } from '../src/lab/lab-ca.js';
import { formatSsUrl } from '../src/protocol/sip002/index.js';
import { freePort, startEcho, waitForPort } from '../test/helpers/net.js';
import { startLadderClient, startLadderServer, which, type Method } from '../test/helpers/peers.js';
import { opt, posInt } from './args.js';
import { currentDist } from './dist.js';
import { callgrindClient, callgrindServer, instructions, zeroCounts } from './callgrind.js';
import { buildShortDriver, parseDrivers, shortConnections, type ShortResult } from './short-drivers.js';
import { perfAttach } from './perf-attach.js';
import { median } from './stats.js';

const N = posInt('--n', 2000);
const WARM = posInt('--warm', 2000);
const PERF = process.argv.includes('--perf');
/** `--callgrind`: both Ladder processes under callgrind; instructions per connection (bench/callgrind.ts). */
const CALLGRIND = process.argv.includes('--callgrind');
if (CALLGRIND && PERF) throw new Error('--callgrind and --perf: one at a time');
const RAW = process.argv.includes('--raw');
/** `--driver c|node|curl`: who drives the connections and answers them (bench/short-drivers.ts). */
const DRIVERS = parseDrivers(opt('--driver', 'c'));
if (DRIVERS.length !== 1) throw new Error('--driver: one driver at a time here');
const DRIVER = DRIVERS[0]!;
const ENV = Object.fromEntries(
  opt('--env', '')
    .split(',')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const METHOD: Method = 'chacha20-ietf-poly1305';
const log = (m: string): void => void process.stderr.write(`[web-hops] ${m}\n`);
if (PERF && !which('perf')) throw new Error('--perf needs perf (apt-get install linux-perf)');
currentDist(!process.argv.includes('--no-build'), log);

const dir = mkdtempSync(join(tmpdir(), 'ladder-web-hops-'));
const certs = await makeLabCertificates(['hops.web.lab']);
const file = (name: string, data: Buffer): string => (writeFileSync(join(dir, name), data), join(dir, name));
const driverBin = DRIVER === 'node' ? '' : buildShortDriver(dir);
const [ca, cert, key] = [file('ca.pem', certs.ca), file('cert.pem', certs.cert), file('key.pem', certs.key)];
const webPort = await freePort();
const env = { LADDER_DIST: '1', ...ENV };
const serverArgs = {
  method: METHOD,
  password: 'hops',
  extraArgs: [
    ...['--web-port', String(webPort), '--web-host', '127.0.0.1', '--web-path', '/hops'],
    ...['--tls-cert', cert, '--tls-key', key],
  ],
};
const server = CALLGRIND
  ? await callgrindServer(serverArgs, env, dir)
  : await startLadderServer({ env, ...serverArgs });
await waitForPort(webPort);
const key1 = RAW
  ? formatSsUrl({ method: METHOD, password: 'hops', host: '127.0.0.1', port: server.port })
  : formatSsUrl({
      method: METHOD,
      password: 'hops',
      host: '127.0.0.1',
      port: webPort,
      plugin: 'v2ray-plugin',
      pluginOptions: 'tls;host=hops.web.lab;path=/hops',
    });
const clientEnv = { ...env, NODE_EXTRA_CA_CERTS: ca };
const client = CALLGRIND
  ? await callgrindClient(key1, clientEnv, dir)
  : await startLadderClient({ env: clientEnv, key: key1 });
const echo = await startEcho();

const short = async (n: number): Promise<ShortResult> =>
  shortConnections(DRIVER, {
    socksPort: client.socksPort,
    n,
    bin: driverBin,
    echo,
    timeoutMs: CALLGRIND ? 120_000 : 10_000,
  });

/** CPU ms (user + system) of each thread of `pid`, by "name/tid". */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(
      `${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}/${t}`,
      (Number(f[11]) + Number(f[12])) * 10,
    );
  }
  return out;
}

const TRACEPOINTS = [
  'syscalls:sys_enter_write',
  'syscalls:sys_enter_sendto',
  'syscalls:sys_exit_read',
  'syscalls:sys_exit_recvfrom',
  'syscalls:sys_enter_connect',
];

/** A recorder on `pid` (perf record of TRACEPOINTS, perf stat of syscalls and switches). */
function perfOn(pid: number, name: string): ChildProcess[] {
  return perfAttach(pid, {
    record: ['-e', TRACEPOINTS.join(',')],
    recordTo: join(dir, `${name}.data`),
    statEvents: ['raw_syscalls:sys_enter', 'context-switches'],
    statTo: join(dir, `${name}.stat`),
  }).children;
}

interface Ev {
  t: number;
  ev: string;
  /** The byte count of a write/sendto, the return value of a read/recvfrom. */
  n: number;
}

/** The tracepoints `perf record` wrote for one process, in time order (t in us). */
function events(name: string): Ev[] {
  const r = spawnSync('perf', ['script', '-i', join(dir, `${name}.data`), '-F', 'time,event,trace'], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  const out: Ev[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([\d.]+):\s+syscalls:(\w+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const a = m[3]!;
    const len = /(?:len|count): (0x[0-9a-f]+)/.exec(a);
    out.push({
      t: Number(m[1]) * 1e6,
      ev: m[2]!,
      n: len ? Number(len[1]) : a.startsWith('0x') ? Number(a) : -1,
    });
  }
  return out;
}

/** The first time in sorted `ts` at or after `t`. */
function next(ts: number[], t: number | undefined): number | undefined {
  if (t === undefined) return undefined;
  let lo = 0;
  let hi = ts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ts[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return ts[lo];
}

/** Median of each hop over the connections whose whole chain was found. */
function hops(c: Ev[], s: Ev[]): string[] {
  const times = (evs: Ev[], ev: string, ok: (n: number) => boolean): number[] =>
    evs.filter((e) => e.ev === ev && ok(e.n)).map((e) => e.t);
  const big = (n: number): boolean => n > 100; // a TLS record with a session's bytes
  const is64 = (n: number): boolean => n === 64;
  const cTlsW = times(c, 'sys_enter_write', big);
  const sTlsR = times(s, 'sys_exit_read', big);
  const sConn = times(s, 'sys_enter_connect', () => true);
  const sSend = times(s, 'sys_enter_sendto', is64);
  const sRecv = times(s, 'sys_exit_recvfrom', is64);
  const sTlsW = times(s, 'sys_enter_write', big);
  const cTlsR = times(c, 'sys_exit_read', big);
  const cSend = times(c, 'sys_enter_sendto', is64);
  const names = [
    'client: application data read -> TLS write',
    'TLS write -> server TLS read returns',
    'server: TLS read -> connect(2)',
    'server: connect(2) -> first send to the destination',
    'destination (this process echoes) -> server reads the reply',
    'server: reply read -> TLS write',
    'TLS write -> client TLS read returns',
    'client: TLS read -> send to the application',
  ];
  const segs: number[][] = names.map(() => []);
  for (const t0 of times(c, 'sys_exit_recvfrom', is64)) {
    const chain = [t0];
    for (const ts of [cTlsW, sTlsR, sConn, sSend, sRecv, sTlsW, cTlsR, cSend])
      chain.push(next(ts, chain.at(-1))!);
    if (chain.some((x) => x === undefined) || chain.at(-1)! - t0 > 5000 || chain[1]! - t0 > 2000) continue;
    for (let i = 0; i < names.length; i++) segs[i]!.push(chain[i + 1]! - chain[i]!);
  }
  const rows = names.map((name, i) => `  ${name.padEnd(60)} ${median(segs[i]!).toFixed(0).padStart(5)} us`);
  const sizes = (evs: Ev[]): string => {
    const count = new Map<number, number>();
    for (const e of evs) if (e.ev === 'sys_enter_write' && e.n > 8) count.set(e.n, (count.get(e.n) ?? 0) + 1);
    return [...count]
      .sort((a, b) => b[1] - a[1])
      .map(([n, k]) => `${n} B x ${k}`)
      .join(', ');
  };
  return [
    `hops, median over ${segs[0]!.length} connections:`,
    ...rows,
    `  sum ${segs.reduce((a, x) => a + median(x), 0).toFixed(0)} us`,
    `TLS writes by size, client: ${sizes(c)}`,
    `TLS writes by size, server: ${sizes(s)}`,
  ];
}

try {
  log(`${WARM} short connections unmeasured`);
  await short(WARM);
  if (CALLGRIND) zeroCounts([client.pid, server.pid]);
  const recorders = PERF ? [...perfOn(client.pid, 'client'), ...perfOn(server.pid, 'server')] : [];
  if (PERF) await new Promise((r) => setTimeout(r, 1500)); // attached
  const before = [threadCpu(client.pid), threadCpu(server.pid)];
  const { total: wall, each, socks, harnessMs } = await short(N);
  const after = [threadCpu(client.pid), threadCpu(server.pid)];
  for (const r of recorders) r.kill('SIGINT');
  await Promise.all(
    recorders.map((r) => new Promise((res) => (r.exitCode !== null ? res(0) : r.once('exit', res)))),
  );
  const lines = [
    `${RAW ? 'raw TCP' : 'WebSocket+TLS+Mux.Cool'}, ${N} short connections after ${WARM}: ${(wall / N).toFixed(3)} ms each (p50 ${median(each).toFixed(3)}, SOCKS5 phase p50 ${median(socks).toFixed(3)})`,
    `CPU us per connection: the driver and the echo (--driver ${DRIVER}) ${((harnessMs * 1000) / N).toFixed(0)}`,
  ];
  ['client', 'server'].forEach((name, i) => {
    const parts: string[] = [];
    for (const [k, v] of after[i]!) {
      const d = v - (before[i]!.get(k) ?? 0);
      if (d > 0) parts.push(`${k} ${((d * 1000) / N).toFixed(0)}`);
    }
    lines.push(`  ${name}: ${parts.join(', ')}`);
  });
  if (CALLGRIND) {
    const [ic, is] = [instructions(client.pid, dir), instructions(server.pid, dir)];
    const k = (x: number): string => `${(x / N / 1000).toFixed(1)}k`;
    lines.push(
      `instructions per connection (callgrind), event-loop thread: client ${k(ic.busiest)}, server ${k(is.busiest)}`,
      `instructions per connection (callgrind), all threads: client ${k(ic.all)}, server ${k(is.all)}`,
    );
  }
  if (PERF) {
    for (const name of ['client', 'server']) {
      const stat = readFileSync(join(dir, `${name}.stat`), 'utf8')
        .split('\n')
        .filter((l) => /^\d/.test(l));
      lines.push(
        `${name} per connection: ${stat.map((l) => `${l.split(',')[2]} ${(Number(l.split(',')[0]) / N).toFixed(1)}`).join(', ')}`,
      );
    }
    if (!RAW) lines.push(...hops(events('client'), events('server')));
  }
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  await Promise.all([client.stop(), server.stop(), echo.close()]);
  if (process.argv.includes('--keep')) log(`dumps kept in ${dir} (callgrind_annotate DIR/cg.PID-THREAD)`);
  else rmSync(dir, { recursive: true, force: true });
}
