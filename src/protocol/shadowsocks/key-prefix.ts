/**
 * Per-key Outline `prefix` values for the keys we hand to other apps (D1 for phones). Pure.
 *
 * Outline's clients write a key's `prefix` as the first bytes of every SIP004 salt (Outline SDK:
 * "prefix, followed by random bytes"), so the server needs nothing: ours, ss-server and
 * outline-ss-server all accept such salts. The prefix is drawn from the same varied families our
 * own client's shaper uses (shaping.ts: HTTP request lines, TLS record headers, printable
 * tokens), so every value starts with >= 6 printable bytes (C6 Ex2) or a TLS/HTTP start (Ex5).
 * Unlike our client, an Outline client keeps one prefix for every connection of the key, so:
 *  - a dynamic key (ssconf://) should re-draw it on each fetch, so no server keeps one fixed
 *    signature across its users and over time;
 *  - the server's replay filter sees many salts with the same leading bytes: we keep
 *    KEY_PREFIX_MIN_RANDOM = 16 uniformly random salt bytes after the prefix (128 bits), so a
 *    32-byte salt (chacha20-ietf-poly1305, aes-256-gcm) takes up to 16 prefix bytes, a 24-byte one
 *    (aes-192-gcm) up to 8, and aes-128-gcm's 16-byte salt none (its keys carry no prefix).
 * 2022-edition keys never get one (Outline's apps have no 2022 ciphers; our client shapes those
 * itself, shaping2022.ts).
 *
 * How Outline encodes it: in ss:// URLs the `prefix` query value is percent-encoded UTF-8 of a
 * string whose code points 0..255 are the bytes (sip002/index.ts reads and writes that); in the
 * dynamic-key JSON (LegacyShadowsocksConfig) `prefix` is the same string as a JSON string (so byte
 * 0x16 is "\u0016" and 0xA8 is "\u00a8"): `outlinePrefixString`.
 *
 * API:
 *   keyPrefixBudget(method)              -> the longest prefix a key of this method gets (0: none)
 *   drawKeyPrefix(method, opts?)         -> a fresh prefix, or undefined when the method gets none
 *   keyPrefixFor(method, setting, opts?) -> what a key hands out for its setting (auto/off/pinned)
 *   parseKeyPrefixSetting(text)          -> 'auto' | 'off' | pinned bytes (hex or Outline's URL form)
 *   outlinePrefixString(bytes)           -> the JSON `prefix` string
 *   checkKeyPrefixSetting(method, s)     -> throws unless a key of `method` may carry s
 *   formatKeyPrefixSetting(s) / storedKeyPrefixSetting(text) -> the stored form ('auto'|'off'|hex)
 *   keyPrefixSettingFor(method, text)    -> parse + check + stored form (API and CLI)
 */
import { ProtocolError } from '../errors.js';
import { getAeadMethod, isAeadMethodName } from './methods.js';
import { generatePrefix, type PrefixOptions } from './shaping.js';

/** Uniformly random salt bytes a key's salts keep after its prefix. */
export const KEY_PREFIX_MIN_RANDOM = 16;

/** Longest prefix we draw even for salts that could take more (Outline's examples stay within 16). */
const KEY_PREFIX_MAX = 16;

/** The shortest drawn prefix that is exempt by Ex2 without relying on a TLS header (3..5 bytes). */
const MIN_DRAWN = 6;

/** auto: drawn from the shaper's families (dynamic keys: on each fetch); off: none; bytes: pinned. */
export type KeyPrefixSetting = 'auto' | 'off' | Uint8Array;

/** The longest prefix a key of `method` hands out: 0 for 2022 methods, unknown names and 16-byte salts. */
export function keyPrefixBudget(method: string): number {
  if (!isAeadMethodName(method)) return 0;
  const room = getAeadMethod(method).saltSize - KEY_PREFIX_MIN_RANDOM;
  return room >= MIN_DRAWN ? Math.min(room, KEY_PREFIX_MAX) : 0;
}

/** A fresh Outline-compatible prefix for a key of `method`, or undefined when it gets none. */
export function drawKeyPrefix(method: string, opts: PrefixOptions = {}): Uint8Array | undefined {
  const budget = keyPrefixBudget(method);
  return budget === 0 ? undefined : generatePrefix(budget, opts);
}

/**
 * The prefix a key hands out for its setting: undefined for 'off' and for methods that get none;
 * a fresh draw for 'auto'; the pinned bytes otherwise (refused when longer than the salt).
 */
