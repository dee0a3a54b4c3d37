/**
 * D1/D3 first-packet shaping for Shadowsocks AEAD (SIP004) client connections. Pure.
 *
 * D1 (docs/glossary.md C6, D1): the fully-encrypted-traffic detector exempts a first packet whose
 * first 6 bytes are printable (Ex2) or that starts like TLS/HTTP (Ex5). We put such bytes at the
 * start of the salt, with Outline's `prefix` semantics: the prefix bytes REPLACE the first bytes
 * of the salt (Outline SDK `NewPrefixSaltGenerator`: "prefix, followed by random bytes"), so the
 * wire format is unchanged and any SIP004 server (ours, ss-server, outline-ss-server) accepts it
 * with no configuration. Unlike a fixed Outline prefix, a fresh prefix is drawn per connection
 * from realistic templates (HTTP request lines, TLS record headers, printable tokens), so no byte
 * offset is constant and no prefix string recurs.
 *
 * D3 (docs/glossary.md C7): the active prober's trigger looks at first packets of 160..999 bytes whose length is
 * 2 or 9 mod 16. SIP004 cannot pad inside a chunk, but the client chooses how it chunks the first
 * write: sending the target header and the first data as two chunks adds 34 bytes, which moves the
 * length class by +2 (mod 16) and out of {2, 9}.
 *
 * API:
 *   prefixBudget(saltSize)             -> max prefix bytes we allow (32-byte salt: 16; 16-byte: 6)
 *   generatePrefix(maxLen, rng?)       -> one per-connection prefix (3..maxLen bytes)
 *   makeShapedSalt(saltSize, rng?)     -> a full salt: generated prefix + random rest
 *   saltCollisionProbability(randomBits, connections) -> birthday bound
 *   inProberTrigger(len)               -> the C7 length trigger
 *   planFirstWrite(saltSize, headerLength, dataLength) -> chunk plan and resulting length
 *   encodeFirstWrite(encoder, header, data) -> the wire bytes of the first write, following the plan
 *
 * Entropy cost: the salt's random part is saltSize - prefixLen bytes. With R random bits, two
 * connections under one key share a salt with probability ~ n^2 / 2^(R+1) after n connections,
 * and a shared salt means a reused AEAD (key, nonce) pair. We keep R >= 128 bits for 32-byte salts
 * (prefix <= 16) and R >= 80 bits for aes-128-gcm's 16-byte salt (prefix <= 6, exactly the Ex2
 * window). docs/client-defences.md has the numbers. The prefix itself is random too, so the real
 * margin is larger; the budget counts only the uniformly random tail.
 */
import { ProtocolError } from '../errors.js';
import { join2, MAX_PAYLOAD, type AeadEncoder } from './aead.js';
import { POOL_WORDS, poolRandomBytes, poolRandomUint32 } from './random-pool.js';

/** Source of uniformly random bytes (inject a seeded one in tests). */
export type Rng = (n: number) => Uint8Array;

/** CSPRNG bytes from a pool (random-pool.ts: one OpenSSL call per 4 KiB, not per draw). */
export const defaultRng: Rng = poolRandomBytes;

/** Minimum random salt bytes we keep, by salt size. */
export function minRandomSaltBytes(saltSize: number): number {
  return saltSize >= 32 ? 16 : saltSize - 6;
}

/** The longest prefix we generate for a salt of `saltSize` bytes (32 -> 16, 16 -> 6). */
export function prefixBudget(saltSize: number): number {
  if (!Number.isInteger(saltSize) || saltSize < 16) {
    throw new ProtocolError('ERR_KEY', `salt size ${saltSize} too small for a shaped prefix (need >= 16)`);
  }
  return saltSize - minRandomSaltBytes(saltSize);
}

/** Birthday bound: P(some two of n salts collide) with `randomBits` uniformly random bits each. */
export function saltCollisionProbability(randomBits: number, connections: number): number {
  const n = connections;
  const pairs = (n * (n - 1)) / 2;
  const p = pairs / 2 ** randomBits;
  // 1 - exp(-x) is accurate both for tiny x and near 1.
  return -Math.expm1(-p);
}

