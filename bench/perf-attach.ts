/**
 * `perf record` and `perf stat` attached to a running process (every thread), as the benches'
 * --perf options run them (bench/conn-cost.ts, bench/web-hops.ts): the record writes its data
 * file, the stat its `-x ,` counts file; SIGINT ends both, which then write what they have.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface PerfAttachOptions {
  /** `perf record`'s own options (events, -g, sampling), before `-o` and `-p`. */
  record: readonly string[];
  /** The data file `perf record` writes. */
  recordTo: string;
  /** The events `perf stat` counts. */
  statEvents: readonly string[];
  /** The file `perf stat -x ,` writes (readPerfStat reads it). */
  statTo: string;
}

export interface PerfAttach {
  /** The two perf processes (record, stat). */
  children: ChildProcess[];
  /** Interrupt both and wait until they have exited (their files are then complete). */
  stop(): Promise<void>;
}

export function perfAttach(pid: number, o: PerfAttachOptions): PerfAttach {
  const p = String(pid);
  const children = [
    spawn('perf', ['record', '-q', ...o.record, '-o', o.recordTo, '-p', p], { stdio: 'ignore' }),
    spawn('perf', ['stat', '-x', ',', '-o', o.statTo, '-e', o.statEvents.join(','), '-p', p], {
      stdio: 'ignore',
    }),
  ];
  return {
    children,
    async stop() {
      await Promise.all(
        children.map((c) => {
          if (c.exitCode !== null || c.signalCode !== null) return undefined;
          const exited = new Promise((r) => c.once('exit', r));
          c.kill('SIGINT');
          return exited;
        }),
      );
    },
  };
}

/** The counts in a `perf stat -x ,` file, by event name. */
export function readPerfStat(file: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(',');
    if (f.length >= 3 && /^\d+(\.\d+)?$/.test(f[0]!)) counts.set(f[2]!, Number(f[0])); // task-clock: ms
  }
  return counts;
}
