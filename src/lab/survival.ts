/**
 * The survival report: bring the world up, drive a fixed workload through each contender, let the
 * active prober judge every tunnel server, and tabulate what survived.
 *
 * Contenders are described by the caller (the CLI composes them, because the lab reaches servers
 * through sockets only): a direct contender dials the emulated sites itself; a tunnel contender
 * is a local SOCKS5 proxy whose server sits behind the censor path as an emulated remote host.
 *
 * Phases, chosen so that a fixed seed gives the same verdicts every run:
 *  1. each contender's workload, one request at a time, with the prober holding its events (the
 *     measured replay delay runs from 0.28 s to hours, so probing after the session is in range);
 *  2. the prober acts on every suspicious flow and concludes; "proxy" feeds C1;
 *  3. residual blocks expire (wait 181 s of virtual time), then one more request per contender
 *     shows whether its endpoint is still reachable.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Clock } from '../shared/clock.js';
import type { Endpoint } from './censor.js';
import { sleep } from './clock.js';
import { dnsQuery, httpGet, type Outcome } from './client-ops.js';
import type { Decision } from './decision-log.js';
import { withOverrides, type CensorConfig } from './profiles.js';
import { BLOCKED_NAME, LabWorld, OPEN_NAME } from './world.js';
import type { LabCertificates } from './lab-ca.js';
import type { PlaceFn, WebWorld } from './web-hosts.js';
import { probeWebFront, type WebVerdict } from './web-prober.js';
import { probeShadowTlsPort, type RecordHead, type ReplayVerdict } from './stls-replay.js';

export interface TunnelHandle {
  /** The contender's local SOCKS5 listener. */
  readonly socks: Endpoint;
  stop(): Promise<void>;
}

export interface DirectContender {
  readonly kind: 'direct';
  readonly name: string;
  readonly description: string;
  readonly site: 'blocked' | 'open';
  /** Wrap TCP under TLS (a defence such as ClientHello record fragmentation). */
  readonly wrapTls?: (raw: net.Socket) => Duplex;
  /** Resolve the site's name another way than "first answer wins" (a DNS defence); returns an IPv4 address. */
  readonly resolveName?: (resolver: Endpoint, name: string) => Promise<string | undefined>;
}

export interface TunnelContender {
  readonly kind: 'tunnel';
  readonly name: string;
  readonly description: string;
  /** True for Ladder's own server: a "proxy" verdict is then a tunnel-core bug. */
  readonly ladder: boolean;
  /**
   * Start the server on 127.0.0.1 (any port); returns its real address. `ctx.remoteLookup`
   * resolves lab names as a server abroad would (to addresses that do not cross the path).
   */
  startServer(ctx: ServerContext): Promise<StartedServer>;
  /**
   * Where the server sits (web-hosts.ts: directly on logical 443, behind the lab CDN, with the
   * origin's IP blocked); default: `fronts` emulated hosts on logical port 8388.
   */
  readonly place?: PlaceFn;
  /**
   * Ask the proxy for the sites by name and at their path ports (as a browser would), instead of
   * by the real servers' addresses: for clients that route some destinations directly (auto
   * routing). Direct flows from 127.0.0.1 to the sites' addresses count for this row.
   */
  readonly byName?: boolean;
  /** Emulated fronts (distinct remote addresses, same server) to create; default 1. */
  readonly fronts?: number;
  /**
   * Start the local client pointed at `server` (the emulated address on the censor path);
   * `ctx.fronts` lists every front (the first is `server`), `ctx.clock` is the lab's clock.
   */
  startClient(server: Endpoint, ctx: TunnelContext): Promise<TunnelHandle>;
}

export interface TunnelContext {
  readonly fronts: readonly Endpoint[];
  readonly clock: Clock;
  /** The genuine domestic-side address of a lab name (a clean resolver's answer). */
  readonly domesticAddress: (name: string) => string | undefined;
  /** The lab's genuine resolver over TCP, reachable from the remote side (for a tunnel DNS forwarder). */
  readonly genuineResolverTcp: Endpoint;
  /** The lab CA (what a web contender's client trusts). */
  readonly ca: Buffer;
}

export interface ServerContext {
  readonly remoteLookup: (host: string) => Promise<{ address: string; family: number }[]>;
  /** The lab CA's certificate for the lab names (covers *.web.lab). */
  readonly certs: LabCertificates;
}

