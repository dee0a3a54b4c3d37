import type { RuntimeKey, ServerControl } from '../shared/control.js';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { isStoreUnavailable } from './health.js';
import type { CachedKey } from './key-cache.js';
import { isTooManyClients } from './pg-pool.js';
import { KeyBook, type BookStep } from './key-book.js';
import { windowStart, type KeyStatus } from './policy.js';
import type { KeyChanges, KeyRecord, LimitPeriod, Store, UsageTotals } from './types.js';

/** What the data plane gets of a usable key: its limits only when it has them (none costs nothing). */
export function runtimeKey(key: KeyRecord): CachedKey {
  const k: { -readonly [P in keyof CachedKey]: CachedKey[P] } = {
    id: key.id,
    method: key.method,
    secret: key.secret,
    port: key.port,
  };
  if (key.deviceLimit != null) k.deviceLimit = key.deviceLimit;
  if (key.speedLimit != null) k.speedLimit = key.speedLimit;
  return k;
}

/** Equal for the data plane: a changed limit (set, changed or removed) is a change to hand on. */
function sameRuntimeKey(a: CachedKey, b: CachedKey): boolean {
  return (
    a.method === b.method &&
    a.secret === b.secret &&
    a.port === b.port &&
    a.deviceLimit === b.deviceLimit &&
    a.speedLimit === b.speedLimit
  );
}

/** The delta reads' safety net: every key is read again this often (and after an outage or a reconnect). */
export const FULL_READ_MS = 300_000;

export interface EnforcerOptions {
  store: Store;
  control: ServerControl;
  clock?: Clock;
  logger?: Logger;
  /** Re-evaluation period (default 2 s). Also picks up changes another process made to the store. */
  intervalMs?: number;
  /** Called after every evaluation (e.g. to export key counts by state). */
  onEvaluate?: (statuses: readonly KeyStatus[]) => void;
  /** The keys the control serves already (a node started from its key cache while the store is down). */
  initialActive?: readonly CachedKey[];
  /** Called with the whole usable set each time it changed (to keep the node's key cache). */
  onActiveChange?: (active: readonly CachedKey[]) => void;
  /** Read every key at least this often (default FULL_READ_MS); between, only changed keys. */
  fullReadMs?: number;
  /** Test seam: a broken delta (deletions ignored), for the equivalence test's negative control. */
  testing?: { ignoreDeletes?: boolean };
}

/**
 * Keeps the data plane's key set equal to the usable keys in the store: enabled, not expired, under
 * their limit. Runs every `intervalMs` and on demand (`refresh()` after an API change), so a
 * revoked or exhausted key stops working for new connections at once and its open connections are
 * closed by the data plane. While the store is unreachable nothing changes: the node keeps the
 * keys (and the revocations) it last applied.
 *
 * With a store that reads key changes by version (Store.keyChanges: the Kysely store), an
 * evaluation reads only the keys changed since the version it applied, and recomputes only those,
 * the keys whose usage total moved, and the keys whose expiry passed (KeyBook). Every key is read
 * again every `fullReadMs`, after the store was unreachable, and on `refresh({ full: true })`.
 */
export class KeyEnforcer {
  readonly #store: Store;
  readonly #control: ServerControl;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #onEvaluate: ((statuses: readonly KeyStatus[]) => void) | undefined;
  readonly #onActiveChange: ((active: readonly CachedKey[]) => void) | undefined;
  #timer: Timer | undefined;
  #running = false;
  #chain: Promise<readonly KeyStatus[]> = Promise.resolve([]);
  #queued: Promise<readonly KeyStatus[]> | undefined;
  /** The usable keys the control has now, by id. */
  #active = new Map<string, RuntimeKey & { port: number }>();
  #book = new KeyBook();
  readonly #fullReadMs: number;
  readonly #ignoreDeletes: boolean;
  #fullAt = -Infinity;
  #needFull = true;
  /** Evaluations that read every key / only changes (for tests and the bench). */
  readonly reads = { full: 0, delta: 0 };

  constructor(opts: EnforcerOptions) {
    this.#store = opts.store;
    this.#control = opts.control;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? silentLogger;
    this.#intervalMs = opts.intervalMs ?? 2000;
    this.#onEvaluate = opts.onEvaluate;
    this.#onActiveChange = opts.onActiveChange;
    this.#fullReadMs = opts.fullReadMs ?? FULL_READ_MS;
    this.#ignoreDeletes = opts.testing?.ignoreDeletes === true;
    for (const k of opts.initialActive ?? []) this.#active.set(k.id, k);
  }

