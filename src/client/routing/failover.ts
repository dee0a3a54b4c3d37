/**
 * D10/D15: a Dialer over several server endpoints that keeps out of residual blocks.
 *
 *   const dialer = new FailoverDialer({
 *     endpoints: [{ host, port: 8388 }, { host, port: 443 }, { host: other, port: 8388 }],
 *     dialerFor: (e) => new ShadowsocksDialer({ ...key, host: e.host, port: e.port }),
 *     clock,
 *   });
 *
 * Each dial goes to EndpointSelector.pick() (the first endpoint not in its residual period). A
 * dial attempt that fails or takes longer than `attemptTimeoutMs` (default 3 s: a null-routed
 * server never answers the SYN) marks that endpoint's 3-tuple and the next endpoint is tried at
 * once, with the same first data. After a successful dial the connection is watched without
 * consuming it: if we sent first data and nothing comes back within `stallMs` (default 4 s), or
 * the server resets before sending anything, the endpoint is marked too, so the NEXT connection
 * goes elsewhere (the censor's residual block would otherwise eat it). That connection itself is
 * not retried (its bytes are already on the wire).
 */
import type { SocksAddress } from '../../protocol/socks5/address.js';
import type { Clock, Timer } from '../../shared/clock.js';
import {
  UpstreamDialError,
  type DialedConnection,
  type DialHints,
  type Dialer,
  type FirstData,
} from '../../transport/dialer.js';
import { EndpointSelector, type Endpoint, type EndpointFailure } from './endpoints.js';

export interface FailoverDialerOptions {
  endpoints: readonly Endpoint[];
  dialerFor: (e: Endpoint) => Dialer;
  clock: Clock;
  /** Residual period to avoid a failed endpoint (default 180 s). */
  residualMs?: number;
  /** Give up on one endpoint's dial after this long (default 3 s; 0 disables). */
  attemptTimeoutMs?: number;
  /** No reply this long after our first data = stall (default 4 s; 0 disables). */
  stallMs?: number;
  /**
   * When every endpoint is avoided and the newest failure is at least this old (default 30 s),
   * one dial may try the endpoint whose residual ends first: when all endpoints fail together
   * the cause is more often the local network than a censor, and refusing for the whole
   * residual period (180 s) after a brief outage would strand the user.
   */
  lastResortAfterMs?: number;
  /**
   * Told about every endpoint failure (for logs/metrics; no destination in it), with the dial's
   * error for a connect failure (its TLS code says what to fix: dial-hint.ts).
   */
  onEndpointFailure?: (e: Endpoint, kind: EndpointFailure, err?: unknown) => void;
  /** Told when data first comes back through an endpoint on a connection. */
  onEndpointSuccess?: (e: Endpoint) => void;
  /** Use this selector (over the same endpoints) instead of a fresh one: shared memory, back-off. */
  selector?: EndpointSelector;
}

export class FailoverDialer implements Dialer {
  readonly selector: EndpointSelector;
  readonly #o: FailoverDialerOptions;
  readonly #dialers = new Map<Endpoint, Dialer>();

  constructor(opts: FailoverDialerOptions) {
    this.#o = opts;
    this.selector =
      opts.selector ??
      new EndpointSelector(opts.endpoints, {
        clock: opts.clock,
        ...(opts.residualMs !== undefined ? { residualMs: opts.residualMs } : {}),
      });
  }

  #dialer(e: Endpoint): Dialer {
    let d = this.#dialers.get(e);
    if (!d) this.#dialers.set(e, (d = this.#o.dialerFor(e)));
    return d;
  }

  #fail(e: Endpoint, kind: EndpointFailure, err?: unknown): void {
    this.selector.reportFailure(e, kind);
    this.#o.onEndpointFailure?.(e, kind, err);
  }

  async dial(
    dest: SocksAddress,
    firstData?: FirstData,
    signal?: AbortSignal,
    hints?: DialHints,
  ): Promise<DialedConnection> {
    let lastErr: unknown;
    for (let attempt = 0; attempt < this.#o.endpoints.length; attempt++) {
      // (attempt 0 may be a last-resort try of an avoided endpoint; see lastResortAfterMs)
      if (signal?.aborted) throw new UpstreamDialError('ERR_ABORTED', 'dial aborted');
      const p = this.selector.pick();
      let e = p.endpoint;
      if (!e) {
        const quietFor = this.#o.clock.now() - this.selector.lastFailureAt;
        if (attempt === 0 && quietFor >= (this.#o.lastResortAfterMs ?? 30_000)) {
          e = this.selector.soonestAvoided();
        } else {
          const retryAt = p.endpoint === undefined ? p.retryAt : this.#o.clock.now();
          const secs = Math.ceil((retryAt - this.#o.clock.now()) / 1000);
          // `dialled: false` when this call reached no server (logs say so, not "dial failed").
          throw Object.assign(
            new UpstreamDialError(
              'ERR_CONNECT',
              `every server endpoint is avoided after a block; the first is usable again in ${secs} s`,
              { cause: lastErr },
            ),
            { dialled: lastErr !== undefined },
          );
        }
      }
      const attemptCtl = new AbortController();
      const onOuterAbort = (): void => attemptCtl.abort();
      signal?.addEventListener('abort', onOuterAbort, { once: true });
      let timer: Timer | undefined;
      const timeoutMs = this.#o.attemptTimeoutMs ?? 3000;
      if (timeoutMs > 0) {
        timer = this.#o.clock.setTimeout(() => attemptCtl.abort(), timeoutMs);
        timer.unref?.();
      }
      try {
        const conn = await this.#dialer(e).dial(dest, firstData, attemptCtl.signal, hints);
        const sentFirst = firstData !== undefined;
        return this.#watch(e, conn, sentFirst);
      } catch (err) {
        if (signal?.aborted) throw err;
        lastErr = err;
        this.#fail(e, 'connect-failed', err);
      } finally {
        if (timer) this.#o.clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onOuterAbort);
      }
    }
    throw lastErr instanceof Error
      ? lastErr
      : new UpstreamDialError('ERR_CONNECT', 'no server endpoint could be reached');
  }

  /** Watch a fresh connection for a stall or an early reset, without consuming its data. */
  #watch(e: Endpoint, conn: DialedConnection, sentFirst: boolean): DialedConnection {
    let gotData = false;
    let timer: Timer | undefined;
    const stallMs = this.#o.stallMs ?? 4000;
    const clear = (): void => {
      if (timer) this.#o.clock.clearTimeout(timer);
      timer = undefined;
    };
    if (sentFirst && stallMs > 0) {
      timer = this.#o.clock.setTimeout(() => {
        timer = undefined;
        if (!gotData) this.#fail(e, 'stall');
      }, stallMs);
      timer.unref?.();
    }
    conn.socket.once('error', (err: NodeJS.ErrnoException) => {
      if (!gotData && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
        clear();
        this.#fail(e, 'reset');
      }
    });
    conn.socket.once('close', clear);
    const inner = conn.decode;
    const decode = (chunk: Buffer): Buffer | Buffer[] | undefined => {
      if (!gotData) {
        gotData = true;
        clear();
        this.selector.reportSuccess(e);
        this.#o.onEndpointSuccess?.(e);
      }
      return inner ? inner(chunk) : chunk;
    };
    // `native` passed on: after the first decoded bytes this watch has nothing left to see.
    return {
      socket: conn.socket,
      decode,
      ...(conn.encode ? { encode: conn.encode } : {}),
      ...(conn.native ? { native: conn.native } : {}),
    };
  }
}
