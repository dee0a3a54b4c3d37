/**
 * The 2022 edition's stream codec against the 2017 edition's (SIP004), without sockets: CPU time
 * to encode 64 KiB writes and decode them from 64 KiB reads the way the relay does (pushInPlace:
 * payloads opened inside the read buffer), per GiB, alternating editions run by run, median of
 * --runs. The end-to-end comparison (bench/sip022-throughput.ts) adds the same socket work to
 * both; this isolates what the edition itself costs.
 *
 *   node --import tsx bench/sip022-codec.ts [--mib 128] [--runs 7]
 */
import { AeadDecoder, AeadEncoder } from '../src/protocol/shadowsocks/aead.js';
import { Aead2022RequestDecoder, Aead2022RequestEncoder } from '../src/protocol/shadowsocks/aead2022.js';
import { getAeadMethod } from '../src/protocol/shadowsocks/methods.js';
import { getAead2022Method } from '../src/protocol/shadowsocks/methods2022.js';
import { nativeAvailable } from '../src/protocol/shadowsocks/native.js';
import { median } from './stats.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
const WRITES = Math.max(16, Math.round((Number(arg('--mib', '128')) * 1024 * 1024) / 65536));
const RUNS = Number(arg('--runs', '7'));
const block = Buffer.alloc(65536, 7);
const gib = (WRITES * 65536) / 2 ** 30;

/** Fresh 64 KiB reads of the wire, as a socket hands them out. */
function reads(wire: Buffer[]): Buffer[] {
  const all = Buffer.concat(wire);
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += 65536) out.push(Buffer.from(all.subarray(i, i + 65536)));
  return out;
}

function cpuMsPerGiB(f: () => void): number {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / gib;
}

function run2017(name: string): number {
  const m = getAeadMethod(name);
  const key = Buffer.alloc(m.keySize, 1);
  const enc = new AeadEncoder(m, key);
  const dec = new AeadDecoder(m, key);
  return cpuMsPerGiB(() => {
    const wire: Buffer[] = [];
    for (let i = 0; i < WRITES; i++) wire.push(enc.encode(block));
    for (const r of reads(wire)) dec.pushInPlace(r);
  });
}

function run2022(name: string): number {
  const m = getAead2022Method(name);
  const key = Buffer.alloc(m.keySize, 1);
  const enc = new Aead2022RequestEncoder(m, key);
  const dec = new Aead2022RequestDecoder(m, { key });
  return cpuMsPerGiB(() => {
    const wire = [enc.encodeHeader({ type: 'ipv4', host: '192.0.2.1', port: 443 }, block, Date.now())];
    for (let i = 1; i < WRITES; i++) wire.push(enc.encode(block));
    for (const r of reads(wire)) dec.pushInPlace(r, Date.now());
  });
}

console.log(
  `stream codecs, encode 64 KiB writes + decode 64 KiB reads in place, ${(gib * 1024).toFixed(0)} MiB per run, median of ${RUNS} (native addon: ${nativeAvailable() ? 'yes' : 'no'})`,
);
console.log('| pair | 2017 CPU ms/GiB | 2022 CPU ms/GiB | 2022 / 2017 |');
console.log('|---|---:|---:|---:|');
for (const [m17, m22] of [
  ['aes-256-gcm', '2022-blake3-aes-256-gcm'],
  ['aes-128-gcm', '2022-blake3-aes-128-gcm'],
  ['chacha20-ietf-poly1305', '2022-blake3-chacha20-poly1305'],
] as const) {
  run2017(m17); // warm-up
  run2022(m22);
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    if (i % 2 === 0) {
      a.push(run2017(m17));
      b.push(run2022(m22));
    } else {
      b.push(run2022(m22));
      a.push(run2017(m17));
    }
  }
  console.log(
    `| ${m17} / ${m22} | ${median(a).toFixed(0)} | ${median(b).toFixed(0)} | ${(median(b) / median(a)).toFixed(2)} |`,
  );
}