// ---- random helpers over an injectable Rng ----

function randInt(rng: Rng, n: number): number {
  if (n <= 1) return 0;
  // Rejection sampling over 32 bits: unbiased.
  const limit = Math.floor(0x1_0000_0000 / n) * n;
  // The default rng's 4 bytes read as a word straight from its pool (the same value, no Buffer).
  const words = POOL_WORDS && rng === defaultRng;
  for (let i = 0; i < 64; i++) {
    let v: number;
    if (words) v = poolRandomUint32();
    else {
      const b = rng(4);
      v = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    }
    if (v < limit) return v % n;
  }
  return 0; // unreachable with a sane rng (p < 2^-64)
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[randInt(rng, items.length)]!;
}

// The helpers below run once per connection in a client that has served only a few thousand (V8's
// baseline code, not optimised): indexed loops and constant tables, no closures or arrays per draw.
function pickWeighted<T>(rng: Rng, items: readonly (readonly [T, number])[]): T {
  let total = 0;
  for (let i = 0; i < items.length; i++) total += items[i]![1];
  let r = randInt(rng, total);
  for (let i = 0; i < items.length; i++) {
    const w = items[i]![1];
    if (r < w) return items[i]![0];
    r -= w;
  }
  return items[items.length - 1]![0];
}

function randomString(rng: Rng, alphabet: string, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[randInt(rng, alphabet.length)];
  return s;
}

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const ALNUM_LOWER = LOWER + '0123456789';
const ALNUM = ALNUM_LOWER + 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const BASE64 = ALNUM + '+/';
const HEX = '0123456789abcdef';
const PATH_CHARS = ALNUM_LOWER + '-_./';

const PATH_WORDS = [
  'api',
  'v1',
  'v2',
  'static',
  'assets',
  'img',
  'images',
  'js',
  'css',
  'search',
  'login',
  'index',
  'news',
  'video',
  'user',
  'users',
  'cdn',
  'media',
  'upload',
  'download',
  'public',
  'feed',
  'item',
  'home',
  'app',
  'auth',
  'oauth',
  'status',
  'health',
  'graphql',
  'wp',
  'blog',
  'post',
  'posts',
  'favicon.ico',
  'robots.txt',
  'data',
  'sync',
  'update',
  'track',
  'event',
  'pixel',
  'query',
  'files',
  'docs',
  'player',
  'live',
  'config',
  'metrics',
  'ping',
  'page',
  'q',
  'rss',
  'xml',
  'json',
  'zh-cn',
];

// Methods with weights (per mille). Ex5 covers GET/PUT/POST/HEAD; the others rely on Ex2.
// Methods of 4+ letters fix the whole 6-byte window ("POST /"), so each is kept rare enough
// (family share x weight < 1%) that no 6-byte start recurs in more than 1% of connections.
const METHODS: readonly (readonly [string, number])[] = [
  ['GET', 850],
  ['PUT', 70],
  ['POST', 25],
  ['HEAD', 20],
  ['PATCH', 15],
  ['DELETE', 10],
  ['OPTIONS', 10],
];

/** The longest method plus " /x": from this maxLen on, every method fits. */
const ALL_METHODS_FIT = 10;
const PATH_SEPARATORS = ['/', '/', '-', '_', '.', '?', '=', '&'] as const;
const WORD_SEPARATORS = ['-', '_', ' ', '.'] as const;

