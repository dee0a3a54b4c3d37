/**
 * The enforcer's memory of every key's status, advanced by what changed (issue 14: one changed key
 * costs work for one key): key rows from a delta read (key-changes.ts), keys whose usage total in
 * their window moved, keys whose expiry passed (a min-heap of expiry times), and every key when the
 * server's default limit changed. Pure: the reads are the enforcer's. Equal to evaluateKeys at
 * every step (test/store/key-delta.test.ts).
 */
import { effectiveLimit, keyState, windowStart, type KeyStatus } from './policy.js';
import type { KeyChanges, KeyRecord, LimitPeriod, UsageTotals } from './types.js';

/** What one evaluation read: key changes, the default limit, usage totals per period in use. */
export interface BookRead {
  readonly changes: KeyChanges;
  readonly defaultLimit: number | null;
  readonly usage: ReadonlyMap<LimitPeriod, { start: number; totals: ReadonlyMap<string, UsageTotals> }>;
}

export interface BookStep {
  /** The statuses recomputed (changed keys, usage moved, expiry passed). */
  readonly statuses: readonly KeyStatus[];
  /** Ids that are no longer keys. */
  readonly removed: readonly string[];
  /** Every key was read (the caller reconciles what it serves with has()). */
  readonly full: boolean;
}

