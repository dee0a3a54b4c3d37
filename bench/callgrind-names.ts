/**
 * Names for the JIT code in a callgrind profile: callgrind_annotate shows V8's generated code as
 * `???:0x…` addresses; a process run with `--perf-basic-prof` (allowed in NODE_OPTIONS) writes
 * /tmp/perf-PID.map (start, size, name per code object), and this filter rewrites each such
 * address to its map name (`JS:^fn file:line:col @addr`), so that per-function inclusive costs
 * of Ladder's JS can be read.
 *
 *   node --import tsx bench/conn-cost.ts --no-build --callgrind --keep \
 *     --server-env NODE_OPTIONS=--perf-basic-prof
 *   callgrind_annotate --inclusive=yes --threshold=100 DIR/cg.PID.1-12 \
 *     | node --import tsx bench/callgrind-names.ts /tmp/perf-PID.map
 *
 * (cg.PID.1-NN: one file per thread; the server's data-plane worker is its busiest.) Code objects
 * V8 moved or freed after a map line was written can be named wrongly; the last line covering an
 * address wins, as perf does.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const mapFile = process.argv[2];
if (!mapFile) {
  process.stderr.write('usage: callgrind_annotate … | callgrind-names.ts /tmp/perf-PID.map\n');
  process.exit(2);
}
const entries: [start: number, end: number, name: string][] = [];
for (const line of readFileSync(mapFile, 'utf8').split('\n')) {
  const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
  if (m) entries.push([parseInt(m[1]!, 16), parseInt(m[1]!, 16) + parseInt(m[2]!, 16), m[3]!]);
}
// Later lines win: index by start, keeping the last code object written at each address.
const byStart = new Map<number, [number, number, string]>();
for (const e of entries) byStart.set(e[0], e);
const sorted = [...byStart.values()].sort((a, b) => a[0] - b[0]);

function nameOf(addr: number): string | undefined {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]![0] <= addr) lo = mid + 1;
    else hi = mid - 1;
  }
  for (let i = hi; i >= 0 && i > hi - 50; i--) if (addr < sorted[i]![1]) return sorted[i]![2];
  return undefined;
}

process.stdout.on('error', () => process.exit(0)); // a closed pipe (… | head): done
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const m = /\?\?\?:0x([0-9a-f]+) \[\?\?\?\]/.exec(line);
  const name = m ? nameOf(parseInt(m[1]!, 16)) : undefined;
  process.stdout.write(
    m && name
      ? `${line.slice(0, m.index)}${name} @${m[1]!.slice(-6)}${line.slice(m.index + m[0].length)}\n`
      : `${line}\n`,
  );
});
