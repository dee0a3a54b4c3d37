/**
 * Keeps a dynamic key fresh: fetched at start, again every `refreshMs` (default 10 min), sooner
 * when the tunnel fails (`refreshSoon`, at most once per `minRefetchMs`, default 30 s), and every
 * `errorRetryMs` (default 60 s) while the server refuses the key (`error` body) or cannot be
 * reached. Each good body goes to `onBody`; a fetch that fails keeps the last good endpoints (the
 * key server may be blocked while the proxy servers are not).
 *
 *   const src = new DynamicKeySource({ key: parseDynamicKeyUrl(text), clock, onBody, onFetchError });
 *   const first = await src.start();    // throws when the first fetch or parse fails
 *   src.refreshSoon();                  // e.g. every endpoint just failed
 *   src.close();
 */
import type { Clock, Timer } from '../shared/clock.js';
import { DynamicKeyFetchError, fetchDynamicKey, type DynamicKeyUrl } from './dynamic-fetch.js';
import { parseDynamicKeyBody, refusalText, type DynamicKeyBody } from './dynamic-key.js';

export const DEFAULT_REFRESH_MS = 10 * 60_000;
export const DEFAULT_ERROR_RETRY_MS = 60_000;
export const DEFAULT_MIN_REFETCH_MS = 30_000;

export interface DynamicKeySourceOptions {
  key: DynamicKeyUrl;
  clock: Clock;
  /** Fetch the body (default dynamic-fetch.ts; tests inject). */
  fetch?: (key: DynamicKeyUrl) => Promise<string>;
  refreshMs?: number;
  errorRetryMs?: number;
  minRefetchMs?: number;
  /** A body was fetched and read (endpoints or the server's error). */
  onBody?: (body: DynamicKeyBody) => void;
  /** A later fetch failed (the last good body stays in use). */
  onFetchError?: (err: Error) => void;
}

export interface DynamicKeySourceStatus {
  lastFetchAt?: number;
  lastOkAt?: number;
  lastError?: string;
  /** The server's refusal, in plain words, while the key is refused. */
  refusal?: string;
  format?: string;
  fetches: number;
}

export class DynamicKeySource {
  readonly #o: DynamicKeySourceOptions;
  #timer: Timer | undefined;
  #nextAt = Infinity;
  #inFlight: Promise<DynamicKeyBody> | undefined;
  #closed = false;
  readonly #st: DynamicKeySourceStatus = { fetches: 0 };

  constructor(opts: DynamicKeySourceOptions) {
    this.#o = opts;
  }

  /** The server's refusal in plain words, while the key is refused (for the "no answer" lines). */
  get refusal(): string | undefined {
    return this.#st.refusal;
  }

  status(): DynamicKeySourceStatus {
    return { ...this.#st };
  }

  /** First fetch: resolves with the body or throws (one-line errors). Schedules the next. */
  async start(): Promise<DynamicKeyBody> {
    const body = await this.#fetch();
    this.#schedule(body.kind === 'error' ? (this.#o.errorRetryMs ?? DEFAULT_ERROR_RETRY_MS) : undefined);
    return body;
  }

  /** Fetch again soon (the tunnel is failing), unless one was made within minRefetchMs. */
  refreshSoon(): void {
    if (this.#closed || this.#inFlight) return;
    const now = this.#o.clock.now();
    const since = now - (this.#st.lastFetchAt ?? -Infinity);
    const min = Math.min(this.#o.minRefetchMs ?? DEFAULT_MIN_REFETCH_MS, this.#o.refreshMs ?? Infinity);
    const at = now + Math.max(0, min - since);
    // Never later than a fetch already due.
    if (at < this.#nextAt) this.#schedule(at - now);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(ms?: number): void {
    if (this.#closed) return;
    if (this.#timer) this.#o.clock.clearTimeout(this.#timer);
    const delay = ms ?? this.#o.refreshMs ?? DEFAULT_REFRESH_MS;
    this.#nextAt = this.#o.clock.now() + delay;
    const retry = this.#o.errorRetryMs ?? DEFAULT_ERROR_RETRY_MS;
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#nextAt = Infinity;
      this.#fetch().then(
        (body) => this.#schedule(body.kind === 'error' ? retry : undefined),
        (err: Error) => {
          this.#o.onFetchError?.(err);
          this.#schedule(err instanceof DynamicKeyFetchError && err.permanent ? undefined : retry);
        },
      );
    }, delay);
    this.#timer.unref?.();
  }

  #fetch(): Promise<DynamicKeyBody> {
    if (this.#inFlight) return this.#inFlight;
    const p = this.#fetchOnce();
    this.#inFlight = p;
    p.then(
      () => undefined,
      () => undefined,
    ).finally(() => {
      if (this.#inFlight === p) this.#inFlight = undefined;
    });
    return p;
  }

  async #fetchOnce(): Promise<DynamicKeyBody> {
    {
      this.#st.lastFetchAt = this.#o.clock.now();
      this.#st.fetches++;
      try {
        const text = await (this.#o.fetch ?? ((k) => fetchDynamicKey(k)))(this.#o.key);
        const body = parseDynamicKeyBody(text);
        this.#st.lastOkAt = this.#o.clock.now();
        delete this.#st.lastError;
        if (body.kind === 'error') {
          this.#st.refusal = refusalText(body);
          delete this.#st.format;
        } else {
          delete this.#st.refusal;
          this.#st.format = body.format;
        }
        if (!this.#closed) this.#o.onBody?.(body);
        return body;
      } catch (err) {
        this.#st.lastError = (err as Error).message;
        throw err;
      }
    }
  }
}
