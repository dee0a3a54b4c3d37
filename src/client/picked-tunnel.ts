/**
 * The tunnel `ladder client` runs when a key offers a choice: a dynamic key (ssconf://,
 * https://; kept fresh by key-source.ts) or several static endpoints. Puts together the picker
 * (picker.ts), its per-network memory (picker-memory.ts), the status file (status.ts) and the
 * log lines. Hand `tunnel` and `keySourceMessage` to startClient.
 *
 * Log lines name endpoints by position and kind, never by address; the server's refusal (quota,
 * expiry) is shown as the server words it, at most once per 30 s.
 */
import { dialErrno, hintDialFailureOnce } from './dial-hint.js';
import { isAead2022MethodName } from '../protocol/shadowsocks/methods2022.js';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { Dialer } from '../transport/dialer.js';
import type { DynamicKeyUrl } from './dynamic-fetch.js';
import type { DynamicKeyBody } from './dynamic-key.js';
import type { KeyEndpoint } from './key.js';
import { DynamicKeySource, type DynamicKeySourceOptions } from './key-source.js';
import { ReportTracker, sendAddressReport } from './address-report.js';
import { NetworkMemory } from './picker-memory.js';
import { endpointKind, PickerDialer, type PickerOptions } from './picker.js';
import { removeStatus, writeStatus, type ClientStatus } from './status.js';

const STATUS_EVERY_MS = 30_000;
const REFUSAL_LOG_EVERY_MS = 30_000;

export interface PickedTunnelOptions {
  /** A dynamic key, or… */
  dynamic?: DynamicKeyUrl;
  /** …static endpoints (several, in order). */
  endpoints?: KeyEndpoint[];
  dialerFor: (e: KeyEndpoint) => Dialer;
  log: Logger;
  clock?: Clock;
  /** Memory and status files here; undefined keeps both in this process only. */
  stateDir?: string | undefined;
  /** Network identity (tests). */
  networkId?: () => string;
  picker?: Partial<Pick<PickerOptions, 'residualMs' | 'backoffMaxMs' | 'attemptTimeoutMs' | 'stallMs'>>;
  source?: Partial<Pick<DynamicKeySourceOptions, 'fetch' | 'refreshMs' | 'errorRetryMs' | 'minRefetchMs'>>;
}

export interface PickedTunnel {
  picker: PickerDialer;
  source: DynamicKeySource | undefined;
  /** The first body of a dynamic key. */
  first: DynamicKeyBody | undefined;
  /** For startClient's `tunnel` option. */
  tunnel: { dialer: Dialer; endpoints: number; edition2022: boolean; close: () => void };
  keySourceMessage: () => string | undefined;
  /** Write the status file now. */
  writeStatus(): void;
  close(): void;
}

/** Position and kind only: tags are the user's own names for servers, kept out of logs too. */
function describe(position: number, e: KeyEndpoint): Record<string, unknown> {
  return { endpoint: position, transport: endpointKind(e) };
}

