/**
 * One web_connectivity-style measurement of one URL: the local steps (DNS, TCP to each address,
 * TLS with SNI, HTTP following redirects) and the control through the user's own tunnel server
 * (DNS over TCP to a resolver and the same fetch, both from the server's side), then the verdict.
 */
import type { Duplex } from 'node:stream';
import { isIP } from 'node:net';
import type { Dialer } from '../transport/dialer.js';
import { DialerStream } from '../transport/dialer-stream.js';
import { toSocksAddress } from '../protocol/socks5/address.js';
import { classify, type Comparison, type FetchSummary } from './classify.js';
import {
  addrsOf,
  resolveSystem,
  resolveTcpOver,
  resolveUdp,
  since,
  type DnsQuery,
  type HostPort,
} from './dns.js';
import { failureOf, isTimeout, type Failure } from './failure.js';
import { answersNeutral, connectTcp, getOver, handshake, titleOf, type TlsOptions } from './steps.js';

export interface ControlOptions {
  /** Opens streams through the user's server (a Shadowsocks dialer). */
  readonly dialer: Dialer;
  /** The resolver the server asks (DNS over TCP through the tunnel). */
  readonly resolver: HostPort;
}

export interface ProbeOptions {
  /** Resolver for the local measurement; default the system resolver. */
  readonly dns?: HostPort | undefined;
  readonly control?: ControlOptions | undefined;
  /** Per step (DNS, connect, handshake, request), real ms. Default 10 s. */
  readonly timeoutMs?: number;
  readonly tls?: TlsOptions;
  /** Refuse to connect to some addresses (the lab allows loopback only). */
  readonly allowAddress?: (ip: string) => boolean;
  readonly maxRedirects?: number;
  /** Body bytes read per response (default 1 MiB); the JSON keeps at most `keepBody`. */
  readonly maxBody?: number;
  readonly keepBody?: number;
  /** Addresses tried per name (default 4). */
  readonly maxAddresses?: number;
}

export interface TcpConnectEntry {
  readonly ip: string;
  readonly port: number;
  readonly status: { success: boolean; failure: Failure; blocked: boolean | null };
  readonly t: number;
}

export interface TlsEntry {
  readonly address: string;
  readonly server_name: string;
  readonly failure: Failure;
  readonly tls_version?: string | undefined;
  readonly cipher_suite?: string | undefined;
  readonly negotiated_protocol?: string | undefined;
  readonly t: number;
}

export interface RequestEntry {
  readonly request: {
    method: 'GET';
    url: string;
    headers: Record<string, string>;
    body: string;
    tor: { is_tor: false };
  };
  readonly response: {
    code: number;
    headers: Record<string, string>;
    body: string;
    body_is_truncated: boolean;
  } | null;
  readonly failure: Failure;
  readonly t: number;
}

export interface ControlKeys {
  readonly dns: { addrs: string[]; failure: Failure };
  readonly http_request: {
    status_code: number;
    body_length: number;
    title: string;
    headers: Record<string, string>;
    failure: Failure;
  };
}

export interface TestKeys extends Comparison {
  readonly queries: DnsQuery[];
  readonly tcp_connect: TcpConnectEntry[];
  readonly tls_handshakes: TlsEntry[];
  readonly requests: RequestEntry[];
  readonly control: ControlKeys | Record<string, never>;
  readonly control_failure: Failure;
  readonly dns_experiment_failure: Failure;
  readonly http_experiment_failure: Failure;
  /** The address accepted TCP but answered no neutral request (a null route). */
  readonly x_null_routed: boolean;
  /**
   * Set by the list runner: every connect was reset on an address:port where another URL of the
   * run triggered a name-based block, so this is the censor's residual block of that address
   * and the verdict is the trigger's mechanism (see run.ts).
   */
  readonly x_residual?: boolean;
}

export interface Measurement {
  readonly input: string;
  readonly startTime: Date;
  readonly runtime: number;
  readonly keys: TestKeys;
}

type Opener = (host: string, port: number) => Promise<Duplex>;

interface Chain {
  readonly summary: FetchSummary;
  readonly requests: RequestEntry[];
}

