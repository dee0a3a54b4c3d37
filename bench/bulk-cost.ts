/**
 * The bulk path's cost per GiB for Ladder builds or environment switches, by counters rather than
 * wall time (session 17: the relay's read size): 8 concurrent flows through client + server, and
 * for each process `perf stat` (task-clock, system calls by kind, context switches) plus its CPU ms
 * from /proc, per GiB moved. Variants run interleaved (the order rotates every round),
 * each in its own client + server pair, so drift on a shared machine hits them alike.
 *
 *   node --import tsx bench/bulk-cost.ts --variant base= --variant r256=LADDER_RELAY_READ_KIB=256 \
 *     [--size 512MiB] [--rounds 3] [--dir download|upload|both] [--method aes-256-gcm] [--entry dist/cli/main.js]
 *
 * A variant is NAME=VAR=VALUE[,VAR=VALUE...] (empty after NAME=: the defaults); CLIENT:VAR / SERVER:VAR
 * set VAR for one process only. Needs perf (run as root, or perf_event_paranoid <= 1); without it
 * only CPU ms is reported. --perf DIR also records each process of each run (`perf record -g`)
 * into DIR/DIRECTION-VARIANT-ROUND-SIDE.data. System calls and context switches per GiB hardly
 * move with the machine's load; task-clock and CPU ms do (say which figure a claim rests on).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSink, startSource } from '../test/helpers/net.js';
import type { Method, Peer } from '../test/helpers/peers.js';
import {
  cpuMs,
  REPO_ROOT,
  rssKiB,
  ssUrl,
  startLadderClient,
  startLadderServer,
} from '../test/helpers/peers.js';
import { downloadCountVia, uploadCountVia } from '../test/helpers/transfer.js';
import { opt, posInt } from './args.js';
import { concurrentFlows, driverMs } from './compare-load.js';
import { perfAttach, readPerfStat } from './perf-attach.js';

const argv = process.argv.slice(2);
const variants = argv.flatMap((a, i) => (argv[i - 1] === '--variant' ? [a] : []));
if (variants.length === 0) variants.push('base=');
const sizeArg = opt('--size', '512MiB');
const size = Number(/^(\d+)MiB$/.exec(sizeArg)?.[1] ?? NaN) * 1024 * 1024;
if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`--size NMiB, got "${sizeArg}"`);
const rounds = posInt('--rounds', 3);
const dirArg = opt('--dir', 'download');
const dirs = dirArg === 'both' ? ['download', 'upload'] : [dirArg];
if (!dirs.every((d) => d === 'download' || d === 'upload')) throw new Error('--dir download|upload|both');
const method = opt('--method', 'aes-256-gcm') as Method;
const entry = opt('--entry', join(REPO_ROOT, 'dist/cli/main.js'));
// No hardware counters on this VM (instructions, cycles: <not supported>): task-clock is the
// process's CPU time in ns, the system calls, context switches and page faults are exact counts.
const EVENTS = [
  'task-clock',
  'raw_syscalls:sys_enter',
  'syscalls:sys_enter_recvfrom',
  'syscalls:sys_enter_sendto',
  'syscalls:sys_enter_epoll_wait',
  'syscalls:sys_enter_epoll_pwait',
  'syscalls:sys_enter_epoll_ctl',
  'context-switches',
  'page-faults',
];
const hasPerf = spawnSync('perf', ['stat', '-x,', '-e', 'task-clock', 'true']).status === 0;

const envOf = (vars: string[], side: 'CLIENT:' | 'SERVER:'): NodeJS.ProcessEnv =>
  Object.fromEntries(
    vars
      .filter((v) => !/^(CLIENT|SERVER):/.test(v) || v.startsWith(side))
      .map((v) => (v.startsWith(side) ? v.slice(side.length) : v))
      .map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)]),
  );

const perfDir = argv.includes('--perf') ? opt('--perf', '') : '';

/** perf stat (and with --perf DIR, perf record -g into DIR/TAG.data) on `pid` until stop(). */
function perfOn(pid: number, tag: string): { stop: () => Promise<Map<string, number>> } {
  if (!hasPerf) return { stop: async () => new Map() };
  const statTo = join(tmpdir(), `ladder-bulk-cost-${pid}-${randomBytes(4).toString('hex')}.csv`);
  const rec = perfDir ? ['-g', '-F', '999'] : undefined;
  const p = rec
    ? perfAttach(pid, { record: rec, recordTo: join(perfDir, `${tag}.data`), statEvents: EVENTS, statTo })
    : spawn('perf', ['stat', '-x', ',', '-o', statTo, '-e', EVENTS.join(','), '-p', String(pid)], {
        stdio: 'ignore',
      });
  return {
    async stop() {
      if ('stop' in p) await p.stop();
      else await new Promise((r) => (p.once('exit', r), p.kill('SIGINT')));
      const m = readPerfStat(statTo);
      rmSync(statTo, { force: true });
      return m;
    },
  };
}

