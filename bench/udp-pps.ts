/**
 * UDP packets per second through the relay, Ladder versus shadowsocks-libev, same topology:
 *
 *   this process ──SOCKS5 UDP──▶ client ──▶ server ──▶ UDP echo (this process) and back
 *
 * Stacks: libev (ss-local -u + ss-server -u), ss-local -u in front of the Ladder server (the
 * server relay alone against libev's), Ladder client + server for SIP004 and for 2022. Each run
 * sends --n datagrams (default 20,000) of 64 and 1,400 bytes with --window (default 32) in
 * flight, checks every echo byte for byte, and reports delivered packets per second (round trips
 * through both relays) and CPU time of client and server per 10,000 round trips. Bounded by
 * --cap-min (default 6).
 *
 *   node --import tsx bench/udp-pps.ts [--n 20000] [--window 32] [--runs 3] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { cpuMs, which } from '../test/helpers/peers.js';
import { socks5UdpAssociate, startUdpEcho, udpEchoRun } from '../src/transport/udp-socks5.js';
import { startStack, stopStack, type Stack, type StackKind } from './sip022-stacks.js';
import { median } from './stats.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const N = Number(arg('--n', '20000'));
const WINDOW = Number(arg('--window', '32'));
const RUNS = Number(arg('--runs', '3'));
const JSON_OUT = arg('--json', '');
const DEADLINE = Date.now() + Number(arg('--cap-min', '6')) * 60_000;
const log = (m: string): void =>
  void process.stderr.write(`[udp-pps ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

const PLAN: Array<{ kind: StackKind; method: string }> = [];
const libev = Boolean(which('ss-server') && which('ss-local'));
if (libev) {
  PLAN.push({ kind: 'libev', method: 'aes-256-gcm' });
  PLAN.push({ kind: 'libev-local+ladder-server', method: 'aes-256-gcm' });
} else log('!!! shadowsocks-libev missing: no libev rows');
PLAN.push({ kind: 'ladder', method: 'aes-256-gcm' });
PLAN.push({ kind: 'ladder', method: '2022-blake3-aes-256-gcm' });

interface Row {
  label: string;
  size: number;
  pps: number[];
  lossPct: number[];
  corrupted: number;
  clientMsPer10k: number[];
  serverMsPer10k: number[];
}

const echo = await startUdpEcho();
const stacks: Stack[] = [];
const rows = new Map<string, Row>();
try {
  for (const p of PLAN) stacks.push(await startStack(p.kind, p.method, true));
  const target = { type: 'ipv4' as const, host: '127.0.0.1', port: echo.port };
  // Warm-up.
  for (const s of stacks) {
    const a = await socks5UdpAssociate(s.client.socksPort);
    await udpEchoRun(a, target, 2000, 200, { window: WINDOW });
    a.close();
  }
  outer: for (let r = 0; r < RUNS; r++) {
    const order = r % 2 === 0 ? stacks : [...stacks].reverse();
    for (const size of [64, 1400]) {
      for (const s of order) {
        if (Date.now() > DEADLINE) {
          log('cap reached; stopping with the runs so far');
          break outer;
        }
        const a = await socks5UdpAssociate(s.client.socksPort);
        const cc0 = await cpuMs(s.client.pid);
        const sc0 = await cpuMs(s.server.pid);
        const res = await udpEchoRun(a, target, N, size, {
          window: WINDOW,
          lossTimeoutMs: 500,
          deadlineMs: 60_000,
        });
        const cc1 = await cpuMs(s.client.pid);
        const sc1 = await cpuMs(s.server.pid);
        a.close();
        const key = `${s.label}|${size}`;
        const row = rows.get(key) ?? {
          label: s.label,
          size,
          pps: [],
          lossPct: [],
          corrupted: 0,
          clientMsPer10k: [],
          serverMsPer10k: [],
        };
        const pps = res.received / (res.elapsedMs / 1000);
        row.pps.push(pps);
        row.lossPct.push((100 * (res.sent - res.received)) / Math.max(1, res.sent));
        row.corrupted += res.corrupted;
        row.clientMsPer10k.push(((cc1 - cc0) * 10_000) / Math.max(1, res.received));
        row.serverMsPer10k.push(((sc1 - sc0) * 10_000) / Math.max(1, res.received));
        rows.set(key, row);
        log(
          `${s.label} ${size} B: ${pps.toFixed(0)} round trips/s, ${res.sent - res.received} lost, ${res.corrupted} corrupted`,
        );
      }
    }
  }
} finally {
  for (const s of stacks) await stopStack(s);
  await echo.close();
}

console.log(
  `\nUDP round trips per second through client and server relays, ${N} datagrams per run, window ${WINDOW}, median of ${RUNS} (load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')})`,
);
console.log(
  '| stack | size | round trips/s | loss % | corrupted | client CPU ms / 10k | server CPU ms / 10k |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of rows.values())
  console.log(
    `| ${r.label} | ${r.size} | ${median(r.pps).toFixed(0)} | ${median(r.lossPct).toFixed(2)} | ${r.corrupted} | ${median(r.clientMsPer10k).toFixed(0)} | ${median(r.serverMsPer10k).toFixed(0)} |`,
  );
if (libev) {
  console.log('');
  for (const size of [64, 1400]) {
    const lib = rows.get(`libev aes-256-gcm|${size}`);
    const mixed = rows.get(`ss-local -> ladder server aes-256-gcm|${size}`);
    const ours = rows.get(`ladder aes-256-gcm|${size}`);
    if (lib && mixed)
      console.log(
        `${size} B, server relay alone (same ss-local in front): ladder/libev pps ${(median(mixed.pps) / median(lib.pps)).toFixed(2)}x, server CPU per packet ${(median(mixed.serverMsPer10k) / median(lib.serverMsPer10k)).toFixed(2)}x`,
      );
    if (lib && ours)
      console.log(
        `${size} B, full stack: ladder/libev pps ${(median(ours.pps) / median(lib.pps)).toFixed(2)}x`,
      );
  }
}
if (JSON_OUT)
  writeFileSync(
    JSON_OUT,
    JSON.stringify({ n: N, window: WINDOW, runs: RUNS, rows: [...rows.values()] }, null, 2),
  );