const portOf = (u: URL): number => Number(u.port || (u.protocol === 'https:' ? 443 : 80));

/** GET `url`, following at most `maxRedirects` redirects; each hop opens a fresh stream. */
async function fetchChain(
  url: URL,
  open: Opener,
  o: Required<Pick<ProbeOptions, 'timeoutMs' | 'maxRedirects' | 'maxBody' | 'keepBody'>> & ProbeOptions,
  t0: number,
): Promise<Chain> {
  const requests: RequestEntry[] = [];
  let current = url;
  for (let hop = 0; hop <= o.maxRedirects; hop++) {
    const request: RequestEntry['request'] = {
      method: 'GET',
      url: current.href,
      headers: { Host: current.host },
      body: '',
      tor: { is_tor: false },
    };
    const fail = (failure: string, phase: FetchSummary['phase']): Chain => {
      requests.push({ request, response: null, failure, t: since(t0) });
      return { summary: { failure, phase }, requests };
    };
    let stream: Duplex;
    try {
      stream = await open(current.hostname.replace(/^\[|\]$/g, ''), portOf(current));
    } catch (err) {
      return fail(failureOf(err), 'connect');
    }
    if (current.protocol === 'https:') {
      const h = await handshake(stream, current.hostname, o.tls ?? {}, o.timeoutMs);
      if (!h.socket) return fail(h.failure ?? 'ssl_failed_handshake', 'tls');
      stream = h.socket;
    }
    let res;
    try {
      res = await getOver(stream, current, o.timeoutMs, o.maxBody);
    } catch (err) {
      return fail(failureOf(err), 'http');
    }
    requests.push({
      request,
      response: {
        code: res.status,
        headers: res.headers,
        body: res.body.subarray(0, o.keepBody).toString('utf8'),
        body_is_truncated: res.truncated || res.body.length > o.keepBody,
      },
      failure: null,
      t: since(t0),
    });
    const location = res.headers.location;
    if (res.status >= 300 && res.status < 400 && location && hop < o.maxRedirects) {
      try {
        current = new URL(location, current);
      } catch {
        return { summary: { failure: 'unknown_failure: bad redirect', phase: 'http' }, requests };
      }
      if (current.protocol !== 'http:' && current.protocol !== 'https:') break;
      continue;
    }
    return {
      summary: {
        failure: null,
        status: res.status,
        bodyLength: res.body.length,
        title: titleOf(res.body),
        headers: res.headers,
      },
      requests,
    };
  }
  return { summary: { failure: 'unknown_failure: too many redirects', phase: 'http' }, requests };
}

async function runControl(
  url: URL,
  c: ControlOptions,
  o: Parameters<typeof fetchChain>[2],
  t0: number,
): Promise<{ dns: DnsQuery; chain: Chain }> {
  const tunnel: Opener = (host, port) =>
    Promise.resolve(new DialerStream(c.dialer, toSocksAddress(host, port)));
  const [dns, chain] = await Promise.all([
    resolveTcpOver(
      new DialerStream(c.dialer, toSocksAddress(c.resolver.host, c.resolver.port)),
      url.hostname,
      c.resolver,
      o.timeoutMs,
      t0,
    ),
    fetchChain(url, tunnel, o, t0),
  ]);
  return { dns, chain };
}