  /**
   * Evaluate now and then every interval. Resolves after the first evaluation; with the store
   * unreachable (StoreHealth has said so) the keys the control has stay, and the timer retries.
   */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      await this.refresh();
    } catch (err) {
      if (!isStoreUnavailable(err)) {
        this.#running = false;
        throw err;
      }
    }
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The statuses from the latest evaluation. */
  get statuses(): readonly KeyStatus[] {
    return this.#book.statuses;
  }

  /**
   * Re-evaluate now. Calls are serialized; calls made while one evaluation is already waiting to
   * start share it (it has not read the store yet, so it sees every change made before the call).
   * `full`: read every key, not only the changes (after a missed-notification window).
   */
  refresh(opts?: { full?: boolean }): Promise<readonly KeyStatus[]> {
    if (opts?.full === true) this.#needFull = true;
    if (this.#queued) return this.#queued;
    const run = this.#chain
      .catch(() => [])
      .then(() => {
        this.#queued = undefined;
        return this.#evaluate();
      });
    this.#queued = run;
    this.#chain = run;
    return run;
  }

  #schedule(): void {
    if (!this.#running) return;
    const t = this.#clock.setTimeout(() => {
      this.refresh()
        .catch((err: unknown) => {
          // An outage is the store's to log (once), and so is PostgreSQL out of connections (the
          // pool says it once a minute); the keys in force stay, and the next evaluation retries.
          // Stopped meanwhile (a server's stop closes the store under an evaluation): not a fault.
          if (this.#running && !isStoreUnavailable(err) && !isTooManyClients(err))
            this.#log.warn(
              { err: err instanceof Error ? err.message : String(err) },
              'key evaluation failed',
            );
        })
        .finally(() => this.#schedule());
    }, this.#intervalMs);
    t.unref?.();
    this.#timer = t;
  }

  async #evaluate(): Promise<readonly KeyStatus[]> {
    const now = this.#clock.now();
    let step: BookStep;
    try {
      step = this.#book.step(await this.#read(now), now, this.#ignoreDeletes);
    } catch (err) {
      // Store unreachable: expiry needs no database, so keys that expire meanwhile still stop;
      // usage and changes wait for the store, which is then read in full.
      if (isStoreUnavailable(err)) {
        this.#needFull = true;
        await this.#apply(this.#book.expire(now));
      }
      throw err;
    }
    return this.#apply(step);
  }

  /** Everything one evaluation needs from the store; nothing in memory changes until it all arrived. */
  async #read(now: number): Promise<Parameters<KeyBook['step']>[0]> {
    const store = this.#store;
    const since = this.#book.version;
    const full =
      !store.keyChanges || since === undefined || this.#needFull || now - this.#fullAt >= this.#fullReadMs;
    // One store call at a time: each takes a pool connection, and an evaluation that needs two at
    // once starves when the database has no connection to spare (issue 16: a fleet near
    // max_connections, where a node whose pool held one idle connection could never get a second,
    // failed every evaluation, and never applied a change set). Sequential, it needs one.
    const changes: KeyChanges = store.keyChanges
      ? await store.keyChanges(full ? undefined : since)
      : { version: 0, full: true, changed: await store.listKeys(), deleted: [] };
    const settings = await store.getSettings();
    const periods = changes.full
      ? new Set(changes.changed.map((k) => k.limitPeriod))
      : this.#book.periods(changes.changed);
    const usage = new Map<LimitPeriod, { start: number; totals: Map<string, UsageTotals> }>();
    for (const period of periods) {
      const start = windowStart(period, now);
      usage.set(period, { start, totals: await store.usageSince(start) });
    }
    const defaultLimit = settings.accessKeyDataLimitBytes;
    if (changes.full) {
      this.#needFull = false;
      this.#fullAt = now;
      this.reads.full++;
    } else this.reads.delta++;
    return { changes, defaultLimit, usage };
  }

  async #apply(step: BookStep): Promise<readonly KeyStatus[]> {
    // The control gets what changed, not the whole set: one changed key costs work for one key
    // in the data plane (and in each of its workers). `port` rides along for controls that serve
    // several ports (a single data plane ignores it).
    const upsert: (RuntimeKey & { port: number })[] = [];
    const remove = new Map<string, string>(
      step.removed.filter((id) => this.#active.has(id)).map((id) => [id, 'deleted']),
    );
    for (const s of step.statuses) {
      const old = this.#active.get(s.key.id);
      if (s.state !== 'active') {
        if (old) remove.set(s.key.id, s.state);
        continue;
      }
      const k = runtimeKey(s.key);
      if (!old || !sameRuntimeKey(old, k)) upsert.push(k);
    }
    // A full read: also any key served that the store does not have (a start from the key cache).
    if (step.full)
      for (const id of this.#active.keys())
        if (!this.#book.has(id) && !remove.has(id)) remove.set(id, 'deleted');
    if (upsert.length > 0 || remove.size > 0) {
      for (const k of upsert) this.#active.set(k.id, k);
      for (const id of remove.keys()) this.#active.delete(id);
      if (this.#control.applyKeyDelta)
        await this.#control.applyKeyDelta({ upsert, remove: [...remove.keys()] });
      else this.#control.setKeys([...this.#active.values()]);
      for (const [id, state] of remove) {
        this.#control.closeKeyConnections(id);
        this.#log.info({ keyId: id, state }, 'access key stopped');
      }
      this.#onActiveChange?.([...this.#active.values()]);
    }
    const statuses = this.#book.statuses;
    this.#onEvaluate?.(statuses);
    return statuses;
  }
}