export interface StartedServer {
  readonly address: Endpoint;
  stop(): Promise<void>;
  /**
   * A web front: the prober (web-prober.ts) compares it with `reference`, a plain web server
   * with the same site, over TLS with SNI `host`; `secretPath` only derives near-miss probes.
   */
  readonly web?: { readonly host: string; readonly secretPath: string; readonly reference: Endpoint };
  /**
   * A ShadowTLS port: the first session's ClientHello and server flight as the path saw them
   * (stls-replay.ts), which the prober replays and holds against the port's answers.
   */
  readonly shadowTls?: { readonly captured: () => { hello: Buffer; serverHeads: RecordHead[] } | undefined };
}

export type Contender = DirectContender | TunnelContender;

export interface RequestRecord {
  readonly step: string;
  readonly outcome: Outcome;
}

export interface ContenderReport {
  readonly name: string;
  readonly description: string;
  readonly kind: 'direct' | 'tunnel';
  readonly requests: {
    readonly ok: number;
    readonly total: number;
    readonly steps: readonly RequestRecord[];
  };
  readonly c6Triggers: number;
  readonly prober: {
    readonly probed: boolean;
    readonly proxy: boolean;
    readonly rules: readonly string[];
    readonly evidence: readonly string[];
    readonly reactions: Readonly<Record<string, number>>;
    readonly stage2: boolean;
    /** C7 pointed at a web front (web-prober.ts). */
    readonly web?: Omit<WebVerdict, 'results'>;
    /**
     * C7 with a genuine ClientHello against a ShadowTLS port (stls-replay.ts): the verdicts only
     * (the record deltas vary by a byte from run to run with the site's ECDSA signature).
     */
    readonly replay?: Pick<ReplayVerdict, 'replay' | 'tell'>;
  } | null;
  readonly endpointBlocked: boolean;
  readonly residualHits: number;
  /** Behaviours that interfered with this contender's traffic, with counts. */
  readonly blockedBy: Readonly<Record<string, number>>;
  /** Phase 3: a request after the verdict and after residual blocks expired. */
  readonly afterVerdict: Outcome | null;
  readonly error?: string;
}

export interface SurvivalReport {
  readonly profile: string;
  readonly seed: number;
  readonly clockRate: number;
  readonly contenders: readonly ContenderReport[];
  /** Problems the run found (e.g. Ladder's server classified as a proxy: a tunnel-core bug). */
  readonly findings: readonly string[];
  readonly notes: readonly string[];
}

/** Virtual-time speed-up for the survival run: residual 180 s = 9 s real, request timeout 0.75 s. */
export const DEFAULT_SURVIVAL_RATE = 20;

/** Probes in flight at once during the survival run (see runSurvival). */
const SURVIVAL_PROBE_CONCURRENCY = 16;

export interface SurvivalOptions {
  readonly config: CensorConfig;
  readonly seed: number;
  readonly clockRate?: number;
  readonly contenders: readonly Contender[];
  /** Real ms a web probe waits for the server to close (web-prober.ts; default 5 s). */
  readonly webProbeWaitMs?: number;
  /** Virtual ms a request may take (default 15 s). */
  readonly requestTimeoutMs?: number;
  readonly onProgress?: ((msg: string) => void) | undefined;
  /** Receives the censor's whole decision log (JSON lines) before the world is torn down. */
  readonly onDecisionLog?: (jsonl: string) => void;
}

interface Running {
  readonly c: Contender;
  readonly clientIp: string;
  /** For tunnels: the emulated server endpoint (censor view) and handles. */
  server?: {
    logical: Endpoint[];
    /** Behind a CDN: the origin's endpoints (this row's traffic, but not what its client dials). */
    origins: Endpoint[];
    stopServer(): Promise<void>;
    handle: TunnelHandle;
    started: StartedServer;
  };
  web?: WebVerdict;
  replay?: ReplayVerdict;
  steps: RequestRecord[];
  error?: string;
}

function tally(outcomes: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of outcomes) out[o] = (out[o] ?? 0) + 1;
  return out;
}