export async function measureUrl(input: string, opts: ProbeOptions): Promise<Measurement> {
  const startTime = new Date();
  const t0 = performance.now();
  const o = {
    timeoutMs: 10_000,
    maxRedirects: 5,
    maxBody: 1 << 20,
    keepBody: 4096,
    maxAddresses: 4,
    ...opts,
  };
  const url = new URL(input);
  const https = url.protocol === 'https:';
  const port = portOf(url);
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  const resolve = (name: string): Promise<DnsQuery> =>
    o.dns ? resolveUdp(name, o.dns, o.timeoutMs, t0) : resolveSystem(name, o.timeoutMs, t0);

  const controlP = o.control ? runControl(url, o.control, o, t0) : undefined;
  const query = await resolve(hostname);
  const addrs = addrsOf(query).slice(0, o.maxAddresses);
  const tcp: TcpConnectEntry[] = [];
  const tlsEntries: TlsEntry[] = [];
  await Promise.all(
    addrs.map(async (ip) => {
      try {
        const s = await connectTcp(ip, port, o.timeoutMs, o.allowAddress);
        tcp.push({ ip, port, status: { success: true, failure: null, blocked: false }, t: since(t0) });
        if (!https) return void s.destroy();
        const h = await handshake(s, hostname, o.tls ?? {}, o.timeoutMs);
        h.socket?.destroy();
        const { socket: _s, ...rest } = h;
        tlsEntries.push({
          address: `${isIP(ip) === 6 ? `[${ip}]` : ip}:${port}`,
          server_name: hostname,
          ...rest,
          t: since(t0),
        });
      } catch (err) {
        tcp.push({
          ip,
          port,
          status: { success: false, failure: failureOf(err), blocked: null },
          t: since(t0),
        });
      }
    }),
  );
  // The fetch starts at an address that took the TCP handshake; redirects resolve afresh.
  const firstUp = tcp.find((t) => t.status.success)?.ip ?? addrs[0];
  const direct: Opener = async (host, p) => {
    let ip = host === hostname && p === port ? firstUp : undefined;
    if (!ip) {
      if (isIP(host)) ip = host;
      else {
        const q = await resolve(host);
        ip = addrsOf(q)[0];
        if (!ip) throw Object.assign(new Error(q.failure ?? 'no address'), { code: 'ENOTFOUND' });
      }
    }
    if (!ip) throw Object.assign(new Error('no address'), { code: 'ENOTFOUND' });
    return connectTcp(ip, p, o.timeoutMs, o.allowAddress);
  };
  const chain = addrs.length
    ? await fetchChain(url, direct, o, t0)
    : { summary: { failure: query.failure ?? 'dns_no_answer', phase: 'connect' as const }, requests: [] };
  const control = controlP ? await controlP : undefined;

  // Timeouts after a good TCP handshake: is the address null-routed (nothing answers) or is it the name?
  const timedOut =
    isTimeout(chain.summary.failure) ||
    (https && tlsEntries.length > 0 && tlsEntries.every((t) => isTimeout(t.failure)));
  const controlDnsAddrs = control ? addrsOf(control.dns) : [];
  const forgedLooking =
    control && control.dns.failure === null && !addrs.some((a) => controlDnsAddrs.includes(a));
  const up = tcp.find((t) => t.status.success);
  const nullRouted =
    Boolean(timedOut && up && !forgedLooking) && !(await answersNeutral(up!.ip, port, https, o.timeoutMs));

  const controlSummary: FetchSummary = control?.chain.summary ?? {
    failure: 'unknown_failure: no control (--via not given)',
  };
  const cmp = classify({
    https,
    dns: { addrs: addrsOf(query), failure: query.failure },
    controlDns: control
      ? { addrs: controlDnsAddrs, failure: control.dns.failure }
      : { addrs: [], failure: 'unknown_failure: no control' },
    tcp: tcp.map((t) => ({ ip: t.ip, success: t.status.success })),
    tls: tlsEntries,
    http: chain.summary,
    control: controlSummary,
    nullRouted,
  });
  if (cmp.blocking === 'tcp_ip') for (const t of tcp) t.status.blocked = true;
  const keys: TestKeys = {
    queries: [query],
    tcp_connect: tcp,
    tls_handshakes: tlsEntries,
    requests: chain.requests,
    control: control
      ? {
          dns: { addrs: controlDnsAddrs, failure: control.dns.failure },
          http_request: {
            status_code: controlSummary.status ?? -1,
            body_length: controlSummary.bodyLength ?? -1,
            title: controlSummary.title ?? '',
            headers: { ...(controlSummary.headers ?? {}) },
            failure: controlSummary.failure,
          },
        }
      : {},
    control_failure: controlSummary.failure,
    dns_experiment_failure: query.failure,
    http_experiment_failure: chain.summary.failure,
    x_null_routed: nullRouted,
    ...cmp,
  };
  return { input, startTime, runtime: since(t0), keys };
}
