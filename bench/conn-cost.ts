/**
 * What one short connection costs Ladder's client and server, in numbers that hold on a loaded
 * machine: CPU time per connection (user + sys from /proc/PID/stat) and, with --callgrind,
 * **instructions** per connection (valgrind's callgrind, zeroed after the warm-up and dumped after
 * the measured connections, so start-up and JIT warm-up are not counted).
 *
 * One short connection is what bench/compare.ts times: SOCKS5 handshake, 32-byte request through
 * the tunnel to an echo server, 32-byte echo, close; one at a time, --n of them after --warm.
 *
 *   node --import tsx bench/conn-cost.ts                      # CPU µs per connection, dist/
 *   node --import tsx bench/conn-cost.ts --callgrind --n 300  # + instructions (slow: ~1 min)
 *   node --import tsx bench/conn-cost.ts --entry /other/checkout/dist/cli/main.js
 *   options: --method M (aes-256-gcm), --workers N (server data-plane workers, 1),
 *            --warm N (300), --n N (2000; 300 with --callgrind), --no-build,
 *            --host NAME (the destination the SOCKS5 requests name: 127.0.0.1; "localhost" takes
 *            the server's name-resolution path, as a browser's socks5h request does),
 *            --prof DIR (--cpu-prof into DIR), --strace (system calls per connection),
 *            --keep (keep the callgrind dumps for callgrind_annotate),
 *            --gc (both processes under --trace-gc-nvp: JS bytes allocated and GCs per connection,
 *            per isolate: the busiest is the event loop's, or the data-plane worker's; gc-trace.ts),
 *            --client-env VAR=VALUE, --server-env VAR=VALUE (repeatable: environment of one
 *            Ladder process, e.g. --client-env LADDER_NATIVE_RELAY=1),
 *            --client-arg ARG (repeatable: appended to Ladder's client command line, e.g.
 *            --client-arg --rules --client-arg rules.txt for a client with routing rules),
 *            --perf DIR (perf record -g of each process's kernel and user stacks during the
 *            measured connections into DIR/perf.client.data and DIR/perf.server.data, and perf
 *            stat's context switches, migrations, page faults and wake-ups per connection;
 *            --perf-event EV records every EV instead (e.g. sched:sched_switch: where each
 *            process blocks or is preempted); --perf-syscalls adds counts of the system calls of the short path, which cost time),
 *            --batch (both processes, every thread, SCHED_BATCH before the warm-up: a woken
 *            batch task does not preempt the task that woke it),
 *            --libev (measure ss-local + ss-server instead, the reference),
 *            --threads (CPU per connection of each thread of both processes: the event loop or
 *            main thread, the data-plane workers, Node's and V8's helper threads),
 *            --gap MS (idle MS between two connections, as bench:compare's interleaving of five
 *            stacks leaves each one: a process that sleeps between connections, 0),
 *            (every run also prints both processes' open descriptors and epoll registrations
 *            after the warm-up and after the measured connections: a leak shows as growth),
 *            --floor (measure bench/floor-relay.ts instead: Node sockets, no crypto, no Ladder)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startEcho } from '../test/helpers/net.js';
import type { Method, Peer } from '../test/helpers/peers.js';
import { REPO_ROOT, spawnPeer, ssUrl, which } from '../test/helpers/peers.js';
import { opt, posInt } from './args.js';
import { instructions } from './callgrind.js';
import { currentDist } from './dist.js';
import { oneExchange } from './exchange.js';
import { GC_TRACE, gcLine } from './gc-trace.js';
import { perfAttach, readPerfStat } from './perf-attach.js';
import { median } from './stats.js';

const argv = process.argv.slice(2);
const callgrind = argv.includes('--callgrind');
const method = opt('--method', 'aes-256-gcm') as Method;
const workers = posInt('--workers', 1);
const warm = posInt('--warm', 300);
const n = posInt('--n', callgrind ? 300 : 2000);
/** --host NAME: the destination each SOCKS5 request names (an IP literal, or a name to resolve). */
const host = opt('--host', '127.0.0.1');
const entry = opt('--entry', join(REPO_ROOT, 'dist', 'cli', 'main.js'));
/** --prof DIR: both processes under --cpu-prof, profiles written to DIR at exit. */
const profDir = argv.includes('--prof') ? opt('--prof', '') : undefined;
/** --strace: count the system calls each process makes during the measured connections. */
const strace = argv.includes('--strace');
/** --perf DIR: perf record + perf stat of both processes during the measured connections. */
const perfDir = argv.includes('--perf') ? opt('--perf', '') : undefined;
/** --libev: the same measurements of ss-local + ss-server (shadowsocks-libev), for reference. */
const libev = argv.includes('--libev');
/** --floor: bench/floor-relay.ts (two Node processes relaying with no crypto), Node's own floor. */
const floor = argv.includes('--floor');
/** --client-env / --server-env VAR=VALUE (repeatable): set for that Ladder process only. */
const envOf = (flag: string): NodeJS.ProcessEnv =>
  Object.fromEntries(
    argv
      .flatMap((a, i) => (argv[i - 1] === flag ? [a] : []))
      .map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)]),
  );
