/**
 * The node:crypto CipherBackend (cipher.ts): two fresh cipher objects per AEAD operation, the
 * chunking loops in JS. Always available; same bytes and errors as cipher-native.ts.
 */
import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  randomBytes,
  type CipherKey,
  type KeyObject,
} from 'node:crypto';
import { ProtocolError } from '../errors.js';
import { ByteQueue } from './byte-queue.js';
import type {
  AeadCipher,
  ChunkDecoder,
  ChunkEncoder,
  ChunkOptions,
  CipherBackend,
  SessionCipher,
} from './cipher-types.js';
import { MAX_PAYLOAD, TAG } from './cipher-types.js';

const NONCE = 12;
const ZERO_NONCE = new Uint8Array(NONCE);
const SS_SUBKEY_INFO = Buffer.from('ss-subkey');

/** The one AEAD open: plaintext of sealed[offset..] (ciphertext || tag), or null. */
function openAt(
  cipher: AeadCipher,
  key: CipherKey,
  nonce: Uint8Array,
  sealed: Uint8Array,
  offset: number,
): Buffer | null {
  if (sealed.length - offset < TAG) return null;
  const d = createDecipheriv(cipher as 'aes-128-gcm', key, nonce, { authTagLength: TAG });
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  const plain = d.update(sealed.subarray(offset, sealed.length - TAG));
  try {
    d.final();
  } catch {
    return null;
  }
  return plain;
}

/** The one AEAD seal: prefix || AEAD(a || b) || tag. */
const sealParts: CipherBackend['sealParts'] = (cipher, key, nonce, prefix, a, b) => {
  const p = prefix?.length ?? 0;
  const out = Buffer.allocUnsafe(p + a.length + (b?.length ?? 0) + TAG);
  if (prefix) out.set(prefix, 0);
  const c = createCipheriv(cipher as 'aes-128-gcm', key, nonce, { authTagLength: TAG });
  let o = p + c.update(a).copy(out, p);
  if (b) o += c.update(b).copy(out, o);
  c.final();
  c.getAuthTag().copy(out, o);
  return out;
};

function hkdfSha1(key: Uint8Array, salt: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha1', key, salt, SS_SUBKEY_INFO, key.length));
}

/** SessionCipher: a KeyObject imported once (cheaper per operation than raw key bytes) and a JS nonce. */
class NodeSession implements SessionCipher {
  readonly #cipher: AeadCipher;
  readonly #key: KeyObject;
  readonly #nonce = Buffer.alloc(NONCE);

  constructor(cipher: AeadCipher, subkey: Uint8Array, nonceStart = 0) {
    this.#cipher = cipher;
    this.#key = createSecretKey(subkey);
    for (let i = 0; i < nonceStart; i++) this.#increment();
  }

