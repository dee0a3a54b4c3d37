/**
 * The transforms of a client stream once its key and request are known (connection.ts, for the
 * JS relay, UDP over TCP and inner Mux.Cool): decode what the client sends, encode what goes back
 * (2022: the response header first).
 */
import type { AeadDecoder } from '../protocol/shadowsocks/aead.js';
import { AeadEncoder } from '../protocol/shadowsocks/aead.js';
import { Aead2022ResponseEncoder, type Aead2022RequestDecoder } from '../protocol/shadowsocks/aead2022.js';
import type { SaltFilter } from '../protocol/shadowsocks/replay.js';
import type { Clock } from '../shared/clock.js';
import { failureStatus } from './connection-status.js';
import type { ConnectionStatus } from './events.js';
import type { AnyKeyEntry, Key2022Entry } from './keys.js';

export interface StreamCodec {
  decode: (chunk: Buffer) => Buffer[];
  encode: (chunk: Buffer) => Buffer;
}

/**
 * `dec` is the request's decoder (2022 for a 2022 key). A SIP004 encoder's salt joins
 * `serverSalts`. A chunk that fails to decode reports its status to `failed` and throws.
 */
export function streamCodec(
  k: AnyKeyEntry,
  dec: AeadDecoder | Aead2022RequestDecoder<Key2022Entry>,
  clock: Clock,
  serverSalts: SaltFilter,
  failed: (status: ConnectionStatus) => void,
): StreamCodec {
  let decode: (chunk: Buffer) => Buffer[];
  let encode: (chunk: Buffer) => Buffer;
  if (k.edition === 2022) {
    const d = dec as Aead2022RequestDecoder<Key2022Entry>;
    const encoder = new Aead2022ResponseEncoder(k.method, k.userKey, d.salt!);
    let first = true;
    // Stream reads are ours once read: payloads are opened in place (no output allocation).
    decode = (chunk) => d.pushInPlace(chunk, clock.now());
    encode = (chunk) => {
      if (!first) return encoder.encode(chunk);
      first = false;
      return encoder.encodeHeader(chunk, clock.now());
    };
  } else {
    const d = dec as AeadDecoder;
    const encoder = new AeadEncoder(k.method, k.masterKey);
    serverSalts.add(encoder.salt);
    decode = (chunk) => d.pushInPlace(chunk);
    encode = (chunk) => encoder.encode(chunk);
  }
  return {
    decode: (chunk) => {
      try {
        return decode(chunk);
      } catch (err) {
        failed(failureStatus(err, 'stream'));
        throw err;
      }
    },
    encode,
  };
}