/** "GET /path..." of exactly `len` bytes (len >= method + 3). */
function httpPrefix(rng: Rng, maxLen: number): string {
  const methods = maxLen >= ALL_METHODS_FIT ? METHODS : METHODS.filter(([m]) => m.length + 3 <= maxLen);
  const method = pickWeighted(rng, methods);
  const minLen = method.length + 3;
  const len = minLen + randInt(rng, maxLen - minLen + 1);
  let path = '/';
  let first = true;
  while (path.length < len - method.length - 1) {
    // The first path byte is drawn from 62 alphanumerics so "GET /x" starts spread evenly:
    // GET is ~14% of connections, so each 6-byte start stays near 0.2%.
    if (first) path += randomString(rng, ALNUM, 1);
    const r = randInt(rng, 4);
    first = false;
    if (path.length >= len - method.length - 1) break;
    if (r <= 1) path += randomString(rng, ALNUM_LOWER, 1 + randInt(rng, 8));
    else if (r === 2) path += randomString(rng, PATH_CHARS, 1 + randInt(rng, 4));
    else path += pick(rng, PATH_WORDS);
    path += pick(rng, PATH_SEPARATORS);
  }
  return `${method} ${path}`.slice(0, len);
}

/** A TLS record header: 16 03 01|03 LL LL (handshake) or 17 03 03 LL LL (application data). */
function tlsPrefix(rng: Rng, maxLen: number): Uint8Array {
  const handshake = randInt(rng, 10) < 7;
  const out: number[] = [];
  if (handshake) {
    // ClientHello records: 0x0301 record version is what browsers send; sizes ~ 0xb0..0x7ff.
    const recLen = 0xb0 + randInt(rng, 0x800 - 0xb0);
    out.push(0x16, 0x03, randInt(rng, 4) === 0 ? 0x03 : 0x01, recLen >> 8, recLen & 0xff);
    if (maxLen >= 9 && randInt(rng, 2) === 0) {
      const hsLen = recLen - 4;
      out.push(0x01, (hsLen >> 16) & 0xff, (hsLen >> 8) & 0xff, hsLen & 0xff);
    }
  } else {
    const recLen = 0x20 + randInt(rng, 0x4000 - 0x20);
    out.push(0x17, 0x03, 0x03, recLen >> 8, recLen & 0xff);
  }
  return Uint8Array.from(out.slice(0, Math.max(3, Math.min(out.length, maxLen))));
}

/** A printable token of 6..maxLen bytes: base64, hex, mixed alnum or dashed words. */
function textPrefix(rng: Rng, maxLen: number): string {
  const len = 6 + randInt(rng, maxLen - 6 + 1);
  const style = randInt(rng, 4);
  if (style === 0) return randomString(rng, BASE64, len);
  if (style === 1) return randomString(rng, ALNUM, 1) + randomString(rng, HEX, len - 1);
  if (style === 2) return randomString(rng, ALNUM, len);
  let s = '';
  while (s.length < len) s += (s ? pick(rng, WORD_SEPARATORS) : '') + pick(rng, PATH_WORDS);
  // Keep the first bytes varied: words alone would repeat the same 6-byte start too often.
  return (randomString(rng, ALNUM, 2) + s).slice(0, len);
}

export type PrefixFamily = 'http' | 'tls' | 'text';

/** Family weights (per mille) of the default generator. */
export const DEFAULT_FAMILY_WEIGHTS: Readonly<Record<PrefixFamily, number>> = Object.freeze({
  http: 150,
  tls: 200,
  text: 650,
});

/**
 * Printable tokens only (Ex2). No leading substring of 2+ bytes recurs in more than ~1% of
 * connections, at the price of not imitating any protocol (the default's HTTP and TLS families
 * imitate real protocols, so their 3-5 magic bytes recur by design: "16 03 01" starts ~14%).
 */
export const STRICT_FAMILY_WEIGHTS: Readonly<Record<PrefixFamily, number>> = Object.freeze({
  http: 0,
  tls: 0,
  text: 1000,
});

export interface PrefixOptions {
  rng?: Rng;
  weights?: Partial<Record<PrefixFamily, number>>;
}

/**
 * One per-connection prefix of 3..maxLen bytes. Every result, followed by anything, is exempt
 * from C6 by Ex2 (>= 6 leading printable bytes) or Ex5 (TLS or HTTP start). maxLen >= 3; with
 * maxLen < 6 only TLS-like prefixes fit.
 */