if (perfDir) mkdirSync(perfDir, { recursive: true });
const sink = await startSink({ hash: false });
const source = await startSource({ hash: false, fresh: false });
type Row = Record<string, number[]>;
const results = new Map<string, Row>();
interface Stack {
  name: string;
  server: Peer & { port: number };
  client: Peer & { socksPort: number };
}
const stacks: Stack[] = [];
for (const v of variants) {
  const at = v.indexOf('=');
  if (at < 1) throw new Error(`--variant NAME=VAR=VALUE[,...], got "${v}"`);
  const name = v.slice(0, at);
  const vars = v
    .slice(at + 1)
    .split(',')
    .filter(Boolean);
  const password = `bench-${randomBytes(8).toString('hex')}`;
  const server = await startLadderServer({ method, password, entry, env: envOf(vars, 'SERVER:') });
  const client = await startLadderClient({
    key: ssUrl(method, password, '127.0.0.1', server.port),
    entry,
    env: envOf(vars, 'CLIENT:'),
  });
  stacks.push({ name, server, client });
}
try {
  const one = (st: Stack, dir: string, b: number) =>
    dir === 'download'
      ? downloadCountVia({ proxyPort: st.client.socksPort }, { host: '127.0.0.1', port: source.port }, b)
      : uploadCountVia({ proxyPort: st.client.socksPort }, { host: '127.0.0.1', port: sink.port }, b);
  for (const st of stacks)
    for (const dir of dirs) await concurrentFlows(64 * 1024 * 1024, (b) => one(st, dir, b));
  for (let r = 0; r < rounds; r++) {
    for (const dir of dirs) {
      for (let j = 0; j < stacks.length; j++) {
        const st = stacks[(r + j) % stacks.length]!;
        const tag = `${dir}-${st.name}-${r + 1}`;
        const [pc, ps] = [perfOn(st.client.pid, `${tag}-client`), perfOn(st.server.pid, `${tag}-server`)];
        await new Promise((res) => setTimeout(res, 100)); // perf attached
        const [c0, s0, d0] = [await cpuMs(st.client.pid), await cpuMs(st.server.pid), driverMs()];
        const ms = await concurrentFlows(size, (b) => one(st, dir, b));
        const [c1, s1, d1] = [await cpuMs(st.client.pid), await cpuMs(st.server.pid), driverMs()];
        const [mc, ms2] = [await pc.stop(), await ps.stop()];
        const gib = size / 1024 ** 3;
        const key = `${dir} ${st.name}`;
        const row = results.get(key) ?? {};
        const add = (k: string, x: number) => (row[k] ??= []).push(x);
        add('MiB/s', size / 1024 / 1024 / (ms / 1000));
        add('CPU ms/GiB client', (c1 - c0) / gib);
        add('CPU ms/GiB server', (s1 - s0) / gib);
        add('bench ms/GiB', (d1 - d0) / gib);
        // RSS after the run (not per GiB): what the relay's buffers leave touched
        add('RSS MiB client', (await rssKiB(st.client.pid)) / 1024);
        add('RSS MiB server', (await rssKiB(st.server.pid)) / 1024);
        for (const [side, m] of [
          ['client', mc],
          ['server', ms2],
        ] as const) {
          for (const [k, x] of m) {
            // task-clock is in ms already (perf's unit for it)
            add(`${k.replace(/^(raw_)?syscalls:sys_enter_?/, 'sys ')}/GiB ${side}`, x / gib);
          }
        }
        results.set(key, row);
        console.error(
          `${key} round ${r + 1}: ${(size / 1024 / 1024 / (ms / 1000)).toFixed(0)} MiB/s, CPU ${((c1 - c0 + s1 - s0) / gib).toFixed(0)} ms/GiB`,
        );
      }
    }
  }
} finally {
  await Promise.all(stacks.flatMap((s) => [s.client.stop(5000), s.server.stop(5000)]));
  await Promise.all([sink.close(), source.close()]);
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) =>
  x >= 1e6 ? `${(x / 1e6).toFixed(1)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0);
console.log(`\n${method}, 8 flows, ${sizeArg} per run, ${rounds} rounds; median (min-max)`);
const keys = [...new Set([...results.values()].flatMap((r) => Object.keys(r)))];
console.log(`| measure | ${[...results.keys()].join(' | ')} |`);
console.log(`|---|${[...results.keys()].map(() => '---').join('|')}|`);
for (const k of keys) {
  const cells = [...results.values()].map((r) => {
    const xs = r[k] ?? [];
    return xs.length ? `${fmt(med(xs))} (${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))})` : '';
  });
  console.log(`| ${k} | ${cells.join(' | ')} |`);
}