export async function runSurvival(opts: SurvivalOptions): Promise<SurvivalReport> {
  const clockRate = opts.clockRate ?? DEFAULT_SURVIVAL_RATE;
  const progress = opts.onProgress ?? (() => undefined);
  // Prober delays are capped at 60 s of virtual time (measured: 0.28 s to hours). Probes of a
  // well-behaved server all wait out the prober's timeout, so up to 16 run at once (the profiles
  // say 4): the verdicts do not depend on it, and phase 2 takes a quarter of the time.
  const config = withOverrides(opts.config, {
    c7: {
      maxDelayMs: Math.min(opts.config.c7.maxDelayMs, 60_000),
      concurrency: Math.max(opts.config.c7.concurrency, SURVIVAL_PROBE_CONCURRENCY),
    },
  });
  const world = await LabWorld.start({ config, seed: opts.seed, clockRate });
  const running: Running[] = [];
  const findings: string[] = [];
  try {
    world.prober.hold();
    const timeoutMs = opts.requestTimeoutMs ?? 15_000;
    // Blackholed requests cost a whole timeout each; the real-time floor is an eighth of the
    // residual window (1.1 s at the default rate), so a contender's blackholed requests always
    // fall inside it, and a loaded machine does not turn slow successes into timeouts.
    const base = { clock: world.clock, timeoutMs, minRealMs: Math.max(250, 180_000 / clockRate / 8) };
    let n = 0;
    for (const c of opts.contenders) {
      const r: Running = { c, clientIp: `127.0.1.${101 + n++}`, steps: [] };
      running.push(r);
      progress(`phase 1: ${c.name}`);
      try {
        if (c.kind === 'direct') r.steps = await directWorkload(world, c, r.clientIp, base);
        else {
          const srv = await c.startServer({ remoteLookup: world.remoteLookup, certs: world.certs });
          const fronts = [];
          if (c.place) {
            const p = await c.place(webWorld(world), srv.address);
            fronts.push({ tcp: p.dial, logical: p.logical[0]!, more: p.logical.slice(1) });
          } else {
            for (let i = 0; i < Math.max(1, c.fronts ?? 1); i++) {
              fronts.push({ ...(await world.addRemoteHost(srv.address, { logicalPort: 8388 })), more: [] });
            }
          }
          const front = fronts[0]!;
          let handle: TunnelHandle;
          try {
            handle = await c.startClient(front.tcp, {
              ca: world.certs.ca,
              fronts: fronts.map((f) => f.tcp),
              clock: world.clock,
              domesticAddress: (name) => world.domesticAddress(name),
              genuineResolverTcp: world.zone.tcpAddress,
            });
          } catch (err) {
            await srv.stop();
            throw err;
          }
          r.server = {
            logical: fronts.flatMap((f) => [f.logical, ...f.more]),
            origins: fronts.flatMap((f) => f.more),
            stopServer: () => srv.stop(),
            handle,
            started: srv,
          };
          r.steps = await tunnelWorkload(world, handle.socks, base, c.byName === true);
        }
      } catch (err) {
        r.error = err instanceof Error ? err.message : String(err);
      }
    }
    progress('phase 2: active prober');
    world.prober.release();
    await world.prober.settled();
    for (const r of running) {
      const web = r.server?.started.web;
      if (!web || !r.server) continue;
      const tlsOpts = { servername: web.host, ca: world.certs.ca };
      r.web = await probeWebFront(
        { endpoint: r.server.started.address, tls: tlsOpts },
        { endpoint: web.reference, tls: tlsOpts },
        {
          host: web.host,
          secretPath: web.secretPath,
          ...(opts.webProbeWaitMs ? { waitMs: opts.webProbeWaitMs } : {}),
        },
      );
      // A ShadowTLS port: the genuine session's hello replayed, its flight against the answers.
      const genuine = r.server.started.shadowTls?.captured();
      if (genuine) r.replay = await probeShadowTlsPort(r.server.started.address, web.reference, genuine);
    }
    progress('phase 3: residual blocks expire, then one request per contender');
    await sleep(world.clock, 181_000);
    const after = new Map<Running, Outcome>();
    for (const r of running) {
      if (r.error) continue;
      if (r.c.kind === 'direct') {
        const site = world.sites[r.c.site];
        const res = await httpGet({
          ...base,
          localAddress: r.clientIp,
          connect: site.http,
          hostHeader: site.name,
        });
        after.set(r, res.outcome);
      } else if (r.server) {
        const byName = r.c.byName === true;
        const res = await httpGet({
          ...base,
          socks: r.server.handle.socks,
          connect: byName ? { host: OPEN_NAME, port: world.sites.open.http.port } : world.sites.open.realHttp,
          hostHeader: OPEN_NAME,
        });
        after.set(r, res.outcome);
      }
    }

    const contenders = running.map((r): ContenderReport => {
      const siteIps = [world.sites.blocked.ip, world.sites.open.ip];
      const mine = (d: Decision): boolean =>
        d.flow !== undefined &&
        (r.c.kind === 'direct'
          ? d.flow.cIP === r.clientIp
          : (r.server !== undefined &&
              r.server.logical.some((l) => d.flow!.sIP === l.host && d.flow!.sPort === l.port)) ||
            // A by-name client's own direct flows (only it reaches the sites from 127.0.0.1 over TCP).
            (r.c.byName === true &&
              d.flow.proto === 'tcp' &&
              d.flow.cIP === '127.0.0.1' &&
              siteIps.includes(d.flow.sIP)));
      const decisions = world.log.records.filter(mine);
      const verdicts = (r.server?.logical ?? [])
        .map((l) => world.prober.verdicts.get(`${l.host}:${l.port}`))
        .filter((x) => x !== undefined);
      const v =
        verdicts.length === 0
          ? undefined
          : {
              proxy: verdicts.some((x) => x.proxy),
              rules: [...new Set(verdicts.flatMap((x) => x.rules))],
              evidence: verdicts.flatMap((x) => x.evidence),
              probes: verdicts.flatMap((x) => x.probes),
              stage2: verdicts.some((x) => x.stage2),
            };
      const blockedBy = tally(
        decisions
          // C8 flags interfere only through C1 (K = 3), but the row should show them.
          .filter((d) => d.blocked || (d.behaviour === 'C8' && d.rule === 'tls-in-tls'))
          .map((d) => (d.behaviour === 'residual' ? `residual:${d.rule}` : d.behaviour)),
      );
      const c6Triggers = decisions.filter((d) => d.behaviour === 'C6' && d.action === 'DROP_C2S').length;
      const ok = r.steps.filter((s) => s.outcome === 'OK').length;
      // The endpoint the client dials (a CDN row's origin may be blocked: that is the point).
      const endpointBlocked = (r.server?.logical ?? [])
        .filter((l) => !r.server?.origins.includes(l))
        .some((l) => world.censor.isEndpointBlocked(l.host, l.port));
      if (r.c.kind === 'tunnel' && r.c.ladder && r.web && r.web.verdict !== 'web server') {
        findings.push(
          `web front tell: the prober told Ladder's web front (${r.c.name}) from a plain web server: ${r.web.differences.join('; ')}`,
        );
      }
      if (r.c.kind === 'tunnel' && r.c.ladder && r.replay?.replay === 'differs from the site') {
        findings.push(
          `replay tell: a replayed genuine ClientHello to Ladder's ShadowTLS port (${r.c.name}) was not answered as the site answers it (encrypted record deltas ${r.replay.replayDeltas.join(', ')})`,
        );
      }
      if (r.c.kind === 'tunnel' && r.c.ladder && v?.proxy) {
        findings.push(
          `tunnel-core bug: the prober classified Ladder's server (${r.c.name}) as a proxy by rule(s) ${v.rules.join(', ')}: ${v.evidence.join('; ')}`,
        );
      }
      return {
        name: r.c.name,
        description: r.c.description,
        kind: r.c.kind,
        requests: { ok, total: r.steps.length, steps: r.steps },
        c6Triggers,
        prober:
          r.c.kind === 'tunnel'
            ? {
                probed: v !== undefined,
                proxy: v?.proxy ?? false,
                rules: v?.rules ?? [],
                evidence: v?.evidence ?? [],
                reactions: v ? tally(v.probes.map((p) => p.reaction)) : {},
                stage2: v?.stage2 ?? false,
                ...(r.web
                  ? { web: { verdict: r.web.verdict, probes: r.web.probes, differences: r.web.differences } }
                  : {}),
                ...(r.replay ? { replay: { replay: r.replay.replay, tell: r.replay.tell } } : {}),
              }
            : null,
        endpointBlocked,
        residualHits: decisions.filter((d) => d.behaviour === 'residual' && d.blocked).length,
        blockedBy,
        afterVerdict: after.get(r) ?? null,
        ...(r.error ? { error: r.error } : {}),
      };
    });
    opts.onDecisionLog?.(world.log.toJsonLines());
    return {
      profile: opts.config.name,
      seed: opts.seed,
      clockRate,
      contenders,
      findings,
      notes: [
        "Tunnel rows dial the sites by the real servers' addresses through the tunnel, except by-name rows (auto routing): they ask for the names at the path ports, their server resolves them to the sites' remote-side addresses and their direct routes to the domestic ones. Direct rows resolve through the path resolver and use its first answer.",
        'The prober holds its events until every workload ran, then probes (measured delays reach hours; here capped at 60 s of virtual time); a "proxy" verdict null-routes the endpoint (C1).',
        'afterVerdict: one request after residual blocks expired (181 s of virtual time).',
      ],
    };
  } finally {
    for (const r of running) {
      if (r.server) {
        await r.server.handle.stop().catch(() => undefined);
        await r.server.stopServer().catch(() => undefined);
      }
    }
    await world.stop();
  }
}