export function generatePrefix(maxLen: number, opts: PrefixOptions = {}): Uint8Array {
  const p = drawPrefix(maxLen, opts);
  return typeof p === 'string' ? Buffer.from(p, 'latin1') : p;
}

/** The default weights' families by maxLen (below 6 only TLS fits): what generatePrefix builds from them. */
const DEFAULT_SHORT: readonly (readonly [PrefixFamily, number])[] = [['tls', DEFAULT_FAMILY_WEIGHTS.tls]];
const DEFAULT_FULL: readonly (readonly [PrefixFamily, number])[] = [
  ['tls', DEFAULT_FAMILY_WEIGHTS.tls],
  ['http', DEFAULT_FAMILY_WEIGHTS.http],
  ['text', DEFAULT_FAMILY_WEIGHTS.text],
];

/** generatePrefix's draw: latin1 text (HTTP and text families) or bytes (TLS). */
function drawPrefix(maxLen: number, opts: PrefixOptions): string | Uint8Array {
  if (!Number.isInteger(maxLen) || maxLen < 3) {
    throw new ProtocolError('ERR_KEY', `prefix length limit ${maxLen} too small (need >= 3)`);
  }
  const rng = opts.rng ?? defaultRng;
  let usable: readonly (readonly [PrefixFamily, number])[];
  if (opts.weights === undefined) usable = maxLen >= 6 ? DEFAULT_FULL : DEFAULT_SHORT;
  else {
    const w = { ...DEFAULT_FAMILY_WEIGHTS, ...opts.weights };
    const families: (readonly [PrefixFamily, number])[] = [['tls', w.tls]];
    if (maxLen >= 6) families.push(['http', w.http], ['text', w.text]);
    usable = families.filter(([, wt]) => wt > 0);
  }
  if (usable.length === 0) throw new ProtocolError('ERR_KEY', 'no prefix family enabled for this length');
  const family = pickWeighted(rng, usable);
  if (family === 'tls') return tlsPrefix(rng, maxLen);
  return family === 'http' ? httpPrefix(rng, maxLen) : textPrefix(rng, maxLen);
}

/** A salt whose first bytes are a fresh prefix (at most prefixBudget) and the rest random. */
export function makeShapedSalt(saltSize: number, opts: PrefixOptions = {}): Buffer {
  return shapedSalt(saltSize, drawPrefix(prefixBudget(saltSize), opts), opts.rng ?? defaultRng);
}

/**
 * `prefix` over `saltSize` bytes of `rng` (drawn after the prefix, as always). The default rng's
 * bytes are a fresh copy already (random-pool.ts): used as they are, not copied again.
 */
function shapedSalt(saltSize: number, prefix: string | Uint8Array, rng: Rng): Buffer {
  const bytes = rng(saltSize);
  const salt = rng === defaultRng && Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  if (typeof prefix === 'string') {
    // What salt.write(prefix, 0, 'latin1') writes (the prefix is shorter than the salt), without
    // Node's JS wrapper and its argument checks: a dozen stores.
    for (let i = 0; i < prefix.length; i++) salt[i] = prefix.charCodeAt(i) & 0xff;
  } else salt.set(prefix, 0);
  return salt;
}

// ---- D3: first-write length ----

/** The prober's length trigger (IMC'20 §4; docs/glossary.md C7): 160..999 bytes, length mod 16 in {2, 9}. */
export const PROBER_TRIGGER = Object.freeze({ min: 160, max: 999, mod16: Object.freeze([2, 9]) });

export function inProberTrigger(len: number): boolean {
  return len >= PROBER_TRIGGER.min && len <= PROBER_TRIGGER.max && PROBER_TRIGGER.mod16.includes(len % 16);
}

/** Overhead of one SIP004 chunk: sealed 2-byte length (2 + 16) + payload tag (16). */
export const CHUNK_OVERHEAD = 34;

