import type { RuntimeKey, ServerControl } from '../shared/control.js';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { isStoreUnavailable } from './health.js';
import type { CachedKey } from './key-cache.js';
import { evaluateKeys, type KeyStatus } from './policy.js';
import type { Store } from './types.js';

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
}

/**
 * Keeps the data plane's key set equal to the usable keys in the store: enabled, not expired, under
 * their limit. Runs every `intervalMs` and on demand (`refresh()` after an API change), so a
 * revoked or exhausted key stops working for new connections at once and its open connections are
 * closed by the data plane. While the store is unreachable nothing changes: the node keeps the
 * keys (and the revocations) it last applied.
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
  #chain: Promise<KeyStatus[]> = Promise.resolve([]);
  #queued: Promise<KeyStatus[]> | undefined;
  /** The usable keys the control has now, by id. */
  #active = new Map<string, RuntimeKey & { port: number }>();
  #last: KeyStatus[] = [];

  constructor(opts: EnforcerOptions) {
    this.#store = opts.store;
    this.#control = opts.control;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? silentLogger;
    this.#intervalMs = opts.intervalMs ?? 2000;
    this.#onEvaluate = opts.onEvaluate;
    this.#onActiveChange = opts.onActiveChange;
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
    return this.#last;
  }

  /**
   * Re-evaluate now. Calls are serialized; calls made while one evaluation is already waiting to
   * start share it (it has not read the store yet, so it sees every change made before the call).
   */
  refresh(): Promise<KeyStatus[]> {
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
          // An outage is the store's to log (once); the keys in force stay until it is back.
          if (!isStoreUnavailable(err))
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

  async #evaluate(): Promise<KeyStatus[]> {
    const now = this.#clock.now();
    let statuses: KeyStatus[];
    try {
      statuses = await evaluateKeys(this.#store, now);
    } catch (err) {
      // Store unreachable: expiry needs no database, so keys that expire meanwhile still stop
      // (from the last statuses); usage and changes wait for the store.
      if (isStoreUnavailable(err) && this.#last.length > 0) {
        await this.#apply(
          this.#last.map((st) =>
            st.state === 'active' && st.key.expiresAt !== null && st.key.expiresAt <= now
              ? { ...st, state: 'expired' as const }
              : st,
          ),
        );
      }
      throw err;
    }
    return this.#apply(statuses);
  }

  async #apply(statuses: KeyStatus[]): Promise<KeyStatus[]> {
    // The control gets what changed, not the whole set: one changed key costs work for one key
    // in the data plane (and in each of its workers). `port` rides along for controls that serve
    // several ports (a single data plane ignores it).
    const next = new Map<string, RuntimeKey & { port: number }>();
    const upsert: (RuntimeKey & { port: number })[] = [];
    for (const s of statuses) {
      if (s.state !== 'active') continue;
      const k = { id: s.key.id, method: s.key.method, secret: s.key.secret, port: s.key.port };
      next.set(k.id, k);
      const old = this.#active.get(k.id);
      if (!old || old.method !== k.method || old.secret !== k.secret || old.port !== k.port) upsert.push(k);
    }
    const remove: string[] = [];
    for (const id of this.#active.keys()) if (!next.has(id)) remove.push(id);
    if (upsert.length > 0 || remove.length > 0) {
      if (this.#control.applyKeyDelta) await this.#control.applyKeyDelta({ upsert, remove });
      else this.#control.setKeys([...next.values()]);
      const byId = remove.length > 0 ? new Map(statuses.map((s) => [s.key.id, s])) : undefined;
      for (const id of remove) {
        this.#control.closeKeyConnections(id);
        this.#log.info({ keyId: id, state: byId?.get(id)?.state ?? 'deleted' }, 'access key stopped');
      }
      this.#active = next;
      this.#onActiveChange?.([...next.values()]);
    }
    this.#last = statuses;
    this.#onEvaluate?.(statuses);
    return statuses;
  }
}