/** Start the picker (and, for a dynamic key, fetch it: throws when the first fetch fails). */
export async function startPickedTunnel(o: PickedTunnelOptions): Promise<PickedTunnel> {
  const clock = o.clock ?? systemClock;
  const log = o.log;
  const memory = new NetworkMemory({
    clock,
    dir: o.stateDir,
    ...(o.networkId ? { networkId: o.networkId } : {}),
    onSaveError: (err) => log.debug({ err: err.message }, 'endpoint memory not saved'),
  });
  let source: DynamicKeySource | undefined;
  let lastRefusalLog = -Infinity;
  const startedAt = clock.now();
  let statusTimer: Timer | undefined;
  let closed = false;
  // Blocked-address reports (address-report.ts): dynamic keys only, since the key server takes them.
  const reports = o.dynamic ? new ReportTracker(clock) : undefined;
  const report = (address: string): void => {
    if (!o.dynamic || closed) return;
    sendAddressReport(o.dynamic, address, picker).then(
      (status) => log.info({ status }, 'told the key server a server address failed while another worked'),
      (err: Error) => log.debug({ err: err.message }, 'blocked-address report not delivered'),
    );
  };

  const status = (): ClientStatus => ({
    pid: process.pid,
    startedAt,
    updatedAt: clock.now(),
    network: memory.network,
    key: source ? { kind: 'dynamic', ...source.status() } : { kind: 'static' },
    endpoints: picker.status(),
  });
  const saveStatus = (): void => {
    if (!o.stateDir || closed) return;
    try {
      writeStatus(o.stateDir, status());
    } catch (err) {
      log.debug({ err: (err as Error).message }, 'status file not written');
    }
  };

  const picker = new PickerDialer({
    clock,
    memory,
    dialerFor: o.dialerFor,
    ...o.picker,
    onFailure: (position, e, kind, avoidMs, err) => {
      log.warn(
        { endpoint: position, kind, transport: endpointKind(e), avoidSeconds: Math.round(avoidMs / 1000) },
        'server endpoint avoided for its residual period',
      );
      // An untrusted web-front certificate: the same advice a single key gets (tunnel.ts).
      hintDialFailureOnce(dialErrno(err), log);
      reports?.failed(e);
      // The operator may have moved the server: ask the key (rate-limited in the source).
      source?.refreshSoon();
      saveStatus();
    },
    onChoice: (position, e) => {
      log.info(describe(position, e), `using server endpoint ${position} (${endpointKind(e)})`);
      saveStatus();
      for (const a of reports?.worked(e) ?? []) report(a);
    },
    onExhausted: () => {
      const refusal = picker.refusal;
      if (refusal !== undefined && clock.now() - lastRefusalLog >= REFUSAL_LOG_EVERY_MS) {
        lastRefusalLog = clock.now();
        log.warn(`connection refused: ${refusal}`);
      }
      source?.refreshSoon();
    },
  });

  let lastSet = '';
  const apply = (body: DynamicKeyBody, first: boolean): void => {
    if (body.kind === 'error') {
      const was = picker.refusal;
      picker.setRefusal(source?.refusal);
      if (was !== picker.refusal)
        log.warn(
          `${picker.refusal ?? ''} (new connections are refused; the key is fetched again until the server accepts it)`,
        );
    } else {
      if (picker.refusal !== undefined) log.info('the server accepts the key again');
      picker.setRefusal(undefined);
      const skipped = picker.setEndpoints(body.endpoints);
      for (const s of skipped) log.warn(`dynamic key: an endpoint was left out: ${s}`);
      const now = picker.endpoints.map((e) => `${endpointKind(e)}`).join(',');
      const sig = JSON.stringify(picker.endpoints.map((e) => [e.host, e.port, e.websocket?.url ?? '']));
      if (!first && sig !== lastSet)
        log.info(
          { endpoints: picker.endpoints.length, transports: now },
          'dynamic key changed: new connections use the new endpoints, open ones continue',
        );
      lastSet = sig;
    }
    saveStatus();
  };

  let first: DynamicKeyBody | undefined;
  let started = false;
  if (o.dynamic) {
    source = new DynamicKeySource({
      key: o.dynamic,
      clock,
      ...o.source,
      // The first body is applied below, once start() returns, so its errors reach the caller.
      onBody: (b) => {
        if (started) apply(b, false);
      },
      onFetchError: (err) => {
        log.warn(`dynamic key fetch failed, the last endpoints stay in use: ${err.message}`);
        saveStatus();
      },
    });
    first = await source.start();
    apply(first, true);
    started = true;
  } else {
    const skipped = picker.setEndpoints(o.endpoints ?? []);
    if (skipped.length > 0) throw new Error(skipped[0]);
  }

  if (o.stateDir) {
    const tick = (): void => {
      saveStatus();
      statusTimer = clock.setTimeout(tick, STATUS_EVERY_MS);
      statusTimer.unref?.();
    };
    tick();
  }
  const edition2022 =
    first?.kind === 'endpoints'
      ? first.endpoints.some((e) => isAead2022MethodName(e.method))
      : (o.endpoints ?? []).some((e) => isAead2022MethodName(e.method));
  const close = (): void => {
    if (closed) return;
    closed = true;
    if (statusTimer) clock.clearTimeout(statusTimer);
    source?.close();
    picker.close();
    memory.save();
    if (o.stateDir) removeStatus(o.stateDir);
  };
  return {
    picker,
    source,
    first,
    tunnel: { dialer: picker, endpoints: Math.max(1, picker.endpoints.length), edition2022, close },
    keySourceMessage: () => source?.refusal,
    writeStatus: saveStatus,
    close,
  };
}
