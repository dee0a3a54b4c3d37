/**
 * Bench (not a test): N URLs (default 1,000) spread over the probe lab's sites (eleven since the C12 block-page site), measured at
 * --concurrency C (default 50) with the control through the lab's Ladder server. Prints wall time,
 * peak RSS and the confusion matrix. Run: node --import tsx test/probe/bench-lab.ts [N] [C] [timeout ms]
 */
import { probeList } from '../../src/probe/run.js';
import { verdictName } from '../../src/probe/summary.js';
import { startProbeLab } from './lab-sites.js';

const n = Number(process.argv[2] ?? 1000);
const concurrency = Number(process.argv[3] ?? 50);
const timeoutMs = Number(process.argv[4] ?? 5000);
const lab = await startProbeLab({ censor: true });
try {
  const list = Array.from({ length: n }, (_, i) => {
    const s = lab.sites[i % lab.sites.length]!;
    return {
      url: `${s.url}${s.url.includes('?') ? '&' : '?'}n=${i}`,
      expect: String(s.expect || 'accessible'),
    };
  });
  const t0 = performance.now();
  const rs = await probeList(list, {
    dns: lab.resolver,
    control: { dialer: lab.dialer, resolver: lab.controlResolver },
    tls: { ca: lab.ca },
    timeoutMs,
    allowAddress: (ip) => ip.startsWith('127.'),
    concurrency,
  });
  const wall = (performance.now() - t0) / 1000;
  const matrix = new Map<string, number>();
  for (const [i, r] of rs.entries()) {
    const k = `${list[i]!.expect} -> ${verdictName(r.keys.blocking)}`;
    matrix.set(k, (matrix.get(k) ?? 0) + 1);
  }
  console.log(
    `${n} URLs, concurrency ${concurrency}, step timeout ${timeoutMs} ms: wall ${wall.toFixed(1)} s, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
  );
  for (const [k, v] of [...matrix].sort()) console.log(`  ${k}: ${v}`);
  const why = new Map<string, number>();
  for (const r of rs)
    if (r.keys.blocking === null || r.keys.blocking === 'tcp_ip') {
      const k = `${verdictName(r.keys.blocking)}: control ${r.keys.control_failure}; tcp ${r.keys.tcp_connect.map((t) => t.status.failure).join(',')}; null-routed ${r.keys.x_null_routed}`;
      why.set(k, (why.get(k) ?? 0) + 1);
    }
  for (const [k, v] of why) console.log(`  ${v} × ${k}`);
} finally {
  await lab.stop();
}