/** Wire length of a SIP004 first write: salt plus the given chunk payload lengths. */
export function sip004Length(saltSize: number, chunkPayloads: readonly number[]): number {
  return saltSize + chunkPayloads.reduce((s, p) => s + p + CHUNK_OVERHEAD, 0);
}

export interface FirstWritePlan {
  /** Payload lengths of the chunks of the first write, in order; they sum to header + data. */
  readonly chunks: readonly number[];
  /** Wire length of the first write. */
  readonly length: number;
  /** True only when the trigger could not be avoided (no initial data to split off). */
  readonly inTrigger: boolean;
  /** Header and data go in separate chunks. */
  readonly split: boolean;
}

function splitMax(n: number): number[] {
  const out: number[] = [];
  for (let left = n; left > 0; left -= MAX_PAYLOAD) out.push(Math.min(left, MAX_PAYLOAD));
  return out;
}

/**
 * How to chunk the first write (salt + target header + initial data) so its length avoids the
 * prober's trigger. One chunk when that is already outside; otherwise header and data as two
 * chunks (+34 bytes: length mod 16 moves from 2 -> 4 or 9 -> 11). The header is never split
 * (every server parses it from the first chunk). With no initial data nothing can be done inside
 * SIP004 (zero-length chunks are invalid), which `inTrigger` reports.
 */
export function planFirstWrite(saltSize: number, headerLength: number, dataLength: number): FirstWritePlan {
  if (headerLength < 1 || dataLength < 0) throw new ProtocolError('ERR_HEADER', 'bad first-write lengths');
  const single = splitMax(headerLength + dataLength);
  const len1 = sip004Length(saltSize, single);
  if (!inProberTrigger(len1)) return { chunks: single, length: len1, inTrigger: false, split: false };
  if (dataLength === 0) return { chunks: single, length: len1, inTrigger: true, split: false };
  const split = [...splitMax(headerLength), ...splitMax(dataLength)];
  const len2 = sip004Length(saltSize, split);
  return { chunks: split, length: len2, inTrigger: inProberTrigger(len2), split: true };
}

/**
 * A first write of `n` bytes (a header of `headerLength`, then data) goes as one chunk outside the
 * prober's trigger (nearly every first write): what planFirstWrite says, without making the plan.
 */
function oneChunkFirstWrite(encoder: AeadEncoder, headerLength: number, n: number): boolean {
  return headerLength > 0 && n <= MAX_PAYLOAD && !inProberTrigger(encoder.salt.length + n + CHUNK_OVERHEAD);
}

/**
 * Encode salt + header + data as the first write, following planFirstWrite. `encoder` must be
 * fresh (its salt not yet sent). Decodes with any SIP004 decoder to header||data.
 */
export function encodeFirstWrite(
  encoder: AeadEncoder,
  header: Uint8Array,
  data: Uint8Array = new Uint8Array(0),
): Buffer {
  if (oneChunkFirstWrite(encoder, header.length, header.length + data.length))
    return encoder.encode(join2(header, data));
  const plan = planFirstWrite(encoder.salt.length, header.length, data.length);
  if (!plan.split) return encoder.encode(join2(header, data));
  return Buffer.concat([encoder.encode(header), encoder.encode(data)]);
}

/**
 * encodeFirstWrite over header || data in one buffer (`joined`, the header its first
 * `headerLength` bytes): the same bytes, with no join (the SOCKS5 front's request as it came).
 */
export function encodeFirstWriteJoined(
  encoder: AeadEncoder,
  joined: Uint8Array,
  headerLength: number,
): Buffer {
  if (oneChunkFirstWrite(encoder, headerLength, joined.length)) return encoder.encode(joined);
  return encodeFirstWrite(encoder, joined.subarray(0, headerLength), joined.subarray(headerLength));
}
encodeFirstWrite.joined = encodeFirstWriteJoined;
