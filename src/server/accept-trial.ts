/**
 * The SIP004 key trial at the accept (native/tcp_accept.cc acceptKeys): the addon tries the
 * port's keys on a connection's first read before JS hears of it, and hands the result over in
 * the same call (the index of the key whose tag verified, its decoder, and the plaintext of the
 * rest of that read). The connection's own trial (connection.ts) then walks the keys in its
 * usual order, with the usual counts, but asks this result instead of testing each key: no
 * sip004Open or decode call per connection, and no call per wrong key.
 *
 * Only for a key set of SIP004 keys alone (2022 keys and identity groups are tried first and
 * would not be), and only for a first read that holds every key's salt and length chunk; any
 * other connection is tried in JS as before. Every outcome is the one the JS trial reaches on the
 * same bytes (tests: test/server/accept-trial.test.ts).
 *
 * docs/architecture.md ("Find the key") says where this sits in a connection's flow;
 * LADDER_ACCEPT_TRIAL=0 turns it off.
 */
import { AeadDecoder } from '../protocol/shadowsocks/aead.js';
import { NativeDecoder } from '../protocol/shadowsocks/cipher-native.js';
import { cipher } from '../protocol/shadowsocks/cipher.js';
import { NATIVE_METHOD } from '../protocol/shadowsocks/native.js';
import type { AcceptedTrial } from '../transport/native-stream.js';
import type { KeyEntry, KeyRing } from './keys.js';
import { envSwitch } from '../shared/env.js';

/** The trial at the accept is on unless LADDER_ACCEPT_TRIAL=0. */
export function acceptTrialFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_ACCEPT_TRIAL', env);
}

/** What a connection's trial asks (StreamInfo.trial): which key it is, and its opening. */
export interface PreTrial {
  /** The key whose tag verified; undefined: none of the keys did. */
  readonly key: KeyEntry | undefined;
  readonly open: AeadDecoder | 'bad-length' | undefined;
  /** The addon's lean-path checks passed and added the client salt (the trial must not check it again). */
  readonly saltChecked?: boolean;
}

/** Connections whose trial came from the accept (tests: the path is taken). */
let used = 0;
export function acceptTrialsUsed(): number {
  return used;
}
export function leanTrialUsed(): void {
  used++;
}

const NO_KEY = new Uint8Array(0);

/** The keys the addon tries, in its order (index -> entry), kept equal to the ring's. */
export class AcceptTrialKeys {
  readonly #set: (methods?: Int32Array, keys?: Uint8Array[]) => void;
  readonly #ring: KeyRing;
  #entries: readonly KeyEntry[] = [];
  /**
   * Keys that share their method and master key with another (two ids, one secret): which of
   * them the JS walk names depends on its own order (the IP's recent keys, by id), which the
   * addon's does not follow across a reorder, so the JS trial decides those connections.
   */
  #shared: ReadonlySet<KeyEntry> = new Set();
  #scheduled = false;
  #closed = false;

  /** `set` is the listener's acceptKeys. */
  constructor(ring: KeyRing, set: (methods?: Int32Array, keys?: Uint8Array[]) => void) {
    this.#ring = ring;
    this.#set = set;
    this.#load();
  }

  /**
   * The ring changed: the addon stops trying now (its list may be stale; connections meanwhile
   * are tried in JS), and gets the new list once this turn of the loop is over (one rebuild for
   * any number of changes in it).
   */
  changed(): void {
    if (this.#closed) return;
    this.#entries = [];
    this.#shared = new Set();
    this.#set();
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#closed) this.#load();
    });
  }

  close(): void {
    this.#closed = true;
  }

  #load(): void {
    const keys = this.#ring.sip004Only();
    // The addon's codecs only: a decoder it made is a NativeDecoder.
    if (!keys || keys.length === 0 || !cipher().sip004Open) return;
    try {
      this.#set(
        Int32Array.from(keys, (k) => NATIVE_METHOD[k.method.cipher]),
        keys.map((k) => k.masterKey),
      );
    } catch {
      return; // the addon refused the list (a method its OpenSSL lacks, say): the JS trial, as off
    }
    this.#entries = keys;
    const seen = new Map<string, KeyEntry>();
    const shared = new Set<KeyEntry>();
    for (const k of keys) {
      const id = `${k.method.cipher}/${k.masterKey.toString('hex')}`;
      const other = seen.get(id);
      if (other) shared.add(other).add(k);
      else seen.set(id, k);
    }
    this.#shared = shared;
  }

  /**
   * The key at `index` of the addon's list for a connection served without a PreTrial (the lean
   * path, lean-path.ts, which counts it with leanTrialUsed when it takes the connection);
   * undefined when the walk must name it (a shared secret) or the list is stale.
   */
  keyAt(index: number): KeyEntry | undefined {
    const key = this.#entries[index];
    return key && !this.#shared.has(key) ? key : undefined;
  }

  /** The connection's PreTrial from the addon's result; undefined when it did not try. */
  resolve(t: AcceptedTrial | undefined, first: Buffer | undefined): PreTrial | undefined {
    if (!t || !first) return undefined;
    if (t.index < 0) return (used++, { key: undefined, open: undefined });
    const key = this.#entries[t.index];
    if (!key || this.#shared.has(key)) return undefined;
    used++;
    if (t.codec === undefined || t.info === undefined) return { key, open: 'bad-length' };
    const chunks = new NativeDecoder(key.method.cipher, NO_KEY, {}, undefined, undefined, {
      codec: t.codec,
      info: t.info,
      after: t.after,
    });
    const salt = Buffer.from(first.subarray(0, key.method.saltSize));
    const open = new AeadDecoder(key.method, key.masterKey, { salt, chunks });
    // 1 or 3 (lean-path.ts): a connection the lean path left after the addon's checks (a limited key's).
    return t.checked === 1 || t.checked === 3 ? { key, open, saltChecked: true } : { key, open };
  }
}
