/**
 * `ladder probe --servers`: can this network reach each of my own server endpoints, and where
 * does the chain break? One endpoint is checked step by step, each under its own deadline, and
 * the first step that fails names the verdict (as web_connectivity names a mechanism):
 *
 *   dns        the endpoint's name does not resolve here (an IP-literal endpoint skips it)
 *   tcp        TCP connect to the first answer (refused, reset, or silence: a null route)
 *   tls        for wss:// endpoints, the handshake with the key's server name (SNI filtering,
 *              an untrusted or mismatched certificate)
 *   websocket  the WebSocket (or HTTPUpgrade) upgrade on the secret path (a wrong path, a proxy in between)
 *   tunnel     a Shadowsocks connection through the endpoint to a known target that must answer
 *              (an HTTP GET): a wrong key or method, or a censor that cuts the flow after the
 *              first packet
 *
 * The raw Shadowsocks tunnel reuses the TCP connection the tcp step opened, so the check
 * measures exactly the address that answered. Names here are masked: `name` shows method, host
 * and port, never a password or a WebSocket path (the path is a secret too).
 */
import { createHash } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dialer, NextHop } from '../transport/dialer.js';
import { DialerStream } from '../transport/dialer-stream.js';
import { dialHttpUpgrade } from '../transport/httpupgrade-dialer.js';
import { shadowTlsResetAdvice } from '../transport/shadowtls-reset.js';
import { upgradeRefusalAdvice } from '../transport/upgrade-refused.js';
import { dialWebSocket, webSocketNextHop, type WsTransportOptions } from '../transport/ws-dialer.js';
import { grpcNextHop, type GrpcTransportOptions } from '../transport/grpc-dialer.js';
import type { ShadowTlsEndpoint } from '../transport/shadowtls-dialer.js';
import { toSocksAddress } from '../protocol/socks5/address.js';
import { addrsOf, resolveSystem, resolveUdp, since, type HostPort } from './dns.js';
import { failureOf, withTimeout, type Failure } from './failure.js';
import { connectTcp, getOver, handshake } from './steps.js';

export type ServerStep = 'fetch' | 'dns' | 'tcp' | 'tls' | 'websocket' | 'tunnel';
export const SERVER_STEPS: readonly ServerStep[] = ['fetch', 'dns', 'tcp', 'tls', 'websocket', 'tunnel'];

export interface ServerTarget {
  /** Masked description for the table and the JSON: no password, no WebSocket path. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** The WebSocket transport of a v2ray-plugin / web-front endpoint. */
  readonly websocket?: WsTransportOptions | undefined;
  /** The gRPC transport of a `type=grpc` key (checked by dns, tcp, then the tunnel over gRPC). */
  readonly grpc?: GrpcTransportOptions | undefined;
  /** The ShadowTLS v3 transport of a `plugin=shadow-tls` key (its handshake and tags fail in the tunnel step). */
  readonly shadowTls?: ShadowTlsEndpoint | undefined;
  /** The Shadowsocks dialer for this endpoint's key over `nextHop` (the CLI builds it). */
  readonly dialer: (nextHop: NextHop) => Dialer;
}

export interface StepResult {
  readonly step: ServerStep;
  readonly failure: Failure;
  /** Seconds since the check started. */
  readonly t: number;
  /** What the step saw (addresses, TLS version, HTTP status), never a secret. */
  readonly detail?: string | undefined;
}

export interface ServerCheck {
  readonly name: string;
  readonly transport: 'shadowsocks' | 'websocket' | 'grpc' | 'shadowtls' | 'dynamic-key';
  readonly steps: StepResult[];
  /** The first step that failed, or false when the target answered through the tunnel. */
  readonly blocking: ServerStep | false;
  readonly runtime: number;
}

export interface ServerCheckOptions {
  /** Resolver for the dns step (default the system resolver). */
  readonly dns?: HostPort | undefined;
  /** The known target fetched through the tunnel (http:// only). */
  readonly target: URL;
  /** Per step, real ms. */
  readonly timeoutMs: number;
}

/** A check that failed before any endpoint was known: a dynamic key that could not be fetched. */
export function fetchFailed(name: string, message: string): ServerCheck {
  return {
    name,
    transport: 'dynamic-key',
    steps: [{ step: 'fetch', failure: `unknown_failure: ${message}`, t: 0 }],
    blocking: 'fetch',
    runtime: 0,
  };
}

/**
 * A key's tag as the probe prints it: anything in it that looks like a URL (`ss://…`, an access
 * link pasted into the name, or a second key a tag swallowed) becomes `…`, control characters go,
 * and at most 60 characters are kept. A tag is the user's own text, but it travels inside keys
 * people pass around, and the table and the JSON are meant to be shareable.
 */