const clientEnv = envOf('--client-env');
const clientArgs = argv.flatMap((a, i) => (argv[i - 1] === '--client-arg' ? [a] : []));
/** --gc: JS allocations per connection from V8's GC trace (gc-trace.ts). */
const gc = argv.includes('--gc');
const serverEnv = envOf('--server-env');
/** --threads: CPU per connection of every thread (threadCpu). */
const perThread = argv.includes('--threads');
/** --gap MS: idle time between connections. */
const gapMs = argv.includes('--gap') ? Number(opt('--gap', '0')) : 0;

function log(msg: string): void {
  process.stderr.write(`[conn-cost ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

const outDir = mkdtempSync(join(tmpdir(), 'ladder-conn-cost-'));
/** `bin args` (Ladder: node, with --cpu-prof when asked), under callgrind when asked. */
function command(bin: string, args: string[]): [string, string[]] {
  if (bin === process.execPath && profDir !== undefined)
    args = ['--cpu-prof', `--cpu-prof-dir=${profDir}`, ...args];
  if (!callgrind) return [bin, args];
  return [
    'valgrind',
    [
      '--tool=callgrind',
      // V8 writes and moves machine code: valgrind must notice every code write.
      '--smc-check=all-non-file',
      '--separate-threads=yes',
      `--callgrind-out-file=${join(outDir, 'cg.%p')}`,
      bin,
      ...args,
    ],
  ];
}

/**
 * A libev binary by path. Under callgrind a copy: Debian's ss-server/ss-local carry file
 * capabilities, which valgrind refuses to run; a copy has none.
 */
function libevBin(name: string): string {
  const bin = which(name);
  if (!bin) throw new Error(`${name} not found (apt-get install shadowsocks-libev)`);
  if (!callgrind) return bin;
  copyFileSync(bin, join(outDir, name));
  chmodSync(join(outDir, name), 0o755);
  return join(outDir, name);
}

/** The two processes: Ladder's server and client, or with --libev ss-server and ss-local. */
async function startPair(password: string): Promise<{ server: Peer; client: Peer & { socksPort: number } }> {
  const port = await freePort();
  const socksPort = await freePort();
  // Bundled first: under valgrind, tsx's start-up transpiling alone takes minutes.
  const floorArgs = (...a: string[]): string[] => [join(outDir, 'floor-relay.mjs'), ...a];
  const [scmd, sargs] = floor
    ? command(process.execPath, floorArgs('server', String(port)))
    : libev
      ? command(libevBin('ss-server'), ['-s', '127.0.0.1', '-p', String(port), '-k', password, '-m', method])
      : command(process.execPath, [
          ...(gc ? [GC_TRACE] : []),
          entry,
          'server',
          '--host',
          '127.0.0.1',
          '--port',
          String(port),
          '--method',
          method,
          '--password',
          password,
          '--allow-private',
          '--workers',
          String(workers),
        ]);
  const name = libev ? ['ss-server', 'ss-local'] : ['ladder server', 'ladder client'];
  const server = await spawnPeer(name[0]!, scmd, sargs, {
    waitPort: port,
    waitTimeoutMs: 300_000,
    env: serverEnv,
    ...(gc ? { maxOutput: 64 << 20 } : {}),
  });
  const [ccmd, cargs] = floor
    ? command(process.execPath, floorArgs('client', String(socksPort), String(port)))
    : libev
      ? command(libevBin('ss-local'), [
          ...['-s', '127.0.0.1', '-p', String(port), '-b', '127.0.0.1', '-l', String(socksPort)],
          ...['-k', password, '-m', method],
        ])
      : command(process.execPath, [
          ...(gc ? [GC_TRACE] : []),
          entry,
          'client',
          '--key',
          ssUrl(method, password, '127.0.0.1', port),
          '--socks',
          `127.0.0.1:${socksPort}`,
          ...clientArgs,
        ]);
  const client = await spawnPeer(name[1]!, ccmd, cargs, {
    waitPort: socksPort,
    waitTimeoutMs: 300_000,
    env: clientEnv,
    ...(gc ? { maxOutput: 64 << 20 } : {}),
  });
  return { server, client: Object.assign(client, { socksPort }) };
}

/** User and system CPU time of a process so far, ms (/proc/PID/stat utime, stime; 10 ms ticks). */
function cpu(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) * 10, sys: Number(f[12]) * 10 };
}

/** User + system CPU ms of every thread of `pid` so far, by thread id, with its name (comm). */
function threadCpu(pid: number): Map<number, { name: string; ms: number }> {
  const out = new Map<number, { name: string; ms: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      out.set(Number(tid), { name, ms: (Number(f[11]) + Number(f[12])) * 10 });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/**
 * The per-thread split between two threadCpu() readings, µs per connection: the main thread (its
 * id is the process's), threads named like it (Node names a worker thread after the process: the
 * data-plane workers, by CPU), and the rest (Node's "node" helper threads: V8's platform workers,
 * libuv's pool) summed.
 */
function threadSplit(
  pid: number,
  a: ReturnType<typeof threadCpu>,
  b: ReturnType<typeof threadCpu>,
  count: number,
): string {
  const main = b.get(pid)!;
  const rows: string[] = [];
  const us = (tid: number, t: { ms: number }): number => ((t.ms - (a.get(tid)?.ms ?? 0)) * 1000) / count;
  rows.push(`main ${us(pid, main).toFixed(0)}`);
  const workers = [...b]
    .filter(([tid, t]) => tid !== pid && t.name === main.name)
    .map(([tid, t]) => us(tid, t))
    .sort((x, y) => y - x);
  if (workers.length > 0) rows.push(`workers ${workers.map((x) => x.toFixed(0)).join(' + ')}`);
  let helpers = 0;
  let busy = 0;
  for (const [tid, t] of b) {
    if (tid === pid || t.name === main.name) continue;
    const x = us(tid, t);
    helpers += x;
    if (x > 0) busy++;
  }
  rows.push(`helper threads ${helpers.toFixed(0)} (${busy} of ${b.size - 1 - workers.length} ran)`);
  return rows.join(', ');
}

/**
 * Context switches of a process so far, summed over its threads (/proc/PID/task/TID/status):
 * voluntary (it blocked: a wait for events) and involuntary (preempted, e.g. by the task its own
 * send woke on this 2-core machine).
 */
function switches(pid: number): { vol: number; invol: number } {
  let vol = 0;
  let invol = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    vol += Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0);
    invol += Number(/^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(status)?.[1] ?? 0);
  }
  return { vol, invol };
}

/** `strace -c -f -p pid` into a file; stop() ends it and returns the per-call counts. */
async function straceCount(pid: number, name: string): Promise<{ stop(): Promise<Map<string, number>> }> {
  const file = join(outDir, `strace.${name}`);
  const child: ChildProcess = spawn('strace', ['-c', '-f', '-o', file, '-p', String(pid)], {
    stdio: 'ignore',
  });
  await new Promise((r) => setTimeout(r, 1500)); // attached to every thread
  return {
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
      const counts = new Map<string, number>();
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const f = line.trim().split(/\s+/);
        // % time, seconds, usecs/call, calls, [errors], syscall
        if (f.length >= 5 && /^\d+$/.test(f[3]!)) counts.set(f.at(-1)!, Number(f[3]));
      }
      return counts;
    },
  };
}

/**
 * The perf stat events counted with --perf (software events and tracepoints, no PMU needed); the
 * system-call tracepoints only with --perf-syscalls (each adds kernel time to every call it counts,
 * which the profile would then show).
 */
const PERF_EVENTS = ['context-switches', 'cpu-migrations', 'page-faults', 'sched:sched_wakeup'];
const PERF_SYSCALLS = [
  'syscalls:sys_enter_epoll_wait',
  'syscalls:sys_enter_epoll_pwait',
  'syscalls:sys_enter_epoll_ctl',
  'syscalls:sys_enter_recvfrom',
  'syscalls:sys_enter_futex',
  'syscalls:sys_enter_madvise',
  'syscalls:sys_enter_mprotect',
  'syscalls:sys_enter_shutdown',
  'syscalls:sys_enter_accept4',
  'syscalls:sys_enter_sendto',
  'syscalls:sys_enter_write',
];

/** Open descriptors of `pid`, and registrations in all its epoll sets (/proc/PID/fdinfo): what leaks shows here. */
function held(pid: number): { fds: number; watches: number } {
  let fds = 0;
  let watches = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    fds++;
    try {
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      watches += info.match(/^tfd:/gm)?.length ?? 0;
    } catch {
      // closed meanwhile
    }
  }
  return { fds, watches };
}

/** perf record -g and perf stat of `pid` (every thread) into perfDir; stop() ends both. */
async function perfOf(pid: number, name: string): Promise<{ stop(): Promise<Map<string, number>> }> {
  const dir = perfDir!;
  const statFile = join(dir, `perf.${name}.stat`);
  const perf = perfAttach(pid, {
    record: [
      '-g',
      '-e',
      opt('--perf-event', 'cpu-clock'),
      ...(argv.includes('--perf-event') ? ['-c', '1'] : ['-F', '4000']),
    ],
    recordTo: join(dir, `perf.${name}.data`),
    statEvents: [...PERF_EVENTS, ...(argv.includes('--perf-syscalls') ? PERF_SYSCALLS : [])],
    statTo: statFile,
  });
  await new Promise((r) => setTimeout(r, 1000)); // attached
  return {
    async stop() {
      await perf.stop();
      return readPerfStat(statFile);
    },
  };
}

async function main(): Promise<void> {
  if (callgrind && !which('valgrind')) throw new Error('valgrind not found (apt-get install valgrind)');
  if (!argv.includes('--entry') && !libev && !floor) currentDist(!argv.includes('--no-build'), log);
  if (floor)
    execFileSync(
      join(REPO_ROOT, 'node_modules', '.bin', 'esbuild'),
      [
        join(REPO_ROOT, 'bench', 'floor-relay.ts'),
        '--bundle',
        '--platform=node',
        '--format=esm',
        `--outfile=${join(outDir, 'floor-relay.mjs')}`,
      ],
      { stdio: 'pipe' },
    );
  const echo = await startEcho();
  const { server, client } = await startPair(`bench-${randomBytes(8).toString('hex')}`);
  try {
    if (argv.includes('--batch'))
      for (const p of [client, server])
        execFileSync('chrt', ['-b', '-a', '-p', '0', String(p.pid)], { stdio: 'pipe' });
    log(`warm-up: ${warm} connections`);
    // Under valgrind on a loaded machine an exchange can pass its 10 s limit; a few such are
    // tolerated (and reported), not a broken stack.
    let failed = 0;
    const exchange = (): Promise<number | undefined> =>
      oneExchange(client.socksPort, echo, host).catch(() => {
        if (++failed > (warm + n) / 20) throw new Error(`${failed} exchanges failed`);
        return undefined;
      });
    for (let i = 0; i < warm; i++) await exchange();
    if (callgrind)
      for (const p of [client, server])
        execFileSync('callgrind_control', ['-z', String(p.pid)], { stdio: 'pipe' });
    const traces = strace
      ? await Promise.all([straceCount(client.pid, 'client'), straceCount(server.pid, 'server')])
      : [];
    const perfs = perfDir
      ? await Promise.all([perfOf(client.pid, 'client'), perfOf(server.pid, 'server')])
      : [];
    const h0 = { c: held(client.pid), s: held(server.pid) };
    const c0 = { c: cpu(client.pid), s: cpu(server.pid) };
    const w0 = { c: switches(client.pid), s: switches(server.pid) };
    const t0 = perThread ? { c: threadCpu(client.pid), s: threadCpu(server.pid) } : undefined;
    const ms: number[] = [];
    const out0 = { c: client.output().length, s: server.output().length };
    log(`measuring: ${n} connections`);
    const failedBefore = failed;
    for (let i = 0; i < n; i++) {
      const t = await exchange();
      if (t !== undefined) ms.push(t);
      if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    }
    if (failed > 0) log(`${failed - failedBefore} of the measured exchanges (${failed} in all) timed out`);
    const c1 = { c: cpu(client.pid), s: cpu(server.pid) };
    const w1 = { c: switches(client.pid), s: switches(server.pid) };
    const t1 = perThread ? { c: threadCpu(client.pid), s: threadCpu(server.pid) } : undefined;
    const gcLines = gc
      ? [
          gcLine('client', client.output().slice(out0.c), n),
          gcLine('server', server.output().slice(out0.s), n),
        ]
      : [];
    const us = (a: number, b: number): string => (((b - a) * 1000) / n).toFixed(0);
    type Cpu = ReturnType<typeof cpu>;
    const per = (a: Cpu, b: Cpu): string =>
      `${us(a.user + a.sys, b.user + b.sys)} (user ${us(a.user, b.user)}, sys ${us(a.sys, b.sys)})`;
    const lines = [
      `${libev ? 'shadowsocks-libev' : floor ? 'no-crypto Node floor' : 'ladder'} ${method}, server --workers ${workers}, ${n} short connections to ${host} after ${warm} warm-up, ${callgrind ? 'under callgrind' : 'native'}`,
      `CPU µs per connection: client ${per(c0.c, c1.c)}, server ${per(c0.s, c1.s)}`,
      `median ms per connection: ${median(ms).toFixed(2)}${gapMs > 0 ? ` (${gapMs} ms idle between connections)` : ''}`,
      ...(t0 && t1
        ? [
            `CPU µs per connection by thread: client ${threadSplit(client.pid, t0.c, t1.c, n)}`,
            `CPU µs per connection by thread: server ${threadSplit(server.pid, t0.s, t1.s, n)}`,
          ]
        : []),
      `context switches per connection (voluntary + involuntary): ${(['c', 's'] as const)
        .map(
          (k) =>
            `${k === 'c' ? 'client' : 'server'} ${((w1[k].vol - w0[k].vol) / n).toFixed(2)} + ${((w1[k].invol - w0[k].invol) / n).toFixed(2)}`,
        )
        .join(', ')}`,
    ];
    await new Promise((r) => setTimeout(r, 300)); // the last connection's closes
    const h1 = { c: held(client.pid), s: held(server.pid) };
    lines.push(
      `descriptors / epoll registrations, after the warm-up -> after the measured connections: ${(
        ['c', 's'] as const
      )
        .map(
          (k) =>
            `${k === 'c' ? 'client' : 'server'} ${h0[k].fds} / ${h0[k].watches} -> ${h1[k].fds} / ${h1[k].watches}`,
        )
        .join(', ')}`,
    );
    lines.push(...gcLines);
    if (callgrind) {
      const [ic, is] = [instructions(client.pid, outDir), instructions(server.pid, outDir)];
      const k = (x: number): string => `${(x / n / 1000).toFixed(0)}k`;
      lines.push(
        `instructions per connection, event-loop thread: client ${k(ic.busiest)}, server ${k(is.busiest)}`,
        `instructions per connection, all threads: client ${k(ic.all)}, server ${k(is.all)}`,
      );
    }
    for (const [i, t] of traces.entries()) {
      const counts = await t.stop();
      const top = [...counts].filter(([k]) => k !== 'total').sort((a, b) => b[1] - a[1]);
      lines.push(
        `${i === 0 ? 'client' : 'server'} system calls per connection: ${((counts.get('total') ?? 0) / n).toFixed(1)} (${top
          .slice(0, 10)
          .map(([k, v]) => `${k} ${(v / n).toFixed(1)}`)
          .join(', ')})`,
      );
    }
    for (const [i, p] of perfs.entries()) {
      const counts = await p.stop();
      lines.push(
        `${i === 0 ? 'client' : 'server'} perf stat per connection: ${[...counts]
          .map(([k, v]) => `${k.replace(/^\w+:(sys_enter_)?/, '')} ${(v / n).toFixed(2)}`)
          .join(', ')}`,
      );
    }
    if (perfDir) lines.push(`perf data in ${perfDir} (perf report -i DIR/perf.client.data --no-children)`);
    console.log(lines.join('\n'));
  } finally {
    await Promise.all([client.stop(5000), server.stop(5000)]);
    await echo.close();
    if (argv.includes('--keep')) log(`callgrind dumps and strace counts kept in ${outDir}`);
    else rmSync(outDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`conn-cost: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