type Base = { clock: LabWorld['clock']; timeoutMs: number; minRealMs: number };

/** Direct: resolve, then HTTP and HTTPS twice each (the second round meets residual blocks). */
async function directWorkload(
  world: LabWorld,
  c: DirectContender,
  clientIp: string,
  base: Base,
): Promise<RequestRecord[]> {
  const site = world.sites[c.site];
  const steps: RequestRecord[] = [];
  let first: string | undefined;
  if (c.resolveName) {
    first = await c.resolveName(world.resolver, site.name).catch(() => undefined);
  } else {
    const dns = await dnsQuery(world.resolver, site.name, 'A', {
      ...base,
      localAddress: clientIp,
      collectMs: 2_000,
    });
    first = dns.first?.find((a) => a.type === 'A')?.data;
  }
  steps.push({
    step: 'dns A',
    outcome:
      first === undefined
        ? 'DNS_FAIL'
        : first === site.ip
          ? 'OK'
          : world.censor.isForgedAddress(first)
            ? 'DNS_FORGED'
            : 'DNS_FAIL',
  });
  // Even with a poisoned answer, the user may know the address (hosts file); the filters still apply.
  for (const round of [1, 2]) {
    const h = await httpGet({ ...base, localAddress: clientIp, connect: site.http, hostHeader: site.name });
    steps.push({ step: `http #${round}`, outcome: h.outcome });
    const s = await httpGet({
      ...base,
      localAddress: clientIp,
      connect: site.https,
      hostHeader: site.name,
      tls: { servername: site.name, ca: world.certs.ca },
      ...(c.wrapTls ? { wrapTls: c.wrapTls } : {}),
    });
    steps.push({ step: `https #${round}`, outcome: s.outcome });
  }
  return steps;
}