export function shownTag(tag: string): string {
  const t = tag
    .replace(/[a-z][a-z0-9+.-]*:\/\/\S*/gi, '…')
    .replace(/[\p{Cc}\p{Cf}]+/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return t.length > 60 ? `${t.slice(0, 59)}…` : t;
}

/** The masked name of an endpoint: `ss aes-256-gcm 203.0.113.5:8388` or `wss://host:443/… (ws)`. */
export function maskedName(
  ep: {
    host: string;
    port: number;
    method: string;
    websocket?: { url: string } | undefined;
    grpc?: { tls: boolean } | undefined;
    shadowTls?: unknown;
  },
  tag?: string,
): string {
  const shown = tag ? shownTag(tag) : '';
  const t = shown ? ` "${shown}"` : '';
  if (ep.shadowTls)
    return `shadowtls://${isIP(ep.host) === 6 ? `[${ep.host}]` : ep.host}:${ep.port} ${ep.method}${t}`;
  if (ep.grpc)
    return `${ep.grpc.tls ? 'grpcs' : 'grpc'}://${isIP(ep.host) === 6 ? `[${ep.host}]` : ep.host}:${ep.port}/… ${ep.method}${t}`;
  if (ep.websocket) {
    const u = new URL(ep.websocket.url);
    return `${u.protocol}//${u.host}/… ${ep.method}${t}`;
  }
  const h = isIP(ep.host) === 6 ? `[${ep.host}]` : ep.host;
  return `ss://${h}:${ep.port} ${ep.method}${t}`;
}

/** TLS over `sock` as the WebSocket dialer would do it: the key's name, pin or CA, or the system store. */
async function tlsStep(sock: Socket, ws: WsTransportOptions, timeoutMs: number): Promise<string> {
  const url = new URL(ws.url);
  const hostHeader = ws.host ?? url.host;
  const name = ws.servername ?? hostHeader.replace(/^\[([^\]]+)\].*$/, '$1').replace(/:\d+$/, '');
  const h = await handshake(sock, name, { ca: ws.ca, verify: false }, timeoutMs);
  const t = h.socket;
  if (!t) throw Object.assign(new Error(h.failure ?? 'ssl_failed_handshake'), { failure: h.failure });
  try {
    const raw = t.getPeerCertificate().raw;
    const pin = ws.pinSha256?.replace(/:/g, '').toLowerCase();
    if (pin) {
      const got = raw ? createHash('sha256').update(raw).digest('hex') : '';
      if (got !== pin) throw Object.assign(new Error('certificate pin mismatch'), { code: 'ERR_PIN' });
    } else if (ws.verify !== false && !t.authorized) {
      const code = String(t.authorizationError ?? 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      throw Object.assign(new Error(code), { code });
    }
    return h.tls_version ?? '';
  } finally {
    t.destroy();
  }
}

/** Check one endpoint (see the top of this file). */
export async function checkServer(target: ServerTarget, o: ServerCheckOptions): Promise<ServerCheck> {
  const t0 = performance.now();
  const steps: StepResult[] = [];
  const ws = target.websocket;
  const transport = ws ? 'websocket' : target.grpc ? 'grpc' : target.shadowTls ? 'shadowtls' : 'shadowsocks';
  const done = (): ServerCheck => ({
    name: target.name,
    transport,
    steps,
    blocking: steps.find((s) => s.failure !== null)?.step ?? false,
    runtime: since(t0),
  });
  const url = ws ? new URL(ws.url) : undefined;
  const host = url ? url.hostname.replace(/^\[|\]$/g, '') : target.host;
  const port = url ? Number(url.port || (url.protocol === 'wss:' ? 443 : 80)) : target.port;

  // dns
  let addr = host;
  if (!isIP(host)) {
    const q = o.dns
      ? await resolveUdp(host, o.dns, o.timeoutMs, t0)
      : await resolveSystem(host, o.timeoutMs, t0);
    const addrs = addrsOf(q);
    const failure = q.failure ?? (addrs.length === 0 ? 'dns_no_answer' : null);
    steps.push({ step: 'dns', failure, t: since(t0), ...(addrs.length ? { detail: addrs.join(' ') } : {}) });
    if (failure) return done();
    addr = addrs[0]!;
  }

  // tcp
  let sock: Socket;
  try {
    sock = await connectTcp(addr, port, o.timeoutMs);
    steps.push({ step: 'tcp', failure: null, t: since(t0), detail: `${addr}:${port}` });
  } catch (err) {
    steps.push({ step: 'tcp', failure: failureOf(err), t: since(t0), detail: `${addr}:${port}` });
    return done();
  }

  let nextHop: NextHop & { close?: () => void };
  if (ws) {
    if (url!.protocol === 'wss:') {
      try {
        const version = await tlsStep(sock, ws, o.timeoutMs);
        steps.push({ step: 'tls', failure: null, t: since(t0), detail: version });
      } catch (err) {
        const e = err as { code?: string; failure?: string | null };
        const failure =
          e.code === 'ERR_PIN' ? 'ssl_invalid_certificate: pin mismatch' : (e.failure ?? failureOf(err));
        steps.push({ step: 'tls', failure, t: since(t0) });
        return done();
      }
    } else sock.destroy();
    try {
      // The upgrade step: a WebSocket, or an HTTPUpgrade (the same request, then raw bytes).
      const ep = { ...ws, connectTimeoutMs: o.timeoutMs };
      const upgrade: Promise<Duplex> = ws.httpUpgrade ? dialHttpUpgrade(ep) : dialWebSocket(ep);
      const stream = await withTimeout(upgrade, o.timeoutMs);
      stream.destroy();
      steps.push({ step: 'websocket', failure: null, t: since(t0) });
    } catch (err) {
      steps.push({
        step: 'websocket',
        failure: failureOf(err),
        t: since(t0),
        detail: (err as Error).message.slice(0, 80),
      });
      return done();
    }
    nextHop = webSocketNextHop(ws);
  } else if (target.grpc) {
    // The gRPC dialer opens its own connection (TLS, h2): its failures show in the tunnel step.
    sock.destroy();
    nextHop = grpcNextHop({ ...target.grpc, connectTimeoutMs: o.timeoutMs });
  } else if (target.shadowTls) {
    // The ShadowTLS dialer opens its own connection (the site's handshake, the tags).
    sock.destroy();
    const ep = { ...target.shadowTls, connectTimeoutMs: o.timeoutMs };
    nextHop = (signal) => import('../transport/shadowtls-dialer.js').then((m) => m.dialShadowTls(ep, signal));
  } else {
    let used = false;
    nextHop = () => {
      if (used) return Promise.reject(new Error('the checked connection is used once'));
      used = true;
      return Promise.resolve(sock);
    };
  }

  // tunnel: an HTTP GET of the known target through the endpoint
  const stream = new DialerStream(
    target.dialer(nextHop),
    toSocksAddress(o.target.hostname, Number(o.target.port || 80)),
  );
  try {
    const res = await getOver(stream, o.target, o.timeoutMs, 64 * 1024);
    steps.push({ step: 'tunnel', failure: null, t: since(t0), detail: `HTTP ${res.status}` });
  } catch (err) {
    steps.push({ step: 'tunnel', failure: failureOf(err), t: since(t0) });
  } finally {
    stream.destroy();
    sock.destroy();
    nextHop.close?.();
  }
  return done();
}

/** Check every endpoint, at most `concurrency` at once, in input order. */
export async function checkServers(
  targets: readonly ServerTarget[],
  o: ServerCheckOptions & { concurrency?: number },
): Promise<ServerCheck[]> {
  const out = new Array<ServerCheck>(targets.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const i = next++;
      out[i] = await checkServer(targets[i]!, o);
    }
  };
  const width = Math.max(1, Math.min(o.concurrency ?? 8, targets.length));
  await Promise.all(Array.from({ length: width }, worker));
  return out;
}

