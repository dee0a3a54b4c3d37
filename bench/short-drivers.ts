/**
 * The drivers of the short-connection phases of bench/web.ts and bench/web-hops.ts: who opens
 * the connections through the SOCKS5 proxy and who answers them at the destination. Sequential
 * connections on loopback put every process's work on the path (docs/benchmarks.md, "what <= 0.5x
 * would take"), the driver's and destination's included, and that share is the same for every
 * stack measured: the cheaper it is, the less it dilutes the ratio between two stacks.
 *
 * - `node`: this process, Node sockets both (test/helpers/socks5.ts's client, test/helpers/net.ts's
 *   echo): SOCKS5 greeting and CONNECT, 64 bytes echoed, close. ~0.3-0.45 ms of CPU per connection.
 * - `c`: the same exchange from bench/short-driver.c (compiled here with `cc`), blocking sockets,
 *   its echo on a thread of its own: a few system calls per connection.
 * - `curl`: `curl --socks5-hostname` (a client people use), one GET per connection (URL glob,
 *   `Connection: close`) to bench/short-driver.c's HTTP answer; curl's own CPU counted from wait4
 *   (its start-up, ~10 ms, spread over the connections; its times from `-w`, start-up excluded).
 */
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { TestServer } from '../test/helpers/net.js';
import { which } from '../test/helpers/peers.js';
import { socks5Connect } from '../test/helpers/socks5.js';

export type Driver = 'node' | 'c' | 'curl';
export const DRIVERS: readonly Driver[] = ['node', 'c', 'curl'];

export interface ShortResult {
  /** ms for the n connections (without gaps between them, and without curl's start-up). */
  total: number;
  /** Each connection's ms. */
  each: number[];
  /** Of which its SOCKS5 phase (curl: `time_pretransfer`, the proxy's handshake included). */
  socks: number[];
  /** CPU ms of the driver and the destination over the n connections. */
  harnessMs: number;
}

/** Parse `--driver a,b` (default `dflt`), refusing unknown names and what this machine lacks. */
export function parseDrivers(spec: string): Driver[] {
  const out = spec.split(',').filter(Boolean);
  for (const d of out) {
    if (!DRIVERS.includes(d as Driver))
      throw new Error(`--driver ${d}: expected one or more of ${DRIVERS.join(', ')}, comma-separated`);
    if (d !== 'node' && !which('cc')) throw new Error(`--driver ${d} needs a C compiler (cc)`);
    if (d === 'curl' && !which('curl')) throw new Error('--driver curl needs curl');
  }
  return out as Driver[];
}

/** bench/NAME.c compiled into `dir`; its path. */
function buildDriver(dir: string, name: string): string {
  const bin = join(dir, name);
  const src = new URL(`./${name}.c`, import.meta.url).pathname;
  execFileSync('cc', ['-O2', '-pthread', '-o', bin, src], { stdio: 'pipe' });
  return bin;
}

/** bench/short-driver.c compiled into `dir`; its path. */
export const buildShortDriver = (dir: string): string => buildDriver(dir, 'short-driver');

/** bench/flows-driver.c (bench/compare.ts --flows-driver c) compiled into `dir`; its path. */
export const buildFlowsDriver = (dir: string): string => buildDriver(dir, 'flows-driver');

/**
 * `n` short connections in a row through SOCKS5 port `socksPort` with `driver` (`bin`: the
 * compiled helper; `echo`: this process's echo for the `node` driver; `gapMs` between them).
 */
export async function shortConnections(
  driver: Driver,
  opts: {
    socksPort: number;
    n: number;
    bin: string;
    echo: TestServer;
    gapMs?: number;
    host?: string;
    /** How long one connection may wait for an answer (default 10 s). */
    timeoutMs?: number;
  },
): Promise<ShortResult> {
  if (driver === 'node') return nodeShort(opts);
  if ((opts.gapMs ?? 0) > 0) throw new Error('--gap works with --driver node only');
  const args =
    driver === 'c'
      ? ['socks', String(opts.socksPort), String(opts.n), ...(opts.host ? [opts.host] : [])]
      : [
          ...['curl', String(opts.n), '--', 'curl', '-s', '-S', '--fail', '-o', '/dev/null'],
          ...[
            '--socks5-hostname',
            `127.0.0.1:${opts.socksPort}`,
            '-w',
            '%{time_total} %{time_pretransfer}\\n',
          ],
          '{url}',
        ];
  // Asynchronous: this process keeps reading the proxies' output meanwhile (a full pipe would stall them).
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      opts.bin,
      args,
      {
        timeout: 0,
        maxBuffer: 64 << 20,
        env: { ...process.env, SHORT_DRIVER_TIMEOUT_S: String(Math.ceil((opts.timeoutMs ?? 10_000) / 1000)) },
      },
      (err, out, errOut) =>
        err ? reject(new Error(`short-driver ${driver}: ${errOut.trim() || err.message}`)) : resolve(out),
    ),
  );
  const lines = stdout.trim().split('\n');
  const cpu = lines.pop()!.split(' ').map(Number); // "cpu selfU selfS childU childS totalNs"
  // c: nanoseconds per line; curl: seconds.
  const unit = driver === 'c' ? 1e-6 : 1000;
  const pairs = lines.map((l) => l.split(' ').map((x) => Number(x) * unit));
  if (pairs.length !== opts.n)
    throw new Error(`short-driver ${driver}: ${pairs.length} of ${opts.n} connections`);
  const each = pairs.map((p) => p[0]!);
  return {
    total: driver === 'c' ? cpu[5]! / 1e6 : each.reduce((a, b) => a + b, 0),
    each,
    socks: pairs.map((p) => p[1]!),
    harnessMs: (cpu[1]! + cpu[2]! + cpu[3]! + cpu[4]!) / 1000,
  };
}

async function nodeShort(opts: {
  socksPort: number;
  n: number;
  echo: TestServer;
  gapMs?: number;
  host?: string;
  timeoutMs?: number;
}): Promise<ShortResult> {
  const body = Buffer.alloc(64, 7);
  const cpu0 = process.cpuUsage();
  const each: number[] = [];
  const socks: number[] = [];
  let gaps = 0;
  const t0 = performance.now();
  for (let i = 0; i < opts.n; i++) {
    if ((opts.gapMs ?? 0) > 0) {
      const g0 = performance.now();
      await new Promise((r) => setTimeout(r, opts.gapMs));
      gaps += performance.now() - g0;
    }
    const c0 = performance.now();
    const s = await socks5Connect({
      proxyPort: opts.socksPort,
      host: opts.host ?? '127.0.0.1',
      port: opts.echo.port,
      timeoutMs: opts.timeoutMs ?? 10_000,
    });
    socks.push(performance.now() - c0);
    await new Promise<void>((resolve, reject) => {
      let got = 0;
      const timer = setTimeout(
        () => reject(new Error('short connection timed out')),
        opts.timeoutMs ?? 10_000,
      );
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= body.length) {
          clearTimeout(timer);
          resolve();
        }
      });
      s.on('error', reject);
      s.resume(); // socks5Connect hands the socket over paused
      s.write(body);
    });
    s.destroy();
    each.push(performance.now() - c0);
  }
  const cpu = process.cpuUsage(cpu0);
  return { total: performance.now() - t0 - gaps, each, socks, harnessMs: (cpu.user + cpu.system) / 1000 };
}