/** Tunnel: blocked and open sites over HTTP and HTTPS through the contender's SOCKS5 proxy. */
async function tunnelWorkload(
  world: LabWorld,
  socks: Endpoint,
  base: Base,
  byName: boolean,
): Promise<RequestRecord[]> {
  const steps: RequestRecord[] = [];
  const b = world.sites.blocked;
  const o = world.sites.open;
  // By name: the sites' names at their path ports (the proxy decides how to reach them).
  const at = (site: typeof b, tls: boolean): Endpoint =>
    byName
      ? { host: site.name, port: (tls ? site.https : site.http).port }
      : tls
        ? site.realHttps
        : site.realHttp;
  const plan: Array<[string, Endpoint, string, boolean]> = [
    ['http blocked', at(b, false), BLOCKED_NAME, false],
    ['https blocked', at(b, true), BLOCKED_NAME, true],
    ['http open', at(o, false), OPEN_NAME, false],
    ['https open', at(o, true), OPEN_NAME, true],
    ['http blocked #2', at(b, false), BLOCKED_NAME, false],
  ];
  for (const [step, connect, name, tls] of plan) {
    const r = await httpGet({
      ...base,
      socks,
      connect,
      hostHeader: name,
      // The request waits 20 ms after the handshake: the Finished in a record of its own (C8).
      ...(tls ? { tls: { servername: name, ca: world.certs.ca }, requestDelayMs: 20 } : {}),
    });
    steps.push({ step, outcome: r.outcome });
  }
  return steps;
}

/** The world as web-hosts.ts placements see it. */
function webWorld(world: LabWorld): WebWorld {
  return {
    addRemoteHost: (backend, opts) => world.addRemoteHost(backend, opts),
    blockEndpoint: (ip, port, reason) => world.censor.blockEndpoint(ip, port, reason),
    cdn: () => world.cdn(),
  };
}