/** Earliest expiry first; entries whose key moved on are skipped when popped. */
class ExpiryHeap {
  readonly #h: { at: number; id: string }[] = [];
  push(at: number, id: string): void {
    const h = this.#h;
    h.push({ at, id });
    for (let i = h.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= h[i]!.at) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  /** Remove and return every entry due at `now`. */
  popDue(now: number): { at: number; id: string }[] {
    const h = this.#h;
    const out: { at: number; id: string }[] = [];
    while (h.length > 0 && h[0]!.at <= now) {
      out.push(h[0]!);
      const last = h.pop()!;
      if (h.length === 0) break;
      h[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.at < h[m]!.at) m = l;
        if (r < h.length && h[r]!.at < h[m]!.at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return out;
  }
}

export class KeyBook {
  #keys = new Map<string, KeyRecord>();
  #status = new Map<string, KeyStatus>();
  /** Per period: the window start and each key's bytes in it, as last read. */
  #used = new Map<LimitPeriod, { start: number; used: Map<string, number> }>();
  #periodKeys = new Map<LimitPeriod, number>();
  #expiry = new ExpiryHeap();
  /** The expiry each key is scheduled at (so a key is pushed once per expiry, not per touch). */
  #scheduled = new Map<string, number>();
  #defaultLimit: number | null | undefined;
  #list: KeyStatus[] | undefined;
  /** The keys version the book reflects (undefined before the first full read). */
  version: number | undefined;

  /** The periods whose usage the next step needs: those in use, and those of `changed` keys. */
  periods(changed: readonly KeyRecord[] | undefined): Set<LimitPeriod> {
    const out = new Set<LimitPeriod>();
    for (const [p, n] of this.#periodKeys) if (n > 0) out.add(p);
    for (const k of changed ?? []) out.add(k.limitPeriod);
    return out;
  }

  /** Advance by one read. `ignoreDeletes` breaks the delta on purpose (the tests' negative control). */
  step(read: BookRead, now: number, ignoreDeletes = false): BookStep {
    const touched = new Set<string>();
    const gone = new Set<string>();
    const { changes } = read;
    if (changes.full) {
      const next = new Set(changes.changed.map((k) => k.id));
      for (const id of this.#keys.keys()) if (!next.has(id)) gone.add(id);
      this.#keys = new Map();
      this.#status = new Map();
      this.#used = new Map();
      this.#periodKeys = new Map();
      this.#expiry = new ExpiryHeap();
      this.#scheduled = new Map();
    }
    if (!ignoreDeletes) {
      for (const id of changes.deleted) {
        const old = this.#keys.get(id);
        if (!old) continue;
        this.#count(old.limitPeriod, -1);
        this.#keys.delete(id);
        this.#status.delete(id);
        this.#scheduled.delete(id);
        gone.add(id);
      }
    }
    for (const k of changes.changed) {
      const old = this.#keys.get(k.id);
      if (old) this.#count(old.limitPeriod, -1);
      this.#count(k.limitPeriod, 1);
      this.#keys.set(k.id, k);
      touched.add(k.id);
    }
    const removed = [...gone].filter((id) => !this.#keys.has(id));
    this.version = changes.version;
    if (read.defaultLimit !== this.#defaultLimit) {
      this.#defaultLimit = read.defaultLimit;
      for (const id of this.#keys.keys()) touched.add(id);
    }
    for (const [period, { start, totals }] of read.usage) {
      const used = new Map<string, number>();
      for (const [id, t] of totals) used.set(id, t.up + t.down);
      const was = this.#used.get(period);
      if (was?.start !== start) this.#list = undefined; // the list shows each period's window start
      const prev = was?.used;
      if (prev) {
        for (const [id, u] of used) if (prev.get(id) !== u) touched.add(id);
        for (const id of prev.keys()) if (!used.has(id)) touched.add(id);
      }
      this.#used.set(period, { start, used });
    }
    for (const p of this.#used.keys()) if (!this.#periodKeys.get(p)) this.#used.delete(p);
    for (const { at, id } of this.#expiry.popDue(now)) {
      if (this.#scheduled.get(id) !== at) continue;
      this.#scheduled.delete(id);
      touched.add(id);
    }
    const statuses: KeyStatus[] = [];
    for (const id of touched) {
      const s = this.#evaluate(id, now);
      if (s) statuses.push(s);
    }
    if (statuses.length > 0 || removed.length > 0) this.#list = undefined;
    return { statuses, removed, full: changes.full };
  }

  has(id: string): boolean {
    return this.#keys.has(id);
  }

  /** The store is unreachable: only expiry (no database needed) moves keys. */
  expire(now: number): BookStep {
    const statuses: KeyStatus[] = [];
    for (const { at, id } of this.#expiry.popDue(now)) {
      if (this.#scheduled.get(id) !== at) continue;
      this.#scheduled.delete(id);
      const s = this.#evaluate(id, now);
      if (s) statuses.push(s);
    }
    if (statuses.length > 0) this.#list = undefined;
    return { statuses, removed: [], full: false };
  }

  /** Every key's status, in listing order, with each period's window start as last read. */
  get statuses(): KeyStatus[] {
    if (this.#list) return this.#list;
    const starts = new Map([...this.#used].map(([p, u]) => [p, u.start]));
    this.#list = [...this.#status.values()].map((s) => {
      const start = starts.get(s.key.limitPeriod) ?? s.windowStart;
      return start === s.windowStart ? s : { ...s, windowStart: start };
    });
    return this.#list;
  }

  #count(period: LimitPeriod, d: number): void {
    this.#periodKeys.set(period, (this.#periodKeys.get(period) ?? 0) + d);
  }

  #evaluate(id: string, now: number): KeyStatus | undefined {
    const key = this.#keys.get(id);
    if (!key) return undefined;
    const w = this.#used.get(key.limitPeriod);
    const usedBytes = w?.used.get(id) ?? 0;
    const limitBytes = effectiveLimit(key, { accessKeyDataLimitBytes: this.#defaultLimit ?? null });
    const state = keyState(key, usedBytes, limitBytes, now);
    const s: KeyStatus = {
      key,
      state,
      usedBytes,
      limitBytes,
      windowStart: w?.start ?? windowStart(key.limitPeriod, now),
    };
    this.#status.set(id, s);
    if (key.expiresAt !== null && key.expiresAt > now && this.#scheduled.get(id) !== key.expiresAt) {
      this.#scheduled.set(id, key.expiresAt);
      this.#expiry.push(key.expiresAt, id);
    }
    return s;
  }
}