/** What a failed step means, in words for a person inside. */
export function explain(c: ServerCheck): string {
  const s = c.steps.find((x) => x.failure !== null);
  if (!s) return 'reachable: the tunnel carried a request to the target';
  const f = s.failure!;
  const timeout = f === 'generic_timeout_error';
  const refused = /^upgrade_refused: HTTP (\d{3}|\?)$/.exec(f);
  const refusedStatus = refused ? (refused[1] === '?' ? undefined : Number(refused[1])) : undefined;
  switch (s.step) {
    case 'fetch':
      return `the dynamic key could not be fetched (${f.replace(/^unknown_failure: /, '')})`;
    case 'dns':
      return `the server's name does not resolve on this network (${f}): DNS blocking, or a mistyped name`;
    case 'tcp':
      return f === 'connection_refused'
        ? 'TCP connect refused: nothing listens on that port (is the server running?), or a firewall refuses it'
        : timeout
          ? 'no answer to the TCP handshake: the address is probably null-routed (blocked by IP)'
          : `TCP connect failed (${f}): a firewall resets or drops connections to this address`;
    case 'tls':
      return f.startsWith('ssl_invalid') || f === 'ssl_unknown_authority'
        ? `the TLS certificate is not the expected one (${f}): a wrong pin or name, or someone in the middle`
        : `the TLS handshake failed (${f}): SNI filtering, or the front does not serve TLS here`;
    case 'websocket':
      if (refusedStatus !== undefined) return upgradeRefusalAdvice(refusedStatus);
      return `the web front refused the WebSocket upgrade (${f}): a wrong path, or a proxy that strips upgrades`;
    case 'tunnel':
      // A gRPC call is refused in this step (its dialer opens its own connection).
      if (refusedStatus !== undefined) return upgradeRefusalAdvice(refusedStatus);
      if (c.transport === 'shadowtls' && f === 'connection_reset') return shadowTlsResetAdvice(f);
      return `the server took the connection but the tunnel did not answer (${f}): a wrong key or method, a key the server has disabled, expired or over its limit, the server cannot reach the target, or a censor cuts the flow after the first packet`;
  }
}
