/**
 * CPU per ClientHello on a ShadowTLS port with per-key passwords (src/server/shadowtls/passwords.ts):
 * --keys keys' passwords, a real OpenSSL ClientHello (captured from Node's tls.connect, about
 * 500 bytes) and a Chrome-sized one (1,800 bytes with its padding). Three cases: a prober's hello
 * (no password signs it: every one is tried), a client's first hello (its key last in the set),
 * and the same client again (its address remembered: one HMAC). process.cpuUsage() over --reps
 * hellos, user + system, per hello. On a shared machine the figures are an upper bound.
 *
 *   node --import tsx bench/shadowtls-hello-cost.ts [--keys 1000] [--reps 200]
 */
import { randomBytes } from 'node:crypto';
import { signClientHello } from '../src/protocol/shadowtls/index.js';
import { keyShadowTlsPassword } from '../src/protocol/sip002/shadowtls.js';
import { ShadowTlsPasswords } from '../src/server/shadowtls/passwords.js';
import { captureClientHello } from '../test/helpers/shadowtls-client.js';
import { flagOf } from './managed-server.js';

const args = process.argv.slice(2);
const KEYS = Number(flagOf(args, 'keys', '1000'));
const REPS = Number(flagOf(args, 'reps', '200'));

const keys = Array.from({ length: KEYS }, (_, i) => ({
  id: String(i),
  method: 'chacha20-ietf-poly1305',
  secret: randomBytes(16).toString('base64'),
}));
const set = new ShadowTlsPasswords([], keyShadowTlsPassword);
set.setKeys(keys);
const last = keyShadowTlsPassword(keys.at(-1)!);

/** A Chrome-sized hello: OpenSSL's with a padding extension's worth of bytes appended to its body. */
function padded(hello: Buffer, size: number): Buffer {
  const extra = Math.max(0, size - hello.length);
  const out = Buffer.concat([hello, Buffer.alloc(extra)]);
  out.writeUInt16BE(out.length - 5, 3);
  const bodyLen = out.length - 9;
  out[6] = (bodyLen >> 16) & 0xff;
  out.writeUInt16BE(bodyLen & 0xffff, 7);
  return out;
}

function perHello(record: Buffer, remote: string | undefined): number {
  const t = process.cpuUsage();
  for (let i = 0; i < REPS; i++) set.match(record, remote);
  const d = process.cpuUsage(t);
  return (d.user + d.system) / REPS;
}

const openssl = await captureClientHello('bench.example');
for (const [name, hello] of [
  ['OpenSSL hello', openssl],
  ['Chrome-sized hello', padded(openssl, 1800)],
] as const) {
  const prober = Buffer.from(hello);
  signClientHello(prober.subarray(5), 'no such password');
  const client = Buffer.from(hello);
  signClientHello(client.subarray(5), last);
  if (set.match(client, undefined) !== last) throw new Error('the client hello does not verify');
  const fmt = (us: number): string => `${(us / 1000).toFixed(2)} ms`;
  console.log(
    `${name} (${hello.length} B), ${KEYS} keys: prober ${fmt(perHello(prober, undefined))}, ` +
      `client first ${fmt(perHello(client, undefined))}, client again ${fmt(perHello(client, '192.0.2.1'))} CPU per hello`,
  );
}
