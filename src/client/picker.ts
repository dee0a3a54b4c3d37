/**
 * D9/D10: the client that picks what gets through. One Dialer over the endpoints a key offers
 * (raw Shadowsocks on several ports, WebSocket direct, WebSocket through a CDN), whose list can
 * be replaced while the proxy runs (a dynamic key re-fetched): connections already open keep the
 * dialer they were made with; the next ones use the new list.
 *
 *   const picker = new PickerDialer({ clock, memory, dialerFor: (ep) => createTunnelDialer(ep) });
 *   picker.setEndpoints(endpoints);     // again whenever the key changes
 *   picker.setRefusal('server says: Quota exceeded');   // a dynamic key's error: refuse, with it
 *
 * Choice: in order, trying the next at once when one fails to connect (3 s), and learning from
 * real connections (FailoverDialer's watch: a stall or a reset before any data marks the
 * endpoint, so the NEXT connection goes elsewhere). We do not race endpoints with the
 * application's data: that would send its request twice. No separate probe either: a probe needs
 * a destination, and a probe that trips the censor's first-packet rule (C6) costs the same
 * residual block as a real connection.
 *
 * Memory (picker-memory.ts, per network): what last carried data is used first (sticky); a
 * failed endpoint is avoided for the residual period (180 s: retrying inside it renews the
 * censor's block on the 3-tuple, C6/C4), doubled per failure in a row up to 30 min, so a
 * path blocked for good is retried rarely and a brief outage costs little.
 */
import { createHash } from 'node:crypto';
import type { SocksAddress } from '../protocol/socks5/address.js';
import type { Clock } from '../shared/clock.js';
import {
  UpstreamDialError,
  type DialedConnection,
  type DialHints,
  type Dialer,
  type FirstData,
} from '../transport/dialer.js';
import type { KeyEndpoint } from './key.js';
import { EndpointSelector, type EndpointFailure, type EndpointMemory } from './routing/endpoints.js';
import { FailoverDialer } from './routing/failover.js';

/** Longest avoidance after repeated failures. */
export const DEFAULT_BACKOFF_MAX_MS = 30 * 60_000;
/** Dialers of replaced endpoints kept (open connections may still use their pools). */
const MAX_RETIRED = 64;

export type EndpointKind = 'shadowsocks' | 'websocket' | 'grpc' | 'shadowtls';

export function endpointKind(e: KeyEndpoint): EndpointKind {
  return e.websocket ? 'websocket' : e.grpc ? 'grpc' : e.shadowTls ? 'shadowtls' : 'shadowsocks';
}

/** The path an endpoint takes (what a censor blocks): transport and address, no secret. */
export function pathKey(e: KeyEndpoint): string {
  if (e.websocket) return `ws ${e.websocket.url} ${e.websocket.host ?? ''}`;
  if (e.grpc) return `grpc ${e.host.toLowerCase()}:${e.port} ${e.grpc.host ?? ''} ${e.grpc.servername ?? ''}`;
  if (e.shadowTls) return `shadowtls ${e.host.toLowerCase()}:${e.port} ${e.shadowTls.sni.toLowerCase()}`;
  return `ss ${e.host.toLowerCase().replace(/^\[|\]$/g, '')}:${e.port}`;
}

/** Everything that makes a dialer different: path, method, password, prefix. */
function dialerKey(e: KeyEndpoint): string {
  const secret = createHash('sha256').update(`${e.method}\0${e.password}`).digest('hex').slice(0, 16);
  return `${pathKey(e)} ${secret} ${e.prefix ? Buffer.from(e.prefix).toString('hex') : ''} ${e.websocket?.mux ? 'mux' : ''}`;
}

export interface PickerOptions {
  clock: Clock;
  dialerFor: (e: KeyEndpoint) => Dialer;
  memory?: EndpointMemory;
  residualMs?: number;
  backoffMaxMs?: number;
  attemptTimeoutMs?: number;
  stallMs?: number;
  /** An endpoint failed: its position (1-based), kind, and how long it is now avoided. */
  onFailure?: (
    position: number,
    e: KeyEndpoint,
    kind: EndpointFailure,
    avoidMs: number,
    err?: unknown,
  ) => void;
  /** Data came back through an endpoint other than the one that last did. */
  onChoice?: (position: number, e: KeyEndpoint) => void;
  /** A dial found nothing usable (every endpoint avoided, refused or none). */
  onExhausted?: () => void;
}

export interface PickerEndpointStatus {
  position: number;
  kind: EndpointKind;
  tag?: string;
  port: number;
  state: 'in use' | 'ok' | 'avoided' | 'untried' | 'failed';
  avoidedForMs: number;
  failures: number;
  lastFail?: EndpointFailure;
  lastOkAt?: number;
}

export class PickerDialer implements Dialer {
  readonly #o: PickerOptions;
  readonly #memory: EndpointMemory;
  #endpoints: KeyEndpoint[] = [];
  #failover: FailoverDialer | undefined;
  #refusal: string | undefined;
  #chosen: KeyEndpoint | undefined;
  readonly #dialers = new Map<string, Dialer>();
  readonly #hops = new Map<string, KeyEndpoint>();

  constructor(opts: PickerOptions) {
    this.#o = opts;
    this.#memory = opts.memory ?? new Map();
  }

  get endpoints(): readonly KeyEndpoint[] {
    return this.#endpoints;
  }

  /** The endpoint that last carried data, if any. */
  get chosen(): KeyEndpoint | undefined {
    return this.#chosen;
  }

