/**
 * The load phases of bench/compare.ts: many clients at once rather than one. `concurrentShort`
 * runs short connections from 64 concurrent clients (connections per second and CPU per
 * connection); `concurrentFlows` runs 8 bulk transfers at once (the caller's bulk() turns its
 * wall time into aggregate MiB/s and reads CPU per GiB around it).
 * Both take a stack's SOCKS5 port and the pids whose CPU counts; the caller interleaves stacks.
 */
import { readFileSync } from 'node:fs';
import type { TestServer } from '../test/helpers/net.js';
import { oneExchange } from './exchange.js';

export interface LoadTarget {
  socksPort: number;
  /** Client and server pids: their user + sys CPU is what a run costs. */
  pids: number[];
}

/** CPU ms (user + sys, all threads) of `pids` so far, from /proc/PID/stat. */
export function cpuMsOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks * 10;
}

/** This process's own CPU ms so far (the bench driver: it makes and takes every byte). */
export const driverMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Busy and total jiffies of the whole machine so far (/proc/stat's first line). */
export function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - (f[4] ?? 0), total }; // idle and iowait are not busy
}

/** The share of the machine's CPU time that was busy between two machineJiffies() readings. */
export const busyShare = (a: { busy: number; total: number }, b: { busy: number; total: number }): number =>
  (b.busy - a.busy) / Math.max(1, b.total - a.total);

export interface ConnsResult {
  /** Completed connections per second of wall time. */
  perSecond: number;
  /** Client + server CPU µs per connection. */
  cpuUs: number;
  /** The bench driver's own CPU µs per connection (it runs all 64 clients and the echo). */
  driverUs: number;
  /** Share of the whole machine's CPU busy meanwhile (1: every core saturated). */
  busy: number;
  failed: number;
}

/**
 * `total` short connections (bench/exchange.ts) through `t`, from `concurrency` clients each
 * starting its next connection when the last one finished. A failed exchange counts as failed,
 * not as done; more than 1 % failed is an error (the stack is broken, not slow).
 */
export async function concurrentShort(
  t: LoadTarget,
  echo: TestServer,
  total: number,
  concurrency = 64,
): Promise<ConnsResult> {
  let next = 0;
  let failed = 0;
  const c0 = cpuMsOf(t.pids);
  const d0 = driverMs();
  const m0 = machineJiffies();
  const t0 = performance.now();
  const client = async (): Promise<void> => {
    while (next < total) {
      next++;
      await oneExchange(t.socksPort, echo).catch(() => failed++);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, client));
  const ms = performance.now() - t0;
  const done = total - failed;
  if (failed > total / 100) throw new Error(`${failed} of ${total} concurrent short connections failed`);
  return {
    perSecond: done / (ms / 1000),
    cpuUs: ((cpuMsOf(t.pids) - c0) * 1000) / done,
    driverUs: ((driverMs() - d0) * 1000) / done,
    busy: busyShare(m0, machineJiffies()),
    failed,
  };
}

/**
 * `flows` transfers of `bytes / flows` each at once, through `one(bytes)` (an upload or a
 * download): the wall ms from the first start to the last finish (the caller reads CPU around it).
 */
export async function concurrentFlows(
  bytes: number,
  one: (bytes: number) => Promise<unknown>,
  flows = 8,
): Promise<number> {
  const each = Math.floor(bytes / flows);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: flows }, () => one(each)));
  return performance.now() - t0;
}

export interface UnderLoadResult {
  /** ms of each short connection made while the bulk flows ran. */
  samples: number[];
  /** Wall ms of the bulk flows. */
  bulkMs: number;
}

/**
 * Short connections (bench/exchange.ts) one after another through `t` while `bulk()` (8 flows,
 * say) runs through the same stack, until it finishes or `maxShort` were made: how long a page's
 * small request waits behind a download on the same proxy (what a relay thread that seals a
 * large read before serving anything else costs the others). Short connections start 100 ms
 * after the bulk does and stop when it ends, so every sample saw the load.
 */
export async function shortUnderLoad(
  t: LoadTarget,
  echo: TestServer,
  bulk: () => Promise<number>,
  maxShort = 2000,
): Promise<UnderLoadResult> {
  let done = false;
  const t0 = performance.now();
  const flows = bulk().finally(() => (done = true));
  const samples: number[] = [];
  await new Promise((r) => setTimeout(r, 100));
  while (!done && samples.length < maxShort) {
    const ms = await oneExchange(t.socksPort, echo).catch(() => NaN);
    if (!done) samples.push(ms);
  }
  await flows;
  if (samples.some(Number.isNaN)) throw new Error('a short connection failed under load');
  return { samples, bulkMs: performance.now() - t0 };
}
