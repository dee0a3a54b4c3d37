/**
 * Micro-benchmark of the SIP004 per-chunk AEAD cost in one thread, to see where a bulk
 * transfer's CPU goes before optimising:
 *   node --import tsx bench/micro-aead.ts [--mib 64]
 * Measures, per method: the codec as shipped (AeadEncoder.encode / AeadDecoder.push on 64 KiB
 * reads; decode reads cut at 64 KiB regardless of chunk boundaries), on the node:crypto path and
 * on the native addon (native/*.cc, when built: node scripts/build-native.mjs), the
 * bare cost of one cipher init (createCipheriv + final + getAuthTag on 0 bytes),
 * raw bulk update() speed of one long-lived cipher (the ceiling without per-chunk inits), and
 * @noble/ciphers' pure-JS AEADs for comparison. Times are CPU time of this process, so other
 * load on the machine inflates them less than wall time.
 */
import { createCipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import { AeadDecoder, AeadEncoder, AeadSession } from '../src/protocol/shadowsocks/aead.js';
import { AEAD_METHODS, type AeadMethod, type AeadMethodName } from '../src/protocol/shadowsocks/methods.js';
import { nativeAvailable, nativeLoadError, setNativeEnabled } from '../src/protocol/shadowsocks/native.js';

const args = process.argv.slice(2);
const mibArg = args.indexOf('--mib');
const MIB = mibArg >= 0 ? Number(args[mibArg + 1]) : 64;
const TOTAL = MIB * 1024 * 1024;
const READ = 64 * 1024;
const CHUNK = 0x3fff;

/** CPU ms (user + system) spent in fn: unlike wall time, not inflated by other load. */
function time(fn: () => void): number {
  const t0 = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000;
}

function mibps(bytes: number, ms: number): string {
  return `${(bytes / 1024 / 1024 / (ms / 1000)).toFixed(0).padStart(6)} MiB/s`;
}

const HAVE_NATIVE = nativeAvailable();

/** Encode `n` 64 KiB writes, then decode the wire in 64 KiB reads; CPU ms for each side. */
function codec(m: AeadMethod, master: Buffer, read: Buffer, n: number, native: boolean) {
  setNativeEnabled(native);
  const enc = new AeadEncoder(m, master);
  const dec = new AeadDecoder(m, master);
  setNativeEnabled(true);
  const written: Buffer[] = [];
  const encMs = time(() => {
    for (let i = 0; i < n; i++) written.push(enc.encode(read));
  });
  // Re-cut at 64 KiB like socket reads, so most reads end inside a chunk.
  const all = Buffer.concat(written);
  written.length = 0;
  const reads: Buffer[] = [];
  for (let o = 0; o < all.length; o += READ) reads.push(Buffer.from(all.subarray(o, o + READ)));
  let out = 0;
  const decMs = time(() => {
    for (const r of reads) for (const p of dec.push(r)) out += p.length;
  });
  if (out !== n * READ) throw new Error(`decoded ${out} bytes, expected ${n * READ}`);
  return { encMs, decMs };
}

/** A UDP-style packet: a new session (subkey) per packet and one 1,400-byte seal; µs each. */
function perPacket(m: AeadMethod, native: boolean): number {
  const sub = randomBytes(m.keySize);
  const pkt = randomBytes(1400);
  const N = 20_000;
  setNativeEnabled(native);
  const ms = time(() => {
    for (let i = 0; i < N; i++) new AeadSession(m, sub).seal(pkt);
  });
  setNativeEnabled(true);
  return (ms * 1000) / N;
}

const rows: string[] = [];
for (const name of ['aes-128-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305'] as AeadMethodName[]) {
  const m = AEAD_METHODS[name];
  const master = randomBytes(m.keySize);
  const read = randomBytes(READ);
  const n = TOTAL / READ;

  // Warm-up (JIT) so the first method measured is not penalised.
  codec(m, master, read, 64, false);
  if (HAVE_NATIVE) codec(m, master, read, 64, true);

  // 1. Codec as shipped: node:crypto path, and the native addon.
  const { encMs, decMs } = codec(m, master, read, n, false);
  const nat = HAVE_NATIVE ? codec(m, master, read, n, true) : undefined;

  perPacket(m, false); // warm-up
  const pktJs = perPacket(m, false);
  const pktNative = HAVE_NATIVE ? perPacket(m, true) : undefined;

  // 2. One cipher init alone (what each 2-byte length seal mostly is).
  const key = createSecretKey(randomBytes(m.keySize));
  const iv = Buffer.alloc(12);
  const INITS = 50_000;
  const initMs = time(() => {
    for (let i = 0; i < INITS; i++) {
      const c = createCipheriv(m.cipher as 'aes-128-gcm', key, iv, { authTagLength: 16 });
      c.final();
      c.getAuthTag();
    }
  });

  // 3. Ceiling: one long-lived cipher, update() over the same bytes.
  const c = createCipheriv(m.cipher as 'aes-128-gcm', key, iv, { authTagLength: 16 });
  const bulkMs = time(() => {
    for (let i = 0; i < n; i++) c.update(read);
  });

  // 4. Pure JS (noble) per chunk, same chunking as SIP004.
  const small = Math.max(1, Math.floor(n / 8)); // noble is slow; run an eighth and scale
  const nobleKey = randomBytes(m.keySize);
  const nonce = new Uint8Array(12);
  const mk =
    name === 'chacha20-ietf-poly1305' ? () => chacha20poly1305(nobleKey, nonce) : () => gcm(nobleKey, nonce);
  const nobleMs = time(() => {
    for (let i = 0; i < small; i++) {
      for (let o = 0; o < READ; o += CHUNK) {
        mk().encrypt(read.subarray(0, 2));
        mk().encrypt(read.subarray(o, Math.min(o + CHUNK, READ)));
      }
    }
  });

  const chunksPerMiB = (1024 * 1024) / CHUNK;
  const initUs = (initMs * 1000) / INITS;
  rows.push(
    [
      `${name}:`,
      `  encode ${mibps(TOTAL, encMs)}   decode ${mibps(TOTAL, decMs)}   (SIP004 codec, node:crypto, 64 KiB reads)`,
      nat
        ? `  encode ${mibps(TOTAL, nat.encMs)}   decode ${mibps(TOTAL, nat.decMs)}   (SIP004 codec, native addon: ${(encMs / nat.encMs).toFixed(2)}x / ${(decMs / nat.decMs).toFixed(2)}x; ${((nat.encMs + nat.decMs) / (MIB / 1024)).toFixed(0)} CPU-ms per GiB sealed + opened vs ${((encMs + decMs) / (MIB / 1024)).toFixed(0)})`
        : `  native addon not available (${nativeLoadError() ?? 'unknown'}): node scripts/build-native.mjs`,
      `  new session + one 1,400-byte seal (UDP packet): ${pktJs.toFixed(2)} µs node:crypto${pktNative !== undefined ? `, ${pktNative.toFixed(2)} µs native` : ''}`,
      `  one cipher init ${initUs.toFixed(2)} µs -> ${((2 * chunksPerMiB * initUs) / 1000).toFixed(2)} ms per MiB for 2 inits/chunk (of ${(encMs / MIB).toFixed(2)} ms/MiB encode)`,
      `  long-lived cipher update() ${mibps(TOTAL, bulkMs)}   (ceiling without per-chunk inits)`,
      `  @noble/ciphers per chunk ${mibps(small * READ, nobleMs)}`,
    ].join('\n'),
  );
}
console.log(
  `SIP004 AEAD micro-benchmark, ${MIB} MiB per case, node ${process.version}, openssl ${process.versions.openssl}`,
);
console.log(rows.join('\n'));
