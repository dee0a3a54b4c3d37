import { isProtocolError } from '../protocol/errors.js';
import type { AeadDecoder } from '../protocol/shadowsocks/aead.js';
import { Aead2022RequestDecoder } from '../protocol/shadowsocks/aead2022.js';
import type { Clock } from '../shared/clock.js';
import type { StreamInfo } from './connection-status.js';
import { failureStatus } from './connection-status.js';
import type { ConnectionStatus } from './events.js';
import { isIdentityGroup, type AnyKeyEntry, type Key2022Entry, type KeyEntry, type KeyRing } from './keys.js';
import type { ReplayState } from './replay-state.js';
import { openSip004 } from './sip004-trial.js';

/** What the key trial needs from the server (connection.ts ConnectionContext extends it). */
export interface KeyTrialContext {
  readonly clock: Clock;
  readonly keys: KeyRing;
  readonly replay: ReplayState;
  /** SIP004 key trial and decoder in one addon call (aead.ts sip004Open). */
  readonly nativeTrial?: boolean;
}

/**
 * The trial's decision. `key` set: it authenticated the connection at `at` (the caller reports
 * it), and the request goes on past the first `prefix` bytes with `decoder` (SIP004) or
 * `decoder2022`, unless `status` refuses it after all (an invalid SIP004 length). `key` unset:
 * refused with `status` before any key is reported (no key matched, a replayed salt, a 2022
 * fixed header that authenticated but is refused); `keyed`: a key verified before the refusal.
 */
export interface KeyTrial {
  readonly key: AnyKeyEntry | undefined;
  readonly status: ConnectionStatus | undefined;
  readonly at: number;
  readonly decoder: AeadDecoder | undefined;
  readonly decoder2022: Aead2022RequestDecoder<Key2022Entry> | undefined;
  readonly prefix: number;
  /** The 1-based trial position of the key, and whether it came from this IP's recent keys. */
  readonly tried: number;
  readonly recent: boolean;
  readonly keyed: boolean;
}

const refused = (status: ConnectionStatus, keyed = false): KeyTrial =>
  found(undefined, status, 0, undefined, undefined, 0, 0, false, keyed);

function found(
  key: AnyKeyEntry | undefined,
  status: ConnectionStatus | undefined,
  at: number,
  decoder: AeadDecoder | undefined,
  decoder2022: Aead2022RequestDecoder<Key2022Entry> | undefined,
  prefix: number,
  tried: number,
  recent: boolean,
  keyed = key !== undefined,
): KeyTrial {
  return { key, status, at, decoder, decoder2022, prefix, tried, recent, keyed };
}

/**
 * Find the key of a connection from its first bytes `buf`. Each candidate is tested exactly once
 * (`tried` holds those already tested), on exactly the bytes its edition needs (SIP004: salt +
 * sealed length; SIP022 §3.1.4: salt, identity header and sealed fixed header), as soon as that
 * many bytes have arrived; nothing is decided on fewer: undefined means wait for more bytes.
 * Order: SIP023 identity groups (O(1) each), 2022 single-user keys, then SIP004 keys by trial
 * decryption, recently used from this IP first. `trial`: the addon's trial at the accept.
 */
export function tryKeys(
  ctx: KeyTrialContext,
  ip: string,
  buf: Buffer,
  tried: Set<object>,
  trial: StreamInfo['trial'],
): KeyTrial | undefined {
  let waiting = false;
  const decided = ctx.keys.walk(ctx.keys.recentFor(ip), (c, position, recent) => {
    if (tried.has(c)) return undefined;
    if (c.probeLength > buf.length) {
      waiting = true;
      return undefined;
    }
    tried.add(c);
    if (isIdentityGroup(c)) {
      const dec = new Aead2022RequestDecoder<Key2022Entry>(c.method, {
        identity: c.table,
        salts: ctx.replay.salts2022,
      });
      return try2022(ctx, dec, c.probeLength, buf, position);
    }
    if (c.edition === 2022) {
      const dec = new Aead2022RequestDecoder<Key2022Entry>(c.method, {
        key: c.userKey,
        salts: ctx.replay.salts2022,
      });
      return try2022(ctx, dec, c.probeLength, buf, position, c);
    }
    const dec = openSip004(c, buf.subarray(0, c.probeLength), ctx.nativeTrial === true, trial);
    if (dec === undefined) return undefined;
    const checked = trial?.saltChecked === true; // the addon checked and added the salt already
    return onSip004Key(ctx, c, dec === 'bad-length' ? undefined : dec, buf, recent, position, checked);
  });
  return decided ?? (waiting ? undefined : refused('ERR_CIPHER'));
}

/**
 * Test one 2022 candidate on the first `prefix` bytes. Undefined when its tag (or identity) does
 * not match, so the next candidate is tried; else the decision: authenticated, or authenticated
 * and then refused (type, timestamp, replay) with the uniform reaction.
 */
function try2022(
  ctx: KeyTrialContext,
  dec: Aead2022RequestDecoder<Key2022Entry>,
  prefix: number,
  buf: Buffer,
  position: number,
  single?: Key2022Entry,
): KeyTrial | undefined {
  const now = ctx.clock.now();
  try {
    dec.push(buf.subarray(0, prefix), now);
  } catch (err) {
    if (!isProtocolError(err) || err.code === 'ERR_CIPHER' || err.code === 'ERR_SHORT_HEADER')
      return undefined;
    // The fixed header authenticated: this is the key, but the request is refused.
    return refused(failureStatus(err, 'fixed-header'), true);
  }
  if (!dec.authenticated) return undefined;
  ctx.replay.noteSalt2022();
  const k = single ?? dec.user;
  if (!k) return undefined;
  return found(k, undefined, now, undefined, dec, prefix, position, false);
}

/** SIP004 key `k` opened the stream; `dec` is its decoder, undefined when the length was invalid. */
function onSip004Key(
  ctx: KeyTrialContext,
  k: KeyEntry,
  dec: AeadDecoder | undefined,
  buf: Buffer,
  recent: boolean,
  position: number,
  saltChecked: boolean,
): KeyTrial {
  const salt = buf.subarray(0, k.method.saltSize);
  if (!saltChecked && ctx.replay.serverSalts.has(salt)) return refused('ERR_REPLAY_SERVER', true);
  if (!saltChecked && !ctx.replay.clientSalts.checkAndAdd(salt)) return refused('ERR_REPLAY_CLIENT', true);
  const status = dec ? undefined : 'ERR_PAYLOAD_SIZE';
  return found(k, status, ctx.clock.now(), dec, undefined, k.probeLength, position, recent);
}