export function keyPrefixFor(
  method: string,
  setting: KeyPrefixSetting = 'auto',
  opts: PrefixOptions = {},
): Uint8Array | undefined {
  if (setting === 'off') return undefined;
  if (setting === 'auto') return drawKeyPrefix(method, opts);
  if (!isAeadMethodName(method)) return undefined;
  const saltSize = getAeadMethod(method).saltSize;
  if (setting.length > saltSize) {
    throw new ProtocolError(
      'ERR_KEY',
      `prefix of ${setting.length} bytes is longer than the ${saltSize}-byte salt of ${method}`,
    );
  }
  return setting.length === 0 ? undefined : setting;
}

/**
 * Parse an operator's prefix setting: "auto", "off", hex bytes (an even number of hex digits,
 * optionally after "0x": "160301"), or else Outline's URL form (percent-encoded UTF-8 of code
 * points 0..255, e.g. "POST%20" or "%16%03%01%00%C2%A8%01%01"; unescaped text stands for itself,
 * so text made only of hex digits needs one character escaped: "%63afe" is the text "cafe").
 */
export function parseKeyPrefixSetting(text: string): KeyPrefixSetting {
  const t = text.trim();
  if (t === 'auto' || t === 'off') return t;
  const hexBody = t.startsWith('0x') ? t.slice(2) : t;
  const hex = /^([0-9a-fA-F]{2})+$/.test(hexBody) ? hexBody : undefined;
  let bytes: Uint8Array;
  if (hex !== undefined) {
    bytes = Uint8Array.from(Buffer.from(hex, 'hex'));
  } else {
    let s: string;
    try {
      s = decodeURIComponent(text);
    } catch {
      throw new ProtocolError(
        'ERR_KEY',
        'prefix: bad percent-encoding (use auto, off, hex bytes or a URL-escaped string)',
      );
    }
    const codes = Array.from(s, (c) => c.codePointAt(0)!);
    if (codes.some((c) => c > 0xff)) {
      throw new ProtocolError(
        'ERR_KEY',
        'prefix: a character above U+00FF (each character must stand for one byte)',
      );
    }
    bytes = Uint8Array.from(codes);
  }
  if (bytes.length === 0) throw new ProtocolError('ERR_KEY', 'prefix: empty (use off for none)');
  if (bytes.length > 32)
    throw new ProtocolError('ERR_KEY', `prefix: ${bytes.length} bytes, longer than any salt (32)`);
  return bytes;
}

/** Outline's JSON form: one character per byte (code points 0..255). */
export function outlinePrefixString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

/** The stored (and API/CLI display) form of a setting: "auto", "off" or lowercase hex bytes. */
export function formatKeyPrefixSetting(setting: KeyPrefixSetting): string {
  return typeof setting === 'string' ? setting : Buffer.from(setting).toString('hex');
}

/** A stored setting back; absent or damaged text counts as 'auto' (the default). */
export function storedKeyPrefixSetting(text: string | undefined): KeyPrefixSetting {
  if (text === undefined) return 'auto';
  try {
    return parseKeyPrefixSetting(text);
  } catch {
    return 'auto';
  }
}

/**
 * Throws ERR_KEY unless a key of `method` may carry `setting`: a pinned prefix needs a SIP004
 * method and must leave KEY_PREFIX_MIN_RANDOM random salt bytes (so at most 16 bytes for 32-byte
 * salts, 8 for aes-192-gcm; aes-128-gcm and 2022 keys take none). 'auto' and 'off' fit every key.
 */
export function checkKeyPrefixSetting(method: string, setting: KeyPrefixSetting): void {
  if (typeof setting === 'string') return;
  if (!isAeadMethodName(method)) {
    throw new ProtocolError('ERR_KEY', `prefix: ${method} keys take no prefix (use auto or off)`);
  }
  const room = getAeadMethod(method).saltSize - KEY_PREFIX_MIN_RANDOM;
  if (setting.length > room) {
    throw new ProtocolError(
      'ERR_KEY',
      room <= 0
        ? `prefix: ${method} keys take no prefix (a 16-byte salt has no room beside ${KEY_PREFIX_MIN_RANDOM} random bytes; use auto or off)`
        : `prefix: ${setting.length} bytes, but ${method} keys take at most ${room} (${KEY_PREFIX_MIN_RANDOM} of the ${room + KEY_PREFIX_MIN_RANDOM}-byte salt stay random)`,
    );
  }
}

/** Parse, check against `method` and give the stored form: what the API and the CLI store. */
export function keyPrefixSettingFor(method: string, text: string): string {
  const setting = parseKeyPrefixSetting(text);
  checkKeyPrefixSetting(method, setting);
  return formatKeyPrefixSetting(setting);
}
