import { isProtocolError } from '../protocol/errors.js';
import { AeadDecoder, sip004HeadMatches, sip004Open } from '../protocol/shadowsocks/aead.js';
import type { PreTrial } from './accept-trial.js';
import type { KeyEntry } from './keys.js';

/**
 * SIP004 trial of one key on the first `head` bytes (salt + sealed length): the decoder past the
 * length chunk if `c` is this connection's key, 'bad-length' when it is but the length is
 * invalid, undefined when it is not. `nativeTrial`: the addon's test and decoder in one call (one
 * subkey derivation), where the backend has it (LADDER_NATIVE_TRIAL=0 turns it off). `pre`: the
 * trial the addon made at the accept, which answers for every SIP004 key (accept-trial.ts).
 */
export function openSip004(
  c: KeyEntry,
  head: Buffer,
  nativeTrial: boolean,
  pre?: PreTrial,
): AeadDecoder | 'bad-length' | undefined {
  if (pre) return pre.key === c ? pre.open : undefined;
  const opened = nativeTrial ? sip004Open(c.method, c.masterKey, head) : undefined;
  if (opened !== undefined) return opened === 'wrong-key' ? undefined : opened;
  // A cheap test first (native: no decoder, no exception per wrong key); the decoder only
  // for the key that matches, or for every key without the addon.
  if (sip004HeadMatches(c.method, c.masterKey, head) === false) return undefined;
  const dec = new AeadDecoder(c.method, c.masterKey);
  try {
    dec.push(head);
  } catch (err) {
    if (!isProtocolError(err) || err.code !== 'ERR_PAYLOAD_SIZE') return undefined; // wrong key
    return 'bad-length'; // the tag verified, so this is the key, but the length is invalid
  }
  return dec;
}
