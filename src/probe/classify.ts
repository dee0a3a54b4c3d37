/**
 * The comparison with the control and the verdict, after OONI's web_connectivity (ts-017, the
 * v0.4 decision procedure) with two additions: `tls` as its own mechanism (a handshake that fails
 * here and succeeds for the control: SNI filtering), and `tcp_ip` for an address that accepts the
 * TCP handshake but answers nothing to a neutral request either (a null route).
 * Pure: no I/O, so every rule is unit-tested without a network.
 */
import type { Failure } from './failure.js';

export type Blocking = 'dns' | 'tcp_ip' | 'tls' | 'http-failure' | 'http-diff';
/** false: accessible; null: the control failed, so nothing can be said. */
export type Verdict = Blocking | false | null;
export const MECHANISMS: readonly Blocking[] = ['dns', 'tcp_ip', 'tls', 'http-failure', 'http-diff'];

export interface FetchSummary {
  readonly failure: Failure;
  /** Where the failure happened: before TCP was up, during TLS, or in HTTP. */
  readonly phase?: 'connect' | 'tls' | 'http' | undefined;
  readonly status?: number | undefined;
  readonly bodyLength?: number | undefined;
  readonly title?: string | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

export interface Observations {
  readonly https: boolean;
  readonly dns: { readonly addrs: readonly string[]; readonly failure: Failure };
  readonly controlDns: { readonly addrs: readonly string[]; readonly failure: Failure };
  readonly tcp: ReadonlyArray<{ readonly ip: string; readonly success: boolean }>;
  /** One per connected address (https only). */
  readonly tls: ReadonlyArray<{ readonly failure: Failure }>;
  readonly http: FetchSummary;
  readonly control: FetchSummary;
  /** The address took the TCP handshake but answered nothing to a neutral request. */
  readonly nullRouted: boolean;
}

export interface Comparison {
  readonly dns_consistency: 'consistent' | 'inconsistent' | null;
  readonly body_proportion: number | null;
  readonly body_length_match: boolean | null;
  readonly status_code_match: boolean | null;
  readonly headers_match: boolean | null;
  readonly title_match: boolean | null;
  readonly blocking: Verdict;
  readonly accessible: boolean | null;
  /** Probe answers the control never gave (the forged ones when blocking is 'dns'). */
  readonly x_unexpected_answers: string[];
}

/** Headers every server sends; OONI compares only the uncommon ones. */
const COMMON_HEADERS = new Set([
  'date',
  'content-type',
  'server',
  'cache-control',
  'vary',
  'set-cookie',
  'location',
  'expires',
  'x-powered-by',
  'content-encoding',
  'last-modified',
  'accept-ranges',
  'pragma',
  'x-frame-options',
  'etag',
  'x-content-type-options',
  'age',
  'via',
  'p3p',
  'x-xss-protection',
  'content-language',
  'cf-ray',
  'strict-transport-security',
  'link',
  'x-varnish',
  'content-length',
  'connection',
  'transfer-encoding',
  'keep-alive',
]);

function headersMatch(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ua = Object.keys(a)
    .map((k) => k.toLowerCase())
    .filter((k) => !COMMON_HEADERS.has(k));
  const ub = new Set(
    Object.keys(b)
      .map((k) => k.toLowerCase())
      .filter((k) => !COMMON_HEADERS.has(k)),
  );
  if (ua.length === 0 && ub.size === 0) return true;
  return ua.some((k) => ub.has(k));
}

/** OONI's title rule: the first words of five or more letters agree. */
function titleMatch(a: string, b: string): boolean | null {
  const first = (t: string): string | undefined =>
    t
      .split(/\s+/)
      .find((w) => w.length >= 5)
      ?.toLowerCase();
  const fa = first(a);
  const fb = first(b);
  if (fa === undefined && fb === undefined) return a.trim() === b.trim();
  return fa === fb;
}

export function classify(o: Observations): Comparison {
  const controlOk = o.control.failure === null;
  const unexpected = o.dns.addrs.filter((a) => !o.controlDns.addrs.includes(a));
  const dnsConsistency = ((): Comparison['dns_consistency'] => {
    if (o.dns.failure !== null && o.dns.failure === o.controlDns.failure) return 'consistent';
    if (o.controlDns.failure !== null) return null;
    if (o.dns.failure !== null) return 'inconsistent';
    const overlap = o.dns.addrs.some((a) => o.controlDns.addrs.includes(a));
    // A certificate valid for the name on an address we were given vouches for that address (CDNs).
    return overlap || (o.https && o.tls.some((t) => t.failure === null)) ? 'consistent' : 'inconsistent';
  })();
  const cmp = {
    body_proportion: null as number | null,
    body_length_match: null as boolean | null,
    status_code_match: null as boolean | null,
    headers_match: null as boolean | null,
    title_match: null as boolean | null,
  };
  if (o.http.failure === null && controlOk) {
    const a = o.http.bodyLength ?? 0;
    const b = o.control.bodyLength ?? 0;
    cmp.body_proportion = Math.max(a, b) === 0 ? 1 : Math.min(a, b) / Math.max(a, b);
    cmp.body_length_match = cmp.body_proportion > 0.7;
    cmp.status_code_match = o.http.status === o.control.status || (o.control.status ?? 0) >= 500;
    cmp.headers_match = headersMatch(o.http.headers ?? {}, o.control.headers ?? {});
    cmp.title_match = titleMatch(o.http.title ?? '', o.control.title ?? '');
  }
  const matches =
    cmp.status_code_match === true &&
    (cmp.body_length_match || cmp.headers_match || cmp.title_match) === true;
  const verdict = ((): Verdict => {
    if (!controlOk) return null;
    if (o.http.failure === null && matches) return false;
    if (dnsConsistency === 'inconsistent') return 'dns';
    if (o.tcp.length > 0 && o.tcp.every((t) => !t.success)) return 'tcp_ip';
    if (o.nullRouted) return 'tcp_ip';
    if (o.https && o.tls.length > 0 && o.tls.every((t) => t.failure !== null)) return 'tls';
    if (o.http.failure !== null) return o.http.phase === 'tls' ? 'tls' : 'http-failure';
    return 'http-diff';
  })();
  return {
    dns_consistency: dnsConsistency,
    ...cmp,
    blocking: verdict,
    accessible: verdict === null ? null : verdict === false,
    x_unexpected_answers: unexpected,
  };
}
