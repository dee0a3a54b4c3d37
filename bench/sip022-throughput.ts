/**
 * Bulk throughput of the Shadowsocks 2022 edition next to the 2017 edition (SIP004) in our own
 * implementation, with shadowsocks-libev (SIP004) as the reference, same loopback topology:
 *
 *   this process ──SOCKS5──▶ client ──▶ server ──▶ sink / source (this process)
 *
 * Upload and download of --size (default 128 MiB) per run, --runs (default 3) runs per stack in
 * alternating order, median MiB/s and CPU time (user+sys of client and server process) per GiB.
 * Bounded: --cap-min (default 8) for the whole run.
 *
 *   node --import tsx bench/sip022-throughput.ts [--size 128] [--runs 3] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { startSink, startSource } from '../test/helpers/net.js';
import { cpuMs, which } from '../test/helpers/peers.js';
import { downloadCountVia, uploadCountVia } from '../test/helpers/transfer.js';
import { startStack, stopStack, type Stack, type StackKind } from './sip022-stacks.js';
import { median } from './stats.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const MiB = 1024 * 1024;
const SIZE = Number(arg('--size', '128')) * MiB;
const RUNS = Number(arg('--runs', '3'));
const JSON_OUT = arg('--json', '');
const DEADLINE = Date.now() + Number(arg('--cap-min', '8')) * 60_000;
const log = (m: string): void =>
  void process.stderr.write(`[sip022-throughput ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

const PLAN: Array<{ kind: StackKind; method: string }> = [
  { kind: 'ladder', method: 'aes-256-gcm' },
  { kind: 'ladder', method: '2022-blake3-aes-256-gcm' },
  { kind: 'ladder', method: 'chacha20-ietf-poly1305' },
  { kind: 'ladder', method: '2022-blake3-chacha20-poly1305' },
];
if (which('ss-server') && which('ss-local')) PLAN.push({ kind: 'libev', method: 'aes-256-gcm' });
else log('!!! shadowsocks-libev missing: no libev reference row');

interface Row {
  label: string;
  direction: 'upload' | 'download';
  mibps: number[];
  cpuMsPerGiB: number[];
  clientMsPerGiB: number[];
  serverMsPerGiB: number[];
}

const sink = await startSink({ hash: false });
const source = await startSource({ hash: false });
const stacks: Stack[] = [];
const rows = new Map<string, Row>();
try {
  for (const p of PLAN) stacks.push(await startStack(p.kind, p.method, false));
  for (const s of stacks) {
    await uploadCountVia({ proxyPort: s.client.socksPort }, { host: '127.0.0.1', port: sink.port }, 16 * MiB);
    await downloadCountVia(
      { proxyPort: s.client.socksPort },
      { host: '127.0.0.1', port: source.port },
      16 * MiB,
    );
  }
  outer: for (let r = 0; r < RUNS; r++) {
    const order = r % 2 === 0 ? stacks : [...stacks].reverse();
    for (const direction of ['upload', 'download'] as const) {
      for (const s of order) {
        if (Date.now() > DEADLINE) {
          log('cap reached; stopping with the runs so far');
          break outer;
        }
        const cc0 = await cpuMs(s.client.pid);
        const sc0 = await cpuMs(s.server.pid);
        const c0 = cc0 + sc0;
        const ms =
          direction === 'upload'
            ? await uploadCountVia(
                { proxyPort: s.client.socksPort },
                { host: '127.0.0.1', port: sink.port },
                SIZE,
              )
            : await downloadCountVia(
                { proxyPort: s.client.socksPort },
                { host: '127.0.0.1', port: source.port },
                SIZE,
              );
        const cc1 = await cpuMs(s.client.pid);
        const sc1 = await cpuMs(s.server.pid);
        const c1 = cc1 + sc1;
        const key = `${s.label}|${direction}`;
        const row = rows.get(key) ?? {
          label: s.label,
          direction,
          mibps: [],
          cpuMsPerGiB: [],
          clientMsPerGiB: [],
          serverMsPerGiB: [],
        };
        row.clientMsPerGiB.push(((cc1 - cc0) * (1024 * MiB)) / SIZE);
        row.serverMsPerGiB.push(((sc1 - sc0) * (1024 * MiB)) / SIZE);
        row.mibps.push(SIZE / MiB / (ms / 1000));
        row.cpuMsPerGiB.push(((c1 - c0) * (1024 * MiB)) / SIZE);
        rows.set(key, row);
        log(
          `${s.label} ${direction}: ${(SIZE / MiB / (ms / 1000)).toFixed(0)} MiB/s, CPU ${(c1 - c0).toFixed(0)} ms`,
        );
      }
    }
  }
} finally {
  for (const s of stacks) await stopStack(s);
  await sink.close();
  await source.close();
}

console.log(
  `\nBulk throughput, ${SIZE / MiB} MiB per run, median of ${RUNS} (load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')})`,
);
console.log('| stack | direction | MiB/s | CPU ms per GiB (client+server) | client | server |');
console.log('|---|---|---:|---:|---:|---:|');
for (const r of rows.values())
  console.log(
    `| ${r.label} | ${r.direction} | ${median(r.mibps).toFixed(0)} | ${median(r.cpuMsPerGiB).toFixed(0)} | ${median(r.clientMsPerGiB).toFixed(0)} | ${median(r.serverMsPerGiB).toFixed(0)} |`,
  );
const ratio = (a: string, b: string, d: string, f: (r: Row) => number): string => {
  const x = rows.get(`${a}|${d}`);
  const y = rows.get(`${b}|${d}`);
  return x && y ? (f(x) / f(y)).toFixed(2) : 'n/a';
};
console.log('');
for (const [m22, m17] of [
  ['2022-blake3-aes-256-gcm', 'aes-256-gcm'],
  ['2022-blake3-chacha20-poly1305', 'chacha20-ietf-poly1305'],
]) {
  for (const d of ['upload', 'download']) {
    console.log(
      `ladder ${m22} / ladder ${m17}, ${d}: throughput ${ratio(`ladder ${m22}`, `ladder ${m17}`, d, (r) => median(r.mibps))}x, CPU/GiB ${ratio(`ladder ${m22}`, `ladder ${m17}`, d, (r) => median(r.cpuMsPerGiB))}x`,
    );
  }
}
if (JSON_OUT)
  writeFileSync(
    JSON_OUT,
    JSON.stringify({ sizeMiB: SIZE / MiB, runs: RUNS, rows: [...rows.values()] }, null, 2),
  );
