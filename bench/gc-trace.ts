/**
 * JS allocations per connection from V8's own GC trace (`--trace-gc-nvp`): each GC line names its
 * isolate (`[pid:0xISOLATE]`: the main thread and each worker thread have their own) and carries
 * `allocated=` (bytes allocated since that isolate's previous GC) and `gc=` (s: scavenge, ms:
 * mark-sweep...). Summing `allocated=` over the GCs of a measured window counts what was allocated
 * in it to within one GC's worth at each end (the window's start and end fall between GCs).
 * bench/conn-cost.ts --gc uses it on both processes.
 */

/** Node's flag (a command-line flag: NODE_OPTIONS refuses it). */
export const GC_TRACE = '--trace-gc-nvp';

export interface IsolateGc {
  isolate: string;
  scavenges: number;
  /** Full (mark-sweep / mark-compact) collections. */
  full: number;
  allocated: number;
}

/** Per isolate, the GCs in `trace` (a process's output over the window), most allocating first. */
export function gcByIsolate(trace: string): IsolateGc[] {
  const by = new Map<string, IsolateGc>();
  for (const m of trace.matchAll(/^\[\d+:(0x[0-9a-f]+)\][^\n]*? gc=(\w+)[^\n]*? allocated=(\d+)/gm)) {
    const isolate = m[1]!;
    let g = by.get(isolate);
    if (!g) by.set(isolate, (g = { isolate, scavenges: 0, full: 0, allocated: 0 }));
    if (m[2] === 's') g.scavenges++;
    else g.full++;
    g.allocated += Number(m[3]);
  }
  return [...by.values()].sort((a, b) => b.allocated - a.allocated);
}

/** One line: the busiest isolate's bytes and GCs per connection, and the others' sum. */
export function gcLine(name: string, trace: string, n: number): string {
  const [top, ...rest] = gcByIsolate(trace);
  if (!top) return `${name}: no GC in the window (allocations below one young generation)`;
  const restKb = rest.reduce((s, g) => s + g.allocated, 0) / n / 1024;
  return (
    `${name} JS allocations per connection: busiest isolate ${(top.allocated / n / 1024).toFixed(2)} KiB ` +
    `(${top.scavenges} scavenges, ${top.full} full GCs in ${n} connections), other isolates ${restKb.toFixed(2)} KiB`
  );
}
