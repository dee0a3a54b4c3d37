/**
 * Where a process's kernel time went, per connection, from a `perf record -g` file that
 * `bench/conn-cost.ts --perf DIR` wrote (DIR/perf.client.data, DIR/perf.server.data): each
 * sample's weight (its period) is charged to the system call its kernel stack is in ("preempted":
 * `schedule` at a call's exit, outside any call's own work; "user": no kernel frame at the leaf),
 * and, separately, to its leaf kernel symbol and to what it is doing (kind(): the end of a context
 * switch, a wake-up, a system call's entry, a page fault, softirq, other work).
 *
 *   node --import tsx bench/perf-kernel.ts DIR/perf.server.data --n 4000 [--top 14]
 *
 * --n: the measured connections of that run (conn-cost's --n). Needs `perf` (perf script).
 */
import { execFileSync } from 'node:child_process';
import { opt, posInt } from './args.js';

const file = process.argv[2];
if (!file || file.startsWith('--')) {
  console.error('usage: perf-kernel.ts PERF_DATA --n CONNECTIONS [--top N]');
  process.exit(2);
}
const n = Number(opt('--n', '0'));
if (!Number.isInteger(n) || n < 1) {
  console.error('perf-kernel: --n (the measured connections of the run) is required');
  process.exit(2);
}
const top = posInt('--top', 14);

interface Frame {
  sym: string;
  kernel: boolean;
}

/** perf script's samples: [period, frames leaf first]. */
function samples(): Array<[number, Frame[]]> {
  const text = execFileSync('perf', ['script', '-i', file!, '-F', 'period,ip,sym,dso'], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const out: Array<[number, Frame[]]> = [];
  for (const block of text.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.trim() !== '');
    const period = Number(lines[0]?.trim().split(/\s+/)[0]);
    if (!Number.isFinite(period) || lines.length < 2) continue;
    const frames = lines.slice(1).flatMap((l) => {
      const m = /^\s*[0-9a-f]+ (.*) \((.*)\)$/.exec(l);
      return m ? [{ sym: m[1]!, kernel: m[2]!.includes('kernel') }] : [];
    });
    out.push([period, frames]);
  }
  return out;
}

const EXITS = new Set(['exit_to_user_mode_loop', 'irqentry_exit_to_user_mode']);
/** The system call a kernel stack is in, or what else it is. */
function bucket(frames: Frame[]): string {
  if (!frames[0]?.kernel) return 'user';
  for (const f of frames) {
    const m = /^(?:__x64_sys_|__do_sys_|__se_sys_)(\w+)/.exec(f.sym);
    if (m) return m[1]!;
    if (EXITS.has(f.sym)) return frames.some((g) => g.sym === 'schedule') ? 'preempted' : f.sym;
  }
  return frames.some((f) => f.sym === 'schedule') ? 'preempted' : 'other kernel';
}

/**
 * What a kernel sample is doing, whatever the call. In a PVM guest (this machine) a sample taken
 * while interrupts are off lands where they are enabled again (pvm_irq_enable): the end of a
 * context switch ("switch in": finish_task_switch), a wake-up's run-queue lock ("wake-up":
 * try_to_wake_up, _raw_spin_unlock_irqrestore), the system call's own entry ("syscall entry":
 * do_syscall_64 enabling interrupts: the hypervisor's round trip); then page faults, softirq
 * (the loopback packets' receive side) and the rest ("work").
 */
function kind(frames: Frame[]): string {
  const k = frames.filter((f) => f.kernel).map((f) => f.sym.split('+')[0]!);
  if (k.includes('exc_page_fault')) return 'page fault';
  if (k.includes('finish_task_switch.isra.0') || k.includes('finish_task_switch')) return 'switch in';
  if (k[0] === 'pvm_irq_enable' && k[2] === 'do_syscall_64') return 'syscall entry';
  if (
    k.includes('try_to_wake_up') ||
    (k[0] === 'pvm_irq_enable' && k[2]?.startsWith('_raw_spin_unlock_irqrestore'))
  )
    return 'wake-up';
  if (k.includes('handle_softirqs') || k.includes('net_rx_action')) return 'softirq';
  return 'work';
}

const byKind = new Map<string, number>();
const byCall = new Map<string, number>();
const byLeaf = new Map<string, number>();
let kernel = 0;
let all = 0;
for (const [period, frames] of samples()) {
  all += period;
  const b = bucket(frames);
  byCall.set(b, (byCall.get(b) ?? 0) + period);
  if (b === 'user') continue;
  kernel += period;
  const why = kind(frames);
  byKind.set(why, (byKind.get(why) ?? 0) + period);
  byLeaf.set(frames[0]!.sym, (byLeaf.get(frames[0]!.sym) ?? 0) + period);
}
const us = (ns: number): string => (ns / 1000 / n).toFixed(1).padStart(7);
const rows = (m: Map<string, number>): string[] =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => `  ${us(v)}  ${k}`);
console.log(`${file}: ${us(all)} µs per connection sampled, kernel ${us(kernel).trim()}`);
console.log('by system call (µs per connection):');
console.log(rows(byCall).join('\n'));
console.log('by leaf kernel symbol (µs per connection):');
console.log(rows(byLeaf).join('\n'));
console.log('kernel time by kind (µs per connection):');
console.log(rows(byKind).join('\n'));