  #increment(): void {
    const n = this.#nonce;
    for (let i = 0; i < NONCE; i++) {
      n[i] = (n[i]! + 1) & 0xff;
      if (n[i] !== 0) return;
    }
  }

  sealInto(plain: Uint8Array, out: Uint8Array, offset: number): number {
    const c = createCipheriv(this.#cipher as 'aes-128-gcm', this.#key, this.#nonce, { authTagLength: TAG });
    const body = c.update(plain);
    c.final();
    out.set(body, offset);
    out.set(c.getAuthTag(), offset + body.length);
    this.#increment();
    return body.length + TAG;
  }

  seal(plain: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(plain.length + TAG);
    this.sealInto(plain, out, 0);
    return out;
  }

  open(sealed: Uint8Array): Buffer {
    if (sealed.length < TAG) throw new ProtocolError('ERR_SHORT_HEADER', 'sealed chunk shorter than its tag');
    const plain = openAt(this.#cipher, this.#key, this.#nonce, sealed, 0);
    if (plain === null) throw new ProtocolError('ERR_CIPHER', 'AEAD authentication failed');
    this.#increment();
    return plain;
  }
}

class NodeChunkEncoder implements ChunkEncoder {
  readonly #session: NodeSession;
  readonly #max: number;
  readonly #len = Buffer.allocUnsafe(2);

  constructor(cipher: AeadCipher, subkey: Uint8Array, o: ChunkOptions = {}) {
    this.#session = new NodeSession(cipher, subkey, o.nonceStart);
    this.#max = o.maxPayload ?? MAX_PAYLOAD;
  }

  /** Wire size of `n` payload bytes as length/payload chunk pairs. */
  #size(n: number): number {
    return Math.ceil(n / this.#max) * (2 + TAG + TAG) + n;
  }

  /** Seals `data` as chunks into `out` at `o`; returns the end offset. */
  #chunks(data: Uint8Array, out: Buffer, o: number): number {
    const n = data.length;
    // Greedy cuts up to SIP004's limit; above it (SIP022) the fewest chunks of equal size, as in C++.
    const step = this.#max > MAX_PAYLOAD ? Math.ceil(n / Math.ceil(n / this.#max)) : this.#max;
    const len = this.#len;
    for (let i = 0; i < n; i += step) {
      const piece = data.subarray(i, Math.min(i + step, n));
      len.writeUInt16BE(piece.length, 0);
      o += this.#session.sealInto(len, out, o);
      o += this.#session.sealInto(piece, out, o);
    }
    return o;
  }

  encode(data: Uint8Array, prefix?: Uint8Array): Buffer {
    const p = prefix?.length ?? 0;
    const out = Buffer.allocUnsafe(p + this.#size(data.length));
    if (prefix) out.set(prefix, 0);
    this.#chunks(data, out, p);
    return out;
  }

  encodeWith(prefix: readonly Uint8Array[], pieces: readonly Uint8Array[], rest: Uint8Array): Buffer {
    let total = this.#size(rest.length);
    for (const p of prefix) total += p.length;
    for (const p of pieces) total += p.length + TAG;
    const out = Buffer.allocUnsafe(total);
    let o = 0;
    for (const p of prefix) {
      out.set(p, o);
      o += p.length;
    }
    for (const p of pieces) o += this.#session.sealInto(p, out, o);
    this.#chunks(rest, out, o);
    return out;
  }
}

/** The chunk reader as a byte-in state machine; keeps references to pushed buffers until consumed. */
class NodeChunkDecoder implements ChunkDecoder {
  readonly #session: NodeSession;
  readonly #queue = new ByteQueue();
  readonly #min: number;
  readonly #max: number;
  #readingLength = true;
  #need = 2 + TAG;

  constructor(cipher: AeadCipher, subkey: Uint8Array, o: ChunkOptions = {}) {
    this.#session = new NodeSession(cipher, subkey, o.nonceStart);
    this.#min = o.allowEmpty ? 0 : 1;
    this.#max = o.maxPayload ?? MAX_PAYLOAD;
  }

  push(data: Uint8Array): Buffer[] {
    const q = this.#queue;
    q.push(data);
    const out: Buffer[] = [];
    while (q.length >= this.#need) {
      const sealed = q.take(this.#need);
      if (this.#readingLength) {
        const len = this.#session.open(sealed).readUInt16BE(0);
        if (len < this.#min || len > this.#max) {
          throw new ProtocolError('ERR_PAYLOAD_SIZE', `chunk length ${len} outside 1..${this.#max}`);
        }
        this.#readingLength = false;
        this.#need = len + TAG;
      } else {
        const p = this.#session.open(sealed);
        if (p.length > 0) out.push(p);
        this.#readingLength = true;
        this.#need = 2 + TAG;
      }
    }
    return out;
  }

  pushInPlace(data: Buffer): Buffer[] {
    return this.push(data);
  }

  get buffered(): number {
    return this.#queue.length;
  }

  get elementSize(): number {
    return this.#need;
  }

  get readingLength(): boolean {
    return this.#readingLength;
  }
}

export const nodeCipher: CipherBackend = {
  name: 'node',
  session: (cipher, subkey) => new NodeSession(cipher, subkey),
  chunkEncoder: (cipher, subkey, options) => new NodeChunkEncoder(cipher, subkey, options),
  chunkDecoder: (cipher, subkey, options) => new NodeChunkDecoder(cipher, subkey, options),
  hkdfSha1,
  sealParts,
  openAt,
  udpSeal(method, masterKey, head, payload, salt) {
    const s = salt ?? randomBytes(method.saltSize);
    return sealParts(method.cipher, hkdfSha1(masterKey, s), ZERO_NONCE, s, head, payload);
  },
  udpOpen(method, masterKey, packet) {
    const subkey = hkdfSha1(masterKey, packet.subarray(0, method.saltSize));
    return openAt(method.cipher, subkey, ZERO_NONCE, packet, method.saltSize);
  },
  // No cheap trial decryption here: the caller builds a decoder.
  sip004HeadMatches: () => undefined,
};
