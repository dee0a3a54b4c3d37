/**
 * Blocked-address reports (issue 16), the client's side: when a dynamic key's endpoint on one
 * address failed (connect failed, reset or stall before data) and an endpoint on another address
 * then worked, `ladder client` tells the key server: POST {"address": HOST} to the key's URL +
 * "/report", sent THROUGH the tunnel of the endpoint that works (so the key server sees that
 * node, not the client's address, and a censor watching the client sees only tunnel traffic),
 * with the key's certificate pin checked as for the key itself. The token in the URL says which
 * key reports; nothing else is sent. Each address is reported at most once per REPORT_AGAIN_MS.
 */
import type { Clock } from '../shared/clock.js';
import { toSocksAddress } from '../protocol/socks5/address.js';
import type { Dialer } from '../transport/dialer.js';
import { DialerStream } from '../transport/dialer-stream.js';
import { secureSocket, type DynamicKeyUrl } from './dynamic-fetch.js';
import type { KeyEndpoint } from './key.js';

/** A failure older than this is not reported when another endpoint works. */
export const FAILURE_FRESH_MS = 10 * 60_000;
/** One address is reported at most this often. */
export const REPORT_AGAIN_MS = 30 * 60_000;
const REPORT_TIMEOUT_MS = 15_000;
const MAX_TRACKED = 64;

/** The address an endpoint dials: its host, or its web front's host. */
export function endpointAddress(e: KeyEndpoint): string {
  return e.websocket ? new URL(e.websocket.url).hostname.replace(/^\[|\]$/g, '') : e.host;
}

/** POST the report through `via`; resolves with the HTTP status (204 when accepted). */
export async function sendAddressReport(key: DynamicKeyUrl, address: string, via: Dialer): Promise<number> {
  const url = new URL(key.url);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/report`;
  url.search = '';
  const signal = AbortSignal.timeout(REPORT_TIMEOUT_MS);
  const port = url.port ? Number(url.port) : 443;
  const stream = new DialerStream(via, toSocksAddress(url.hostname.replace(/^\[|\]$/g, ''), port));
  const socket = await secureSocket(url, key.pinSha256, signal, stream);
  // Loaded here: a client that never reports never loads node:https (idle memory).
  const { request: httpsRequest } = await import('node:https');
  if (signal.aborted) {
    socket.destroy();
    throw new Error('the key server did not answer in time');
  }
  const body = JSON.stringify({ address });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, {
      method: 'POST',
      createConnection: () => socket,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'user-agent': 'ladder',
      },
    });
    const onAbort = (): void => {
      req.destroy();
      socket.destroy();
      reject(new Error('the key server did not answer the report in time'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err: NodeJS.ErrnoException) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(new Error(`the report was not delivered (${err.code ?? err.message})`));
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => {
        signal.removeEventListener('abort', onAbort);
        socket.destroy();
        resolve(res.statusCode ?? 0);
      });
    });
    req.end(body);
  });
}

/**
 * Decides what to report: `failed` on every endpoint failure, `worked` when an endpoint carried
 * traffic; `worked` returns the addresses to report now (failed recently, not the working
 * endpoint's address, not reported within REPORT_AGAIN_MS).
 */
export class ReportTracker {
  readonly #clock: Clock;
  readonly #failedAt = new Map<string, number>();
  readonly #reportedAt = new Map<string, number>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  failed(e: KeyEndpoint): void {
    const a = endpointAddress(e);
    this.#failedAt.delete(a);
    this.#failedAt.set(a, this.#clock.now());
    if (this.#failedAt.size > MAX_TRACKED) this.#failedAt.delete(this.#failedAt.keys().next().value!);
  }

  worked(e: KeyEndpoint): string[] {
    const now = this.#clock.now();
    const ok = endpointAddress(e);
    this.#failedAt.delete(ok);
    const out: string[] = [];
    for (const [a, at] of this.#failedAt) {
      if (now - at > FAILURE_FRESH_MS) continue;
      if (now - (this.#reportedAt.get(a) ?? -Infinity) < REPORT_AGAIN_MS) continue;
      this.#reportedAt.set(a, now);
      out.push(a);
    }
    for (const a of out) this.#failedAt.delete(a);
    if (this.#reportedAt.size > MAX_TRACKED) this.#reportedAt.delete(this.#reportedAt.keys().next().value!);
    return out;
  }
}