  get refusal(): string | undefined {
    return this.#refusal;
  }

  /** Refuse new connections with this message (a dynamic key's error); undefined lifts it. */
  setRefusal(message: string | undefined): void {
    this.#refusal = message;
  }

  /**
   * Replace the endpoints (an empty list refuses). Unchanged endpoints keep their dialers. Returns
   * the messages of endpoints left out because no dialer could be made for them (e.g. --shape
   * with a key prefix).
   */
  setEndpoints(eps: readonly KeyEndpoint[]): string[] {
    const next: KeyEndpoint[] = [];
    const skipped: string[] = [];
    const keep = new Set<string>();
    for (const e of eps) {
      const k = dialerKey(e);
      if (keep.has(k)) continue;
      if (!this.#dialers.has(k)) {
        try {
          this.#dialers.set(k, this.#o.dialerFor(e));
          this.#hops.set(k, e);
        } catch (err) {
          skipped.push((err as Error).message);
          continue;
        }
      }
      keep.add(k);
      next.push(this.#hops.get(k)!);
    }
    // Dialers no longer offered stay (bounded) for the connections that may still use them.
    for (const [k, ep] of this.#hops) {
      if (this.#hops.size <= MAX_RETIRED + keep.size) break;
      if (keep.has(k)) continue;
      (ep.nextHop as { close?: () => void } | undefined)?.close?.();
      this.#hops.delete(k);
      this.#dialers.delete(k);
    }
    this.#endpoints = next;
    // A re-fetched key may offer the same path as a new endpoint (an 'auto' prefix is drawn per
    // fetch): the path in use stays the one in use.
    const chosen = this.#chosen;
    if (chosen && !next.includes(chosen)) this.#chosen = next.find((e) => pathKey(e) === pathKey(chosen));
    this.#failover = next.length === 0 ? undefined : this.#buildFailover(next);
    return skipped;
  }

  #buildFailover(eps: KeyEndpoint[]): FailoverDialer {
    const o = this.#o;
    const selector = new EndpointSelector(eps, {
      clock: o.clock,
      memory: this.#memory,
      keyOf: (e) => pathKey(e as KeyEndpoint),
      sticky: true,
      backoffMaxMs: o.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS,
      ...(o.residualMs !== undefined ? { residualMs: o.residualMs } : {}),
    });
    return new FailoverDialer({
      endpoints: eps,
      selector,
      clock: o.clock,
      dialerFor: (e) => this.#dialers.get(dialerKey(e as KeyEndpoint))!,
      ...(o.attemptTimeoutMs !== undefined ? { attemptTimeoutMs: o.attemptTimeoutMs } : {}),
      ...(o.stallMs !== undefined ? { stallMs: o.stallMs } : {}),
      onEndpointFailure: (e, kind, err) => {
        const ep = e as KeyEndpoint;
        // The selector has just set the avoidance; report what it chose.
        const rec = this.#memory.get(pathKey(ep));
        const avoidMs = Math.max(0, (rec?.avoidUntil ?? 0) - o.clock.now());
        if (this.#chosen === ep) this.#chosen = undefined;
        o.onFailure?.(eps.indexOf(ep) + 1, ep, kind, avoidMs, err);
      },
      onEndpointSuccess: (e) => {
        const ep = e as KeyEndpoint;
        if (this.#chosen === ep) return;
        this.#chosen = ep;
        o.onChoice?.(eps.indexOf(ep) + 1, ep);
      },
    });
  }

  async dial(
    dest: SocksAddress,
    firstData?: FirstData,
    signal?: AbortSignal,
    hints?: DialHints,
  ): Promise<DialedConnection> {
    const f = this.#failover;
    if (this.#refusal !== undefined || !f) {
      this.#o.onExhausted?.();
      // Nothing was dialled: the log says so (tunnel.ts), not "tunnel dial failed".
      throw Object.assign(
        new UpstreamDialError(
          'ERR_CONNECT',
          this.#refusal !== undefined
            ? `the key's server refuses this key (${this.#refusal})`
            : 'the key offers no usable server endpoint now',
        ),
        { dialled: false },
      );
    }
    try {
      return await f.dial(dest, firstData, signal, hints);
    } catch (err) {
      if (!signal?.aborted) this.#o.onExhausted?.();
      throw err;
    }
  }

  status(): PickerEndpointStatus[] {
    const f = this.#failover;
    if (!f) return [];
    return f.selector.status().map((s, i) => {
      const ep = s.endpoint as KeyEndpoint;
      const state: PickerEndpointStatus['state'] =
        ep === this.#chosen
          ? 'in use'
          : s.avoidedForMs > 0
            ? 'avoided'
            : s.failures > 0
              ? 'failed'
              : s.lastOkAt !== undefined
                ? 'ok'
                : 'untried';
      return {
        position: i + 1,
        kind: endpointKind(ep),
        ...(ep.tag ? { tag: ep.tag } : {}),
        port: ep.websocket ? Number(new URL(ep.websocket.url).port || 443) : ep.port,
        state,
        avoidedForMs: s.avoidedForMs,
        failures: s.failures,
        ...(s.lastFail ? { lastFail: s.lastFail } : {}),
        ...(s.lastOkAt !== undefined ? { lastOkAt: s.lastOkAt } : {}),
      };
    });
  }

  /** Close every transport pool this picker made. */
  close(): void {
    for (const ep of this.#hops.values()) (ep.nextHop as { close?: () => void } | undefined)?.close?.();
  }
}
