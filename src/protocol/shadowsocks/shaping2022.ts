/**
 * D1/D3 first-packet shaping for the 2022 edition (SIP022/SIP023) client. Pure.
 *
 * D1 (docs/glossary.md C6): as for SIP004 (shaping.ts), a fresh prefix drawn per connection from
 * the shaper's families (HTTP request lines, TLS record headers, printable tokens) becomes the
 * first bytes of the request salt, so the first packet is exempt from the fully-encrypted-traffic
 * detector by Ex2 or Ex5. The wire format is unchanged, and SIP022's rules tolerate it:
 *  - the salt is only key material: session subkey = BLAKE3.derive_key("shadowsocks 2022 session
 *    subkey", PSK || salt), and SIP023's identity subkey likewise; any salt bytes are valid;
 *  - the server refuses a salt it saw in the last 60 s (SIP022 §3.1.4, our exact `SaltWindow`):
 *    an honest client must not repeat one, and a repeated salt would also repeat the session
 *    subkey and its nonce sequence. We keep MIN_RANDOM_SALT_BYTES_2022 = 16 uniformly random bytes
 *    after the prefix (128 bits: after 2^32 connections under one key, P(any two salts equal)
 *    < 2^-64), so a 32-byte salt (2022-blake3-aes-256-gcm, 2022-blake3-chacha20-poly1305) takes a
 *    prefix of up to 16 bytes, and 2022-blake3-aes-128-gcm's 16-byte salt takes none: that method
 *    is not shaped (`shapes2022` is false);
 *  - the response echoes the request salt whole, which the prefix does not affect.
 *
 * D3 (docs/glossary.md C7): the active prober's trigger is a first packet of 160..999 bytes whose
 * length is 2 or 9 mod 16. SIP022 lets the client pad its variable header (0..900 bytes, any
 * content) even when it carries initial data, so we choose the padding: none (or, without data,
 * the codec's random 1..900) unless that length is in the trigger, then one byte more (2 -> 3,
 * 9 -> 10 mod 16) or, at the 900-byte cap, one less.
 *
 * API:
 *   shapes2022(saltSize)                 -> whether a salt of this size has room for a prefix
 *   makeShapedSalt2022(saltSize, opts?)  -> prefix (<= saltSize - 16 bytes) + random rest
 *   request2022Length(...)               -> wire length of a 2022 first write
 *   firstWritePadding2022(...)           -> padding length that keeps the first write off the trigger
 */
import { ProtocolError } from '../errors.js';
import { IDENTITY_HEADER_SIZE, MAX_PADDING } from './methods2022.js';
import { defaultRng, generatePrefix, inProberTrigger, type PrefixOptions, type Rng } from './shaping.js';

/** Uniformly random salt bytes every shaped 2022 salt keeps. */
export const MIN_RANDOM_SALT_BYTES_2022 = 16;
/** Sealed fixed header: type (1) + timestamp (8) + length (2) + tag (16). */
const FIXED_HEADER_WIRE = 1 + 8 + 2 + 16;
const TAG = 16;

/** The longest prefix a 2022 salt of `saltSize` bytes takes (32 -> 16, 16 -> 0). */
export function prefixBudget2022(saltSize: number): number {
  return Math.max(0, saltSize - MIN_RANDOM_SALT_BYTES_2022);
}

/** True when the method's salt leaves room for a C6-exempting prefix (>= 6 bytes) after 16 random bytes. */
export function shapes2022(saltSize: number): boolean {
  return prefixBudget2022(saltSize) >= 6;
}

/** A 2022 request salt: a fresh prefix from the shaper's families, then >= 16 random bytes. */
export function makeShapedSalt2022(saltSize: number, opts: PrefixOptions = {}): Buffer {
  if (!shapes2022(saltSize)) {
    throw new ProtocolError(
      'ERR_KEY',
      `a ${saltSize}-byte 2022 salt has no room for a prefix that keeps ${MIN_RANDOM_SALT_BYTES_2022} random bytes`,
    );
  }
  const rng: Rng = opts.rng ?? defaultRng;
  const prefix = generatePrefix(prefixBudget2022(saltSize), opts);
  const salt = Buffer.from(rng(saltSize));
  salt.set(prefix, 0);
  return salt;
}

/**
 * Wire length of a 2022 request's first write: salt, identity headers, sealed fixed header and
 * sealed variable header (address, padding length, padding, initial data), when the variable
 * header holds all the data (it holds up to 0xFFFF bytes; longer first writes are far past the
 * prober's range anyway, and this returns a lower bound for them).
 */
export function request2022Length(
  saltSize: number,
  identityHeaders: number,
  addressLength: number,
  paddingLength: number,
  dataLength: number,
): number {
  return (
    saltSize +
    identityHeaders * IDENTITY_HEADER_SIZE +
    FIXED_HEADER_WIRE +
    addressLength +
    2 +
    paddingLength +
    dataLength +
    TAG
  );
}

/**
 * The padding for a 2022 first write that keeps its length out of the prober's trigger.
 * `unpadded` is request2022Length(..., 0, dataLength). With data, the default is no padding;
 * without, a random 1..900 bytes (the codec's policy). Either way one byte is added (or, at the
 * cap, removed) when the length would land in the trigger.
 */
export function firstWritePadding2022(unpadded: number, dataLength: number, rng: Rng = defaultRng): number {
  let pad = 0;
  if (dataLength === 0) {
    const b = rng(2);
    pad = 1 + (((b[0]! << 8) | b[1]!) % MAX_PADDING);
  }
  if (inProberTrigger(unpadded + pad)) pad = pad === MAX_PADDING ? pad - 1 : pad + 1;
  return pad;
}
