/**
 * Summarise V8 .cpuprofile files (from `node --cpu-prof`, e.g. `npm run bench -- --profile`):
 * top functions by self time and by inclusive time, with the share of the sampled total.
 *   node --import tsx bench/profile-summary.ts FILE.cpuprofile [--top 25]
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface FunctionCost {
  name: string;
  selfMs: number;
  totalMs: number;
}

function label(cf: CallFrame): string {
  const fn = cf.functionName || '(anonymous)';
  if (!cf.url) return fn;
  const file = cf.url.replace(/^file:\/\//, '').replace(/.*\/(node_modules|src|test|bench)\//, '$1/');
  return `${fn} ${file.startsWith('node:') ? file : basename(file) === file ? file : file}:${cf.lineNumber + 1}`;
}

export function summariseProfile(p: CpuProfile): {
  wallMs: number;
  sampledMs: number;
  functions: FunctionCost[];
} {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    const dt = p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
  }
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let sampled = 0;
  for (const [id, us] of selfUs) {
    sampled += us;
    const node = byId.get(id)!;
    const l = label(node.callFrame);
    self.set(l, (self.get(l) ?? 0) + us);
    // Inclusive: credit every distinct function on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cl = label(byId.get(cur)!.callFrame);
      if (seen.has(cl)) continue;
      seen.add(cl);
      total.set(cl, (total.get(cl) ?? 0) + us);
    }
  }
  const functions = [...self.keys()].map((name) => ({
    name,
    selfMs: (self.get(name) ?? 0) / 1000,
    totalMs: (total.get(name) ?? 0) / 1000,
  }));
  for (const [name, us] of total)
    if (!self.has(name)) functions.push({ name, selfMs: 0, totalMs: us / 1000 });
  return { wallMs: (p.endTime - p.startTime) / 1000, sampledMs: sampled / 1000, functions };
}

function main(): void {
  const args = process.argv.slice(2);
  const topIdx = args.indexOf('--top');
  const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 25;
  const files = args.filter((a, i) => a !== '--top' && (topIdx < 0 || i !== topIdx + 1));
  if (files.length === 0) {
    console.error('usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [...] [--top 25]');
    process.exitCode = 2;
    return;
  }
  for (const f of files) {
    const s = summariseProfile(JSON.parse(readFileSync(f, 'utf8')) as CpuProfile);
    const active = s.functions
      .filter((x) => x.name !== '(idle)' && x.name !== '(program)')
      .reduce((a, x) => a + x.selfMs, 0);
    console.log(
      `\n== ${basename(f)}: wall ${(s.wallMs / 1000).toFixed(1)} s, sampled ${(s.sampledMs / 1000).toFixed(1)} s, non-idle ${(active / 1000).toFixed(1)} s`,
    );
    console.log('-- by self time');
    for (const x of [...s.functions].sort((a, b) => b.selfMs - a.selfMs).slice(0, top)) {
      console.log(
        `${x.selfMs.toFixed(0).padStart(8)} ms ${((100 * x.selfMs) / s.sampledMs).toFixed(1).padStart(5)}%  ${x.name}`,
      );
    }
    console.log('-- by inclusive time');
    for (const x of [...s.functions].sort((a, b) => b.totalMs - a.totalMs).slice(0, top)) {
      console.log(
        `${x.totalMs.toFixed(0).padStart(8)} ms ${((100 * x.totalMs) / s.sampledMs).toFixed(1).padStart(5)}%  ${x.name}`,
      );
    }
  }
}

if (process.argv[1] && import.meta.url.endsWith(basename(process.argv[1]))) main();
