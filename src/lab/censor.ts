/**
 * The censor engine: flow tables, the residual table, the C1 endpoint list and the per-behaviour
 * decisions (C1, C2, C3, C4, C6, C9, C10, C12; C7 lives in prober.ts and feeds C1 back here). It owns no
 * sockets: the forwarders ask it what to do with each new flow and each chunk, and it records one
 * decision-log entry per decision. Terms and behaviours: docs/glossary.md.
 *
 * size: one decision engine; every behaviour reads and writes the same flow and residual tables.
 * The pure per-behaviour rules already live in fet.ts, dns-inject.ts, http-request.ts and
 * tls-clienthello.ts; splitting the rest by behaviour would scatter that shared state.
 */
import type { Clock } from '../shared/clock.js';
import { DecisionLog, type FlowRef } from './decision-log.js';
import { fetFeatures, shannonEntropy, type FetFeatures } from './fet.js';
import { inspectClientHello } from './tls-clienthello.js';
import { blockPage, hostMatchesSuffix, inspectHttpRequest } from './http-request.js';
import {
  compileDnsRules,
  forgeAnswer,
  ForgedPool,
  matchDnsRule,
  parseDnsQuery,
  QCLASS_IN,
  QTYPE_AAAA,
} from './dns-inject.js';
import type { CensorConfig, RstInjector } from './profiles.js';
import { SeededRng } from './rng.js';
import {
  C8_FLAG_THRESHOLD,
  C8_FLAG_WINDOW_MS,
  type FlowShapeClassifier,
  type UdpFlowInspector,
} from './seams.js';

/** How many client->server bytes a flow keeps for reassembling filters (C3, C4). */
const STREAM_CAP = 16 * 1024;
const CHUNK_LOG_CAP = 32;
/** UDP flows are tracked for exactly 60 s (docs/glossary.md C5). */
const UDP_FLOW_MS = 60_000;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface TcpFlow {
  readonly id: number;
  readonly ref: FlowRef;
  /** The real server behind the emulated address (where the prober connects). */
  readonly backend: Endpoint;
  readonly outbound: boolean;
  stream: Buffer;
  readonly chunks: Array<{ t: number; length: number }>;
  firstChunkSeen: boolean;
  c3Done: boolean;
  c4Done: boolean;
  c12Done: boolean;
  /** Client->server forwarding stopped (C6, ESNI). */
  dropC2S: boolean;
  /** Server->client forwarding stopped (C1). */
  dropS2C: boolean;
  /** Both directions frozen while an RST is on its way. */
  held: boolean;
}

export type AcceptVerdict =
  | { readonly action: 'PASS' }
  | { readonly action: 'DROP_S2C' }
  | { readonly action: 'BLACKHOLE_NEW' }
  | { readonly action: 'REFUSE_NEW' }
  | { readonly action: 'RST_BOTH'; readonly delayMs: number; readonly injector: RstInjector };

export type DataVerdict =
  | { readonly action: 'PASS' }
  /** Forward this chunk (unless forwardThis is false), drop every later client byte. */
  | { readonly action: 'DROP_C2S'; readonly forwardThis: boolean }
  /** Forward this chunk, freeze both directions, reset both legs after delayMs. */
  | { readonly action: 'RST_BOTH'; readonly delayMs: number; readonly injector: RstInjector }
  /** Do not forward this chunk; reset the client leg only (C10). */
  | { readonly action: 'RST_CLIENT' }
  /** Do not forward this chunk; send `response` to the client, close both legs (C12). */
  | { readonly action: 'INJECT_RESPONSE'; readonly response: Buffer };

export interface UdpVerdict {
  /** Drop this datagram (a C5 residual, or C1 on UDP). */
  readonly drop: boolean;
  /** Forged replies to send to the client at once. */
  readonly forged: readonly Buffer[];
  /** Delay for the genuine answer to this datagram (ms of censor clock), or 'drop'. */
  readonly genuine: number | 'drop';
}

export interface SuspiciousFlow {
  readonly flow: FlowRef;
  readonly backend: Endpoint;
  readonly payload: Buffer;
  readonly features: FetFeatures;
  readonly entropy: number;
}

type ResidualMode = 'c3' | 'c4' | 'c6' | 'esni' | 'c5';

interface Residual {
  readonly expiresAt: number;
  readonly mode: ResidualMode;
}

export interface CensorOptions {
  readonly config: CensorConfig;
  readonly clock: Clock;
  readonly seed: number;
  readonly log?: DecisionLog;
  /** C5 implementations (seam; none ships yet). */
  readonly udpInspectors?: readonly UdpFlowInspector[];
  /** C8 implementations (seam; none ships yet). */
  readonly shapeClassifiers?: readonly FlowShapeClassifier[];
}

export class Censor {
  readonly config: CensorConfig;
  readonly clock: Clock;
  readonly log: DecisionLog;
  readonly rng: SeededRng;
  readonly #start: number;
  readonly #rngC3: SeededRng;
  readonly #rngC6: SeededRng;
  readonly #residual = new Map<string, Residual>();
  readonly #blocked = new Map<string, string>();
  readonly #suspicious = new Set<(s: SuspiciousFlow) => void>();
  readonly #dnsRules: RegExp[];
  readonly #pool = new ForgedPool();
  #flowSeq = 0;
  /** Count of new connections that met a residual block, per residual mode. */
  readonly residualHits: Record<ResidualMode, number> = { c3: 0, c4: 0, c6: 0, esni: 0, c5: 0 };
  readonly #udpInspectors: readonly UdpFlowInspector[];
  readonly #shapeClassifiers: readonly FlowShapeClassifier[];
  readonly #c8Flags = new Map<string, number[]>();
  readonly #udpFlows = new Map<string, number>();

  constructor(opts: CensorOptions) {
    this.config = opts.config;
    this.clock = opts.clock;
    this.log = opts.log ?? new DecisionLog(() => opts.clock.now());
    this.rng = new SeededRng(opts.seed);
    this.#rngC3 = this.rng.fork('c3');
    this.#rngC6 = this.rng.fork('c6');
    this.#start = opts.clock.now();
    this.#dnsRules = compileDnsRules(opts.config.c2.rules);
    this.#udpInspectors = opts.config.c5.enabled ? (opts.udpInspectors ?? []) : [];
    this.#shapeClassifiers = opts.config.c8.enabled ? (opts.shapeClassifiers ?? []) : [];
    if (opts.config.c1.enabled) {
      for (const b of opts.config.c1.blocked) this.blockEndpoint(b.ip, b.port, 'config');
    }
    for (const [b, on, impls] of [
      ['C5', opts.config.c5.enabled, this.#udpInspectors.length],
      ['C8', opts.config.c8.enabled, this.#shapeClassifiers.length],
    ] as const) {
      if (on && impls === 0) {
        this.log.record({
          behaviour: b,
          rule: 'not-emulated',
          features: { reason: 'enabled by the profile, no implementation plugged into the seam' },
          action: 'PASS',
        });
      }
    }
  }

  isDomestic(ip: string): boolean {
    return this.config.domestic.some((p) => ip.startsWith(p));
  }

  // ---- C1 ---------------------------------------------------------------------------------

  /** Null-route an endpoint (ip:port, or the whole ip when port is undefined). */
  blockEndpoint(ip: string, port: number | undefined, reason: string): void {
    const key = port === undefined ? ip : `${ip}:${port}`;
    if (this.#blocked.has(key)) return;
    this.#blocked.set(key, reason);
    this.log.record({
      behaviour: 'C1',
      rule: port === undefined ? 'block-ip' : 'block-ip-port',
      features: { ip, ...(port !== undefined ? { port } : {}), reason },
      action: 'BLOCK_ENDPOINT',
      blocked: false,
    });
  }

  isEndpointBlocked(ip: string, port: number): boolean {
    return this.config.c1.enabled && (this.#blocked.has(ip) || this.#blocked.has(`${ip}:${port}`));
  }

  blockedEndpoints(): string[] {
    return [...this.#blocked.keys()];
  }

  // ---- residual table ----------------------------------------------------------------------

  #rkey(ref: FlowRef): string {
    return `${ref.proto}|${ref.cIP}|${ref.sIP}|${ref.sPort}`;
  }

  #addResidual(ref: FlowRef, mode: ResidualMode, ms: number): void {
    this.#residual.set(this.#rkey(ref), { expiresAt: this.clock.now() + ms, mode });
  }

  #activeResiduals(mode: ResidualMode): number {
    const now = this.clock.now();
    let n = 0;
    for (const r of this.#residual.values()) if (r.mode === mode && r.expiresAt > now) n++;
    return n;
  }

  residualFor(ref: FlowRef): Residual | undefined {
    const k = this.#rkey(ref);
    const r = this.#residual.get(k);
    if (r && r.expiresAt <= this.clock.now()) {
      this.#residual.delete(k);
      return undefined;
    }
    return r;
  }

  // ---- C7 hook -----------------------------------------------------------------------------

  onSuspiciousFlow(fn: (s: SuspiciousFlow) => void): () => void {
    this.#suspicious.add(fn);
    return () => this.#suspicious.delete(fn);
  }

  // ---- TCP ---------------------------------------------------------------------------------

  newTcpFlow(ref: Omit<FlowRef, 'proto'>, backend: Endpoint): TcpFlow {
    return {
      id: ++this.#flowSeq,
      ref: { proto: 'tcp', ...ref },
      backend,
      outbound: this.isDomestic(ref.cIP),
      stream: Buffer.alloc(0),
      chunks: [],
      firstChunkSeen: false,
      c3Done: false,
      c4Done: false,
      c12Done: false,
      dropC2S: false,
      dropS2C: false,
      held: false,
    };
  }

  #inWindow(): boolean {
    const w = this.config.c9.windows;
    if (w.length === 0) return true;
    const t = this.clock.now() - this.#start;
    return w.some((x) => t >= x.startMs && t < x.endMs);
  }

  /** Decide what happens to a new TCP connection (the accept stands in for the SYN). */
  onTcpAccept(flow: TcpFlow): AcceptVerdict {
    const { ref } = flow;
    const cfg = this.config;
    if (cfg.c9.enabled && cfg.c9.ports.includes(ref.sPort) && this.#inWindow()) {
      this.log.record({
        behaviour: 'C9',
        rule: 'blanket-port',
        flow: ref,
        features: { port: ref.sPort, rstAcks: 3 },
        action: 'RST_BOTH',
      });
      return { action: 'RST_BOTH', delayMs: 0, injector: 'II' };
    }
    if (this.isEndpointBlocked(ref.sIP, ref.sPort)) {
      flow.dropS2C = cfg.c1.action === 'DROP_S2C';
      this.log.record({
        behaviour: 'C1',
        rule: 'null-route',
        flow: ref,
        features: { endpoint: `${ref.sIP}:${ref.sPort}` },
        action: cfg.c1.action,
      });
      return { action: cfg.c1.action };
    }
    const r = this.residualFor(ref);
    if (r) {
      const features = { mode: r.mode, remainingMs: r.expiresAt - this.clock.now() };
      switch (r.mode) {
        case 'c3': {
          if (this.#rngC3.chance(cfg.c3.pResidual)) {
            this.residualHits.c3++;
            this.log.record({
              behaviour: 'residual',
              rule: 'c3-penalty-box',
              flow: ref,
              features,
              action: 'REFUSE_NEW',
            });
            return { action: 'REFUSE_NEW' };
          }
          this.log.record({
            behaviour: 'residual',
            rule: 'c3-penalty-box',
            flow: ref,
            features: { ...features, gate: 'missed' },
            action: 'PASS',
          });
          break;
        }
        case 'c4':
          this.residualHits.c4++;
          this.log.record({ behaviour: 'residual', rule: 'c4-sni', flow: ref, features, action: 'RST_BOTH' });
          return { action: 'RST_BOTH', delayMs: cfg.c4.injectDelayMs, injector: cfg.c4.injector };
        case 'c6':
        case 'esni':
          this.residualHits[r.mode]++;
          this.log.record({
            behaviour: 'residual',
            rule: r.mode === 'c6' ? 'c6-fet' : 'c4-esni',
            flow: ref,
            features,
            action: 'BLACKHOLE_NEW',
          });
          return { action: 'BLACKHOLE_NEW' };
      }
    }
    return { action: 'PASS' };
  }

  /** Decide what happens to one chunk of client->server bytes. */
  onClientData(flow: TcpFlow, chunk: Buffer): DataVerdict {
    const cfg = this.config;
    const first = !flow.firstChunkSeen;
    flow.firstChunkSeen = true;
    if (flow.chunks.length < CHUNK_LOG_CAP)
      flow.chunks.push({ t: this.clock.now() - this.#start, length: chunk.length });
    if (flow.stream.length < STREAM_CAP)
      flow.stream = Buffer.concat([flow.stream, chunk.subarray(0, STREAM_CAP - flow.stream.length)]);
    const ref = flow.ref;
    this.#observeShape(flow, 'c2s', chunk);

    // C10: the regional, stateless filter in front of the GFW: each chunk alone, no residual,
    // RST to the client only.
    if (cfg.c10.enabled) {
      const hello = inspectClientHello(chunk);
      const http = hello.status === 'not-tls' ? inspectHttpRequest(chunk) : undefined;
      const sni = hello.status === 'ok' ? hello.hello.serverName : undefined;
      const host = http?.status === 'ok' ? http.host : undefined;
      const name = sni ?? host;
      const hit = name !== undefined ? cfg.c10.names.find((n) => hostMatchesSuffix(name, n)) : undefined;
      if (hit) {
        flow.held = true;
        this.log.record({
          behaviour: 'C10',
          rule: sni !== undefined ? 'regional-sni' : 'regional-host',
          flow: ref,
          features: { name, matched: hit, chunkLength: chunk.length, reassembly: false },
          action: 'RST_CLIENT',
        });
        return { action: 'RST_CLIENT' };
      }
    }

    // C4: TLS SNI (TCP reassembled; first TLS record only unless reassembleRecords).
    if (cfg.c4.enabled && !flow.c4Done) {
      const res = inspectClientHello(flow.stream, { reassembleRecords: cfg.c4.reassembleRecords });
      if (res.status !== 'need-more') {
        flow.c4Done = true;
        if (res.status === 'ok') {
          const sni = res.hello.serverName;
          const list = flow.outbound ? cfg.c4.names : cfg.c4.namesInbound;
          const hit = sni !== undefined ? list.find((n) => hostMatchesSuffix(sni, n)) : undefined;
          const features = {
            sni: sni ?? null,
            records: res.records,
            reassembleRecords: cfg.c4.reassembleRecords,
            esni: res.hello.hasEsni,
            matched: hit ?? null,
          };
          if (cfg.c4.esni && res.hello.hasEsni) {
            flow.dropC2S = true;
            this.#addResidual(ref, 'esni', cfg.c4.esniResidualMs);
            this.log.record({ behaviour: 'C4', rule: 'esni', flow: ref, features, action: 'DROP_C2S' });
            return { action: 'DROP_C2S', forwardThis: true };
          }
          if (hit) {
            flow.held = true;
            this.#addResidual(ref, 'c4', cfg.c4.residualMs);
            this.log.record({
              behaviour: 'C4',
              rule: cfg.c4.reassembleRecords ? 'sni-reassembled' : 'sni-first-record',
              flow: ref,
              features: { ...features, injector: cfg.c4.injector, delayMs: cfg.c4.injectDelayMs },
              action: 'RST_BOTH',
            });
            return { action: 'RST_BOTH', delayMs: cfg.c4.injectDelayMs, injector: cfg.c4.injector };
          }
          this.log.record({ behaviour: 'C4', rule: 'sni-first-record', flow: ref, features, action: 'PASS' });
        } else if (res.status === 'partial') {
          this.log.record({
            behaviour: 'C4',
            rule: 'sni-first-record',
            flow: ref,
            features: { parsed: 'partial', records: res.records, reassembleRecords: false },
            action: 'PASS',
          });
        }
      }
    }

    // C12: a block page instead of the page, for a listed Host (TCP reassembled).
    if (cfg.c12.enabled && !flow.c12Done) {
      const res = inspectHttpRequest(flow.stream);
      if (res.status !== 'need-more') {
        flow.c12Done = true;
        const host = res.status === 'ok' ? (res.host ?? '') : '';
        const hit = cfg.c12.hosts.find((h) => host !== '' && hostMatchesSuffix(host, h));
        if (hit) {
          flow.held = true;
          this.log.record({
            behaviour: 'C12',
            rule: 'block-page',
            flow: ref,
            features: { host, matched: hit, status: cfg.c12.status },
            action: 'INJECT',
          });
          return { action: 'INJECT_RESPONSE', response: blockPage(cfg.c12.status, host) };
        }
      }
    }

    // C3: HTTP Host / keyword (TCP reassembled).
    if (cfg.c3.enabled && !flow.c3Done) {
      const res = inspectHttpRequest(flow.stream);
      if (res.status !== 'need-more') {
        flow.c3Done = true;
        if (res.status === 'ok') {
          const host = res.host ?? '';
          const hostHit = cfg.c3.hosts.find((h) => host !== '' && hostMatchesSuffix(host, h));
          const kwHit = cfg.c3.keywords.find((k) => res.path.toLowerCase().includes(k) || host.includes(k));
          const features = {
            host: host || null,
            path: res.path,
            hostMatch: hostHit ?? null,
            keyword: kwHit ?? null,
            pTrigger: cfg.c3.pTrigger,
          };
          if (hostHit || kwHit) {
            if (this.#rngC3.chance(cfg.c3.pTrigger)) {
              flow.held = true;
              this.#addResidual(ref, 'c3', cfg.c3.residualMs);
              this.log.record({
                behaviour: 'C3',
                rule: hostHit ? 'http-host' : 'http-keyword',
                flow: ref,
                features,
                action: 'RST_BOTH',
              });
              return { action: 'RST_BOTH', delayMs: 0, injector: 'I' };
            }
            this.log.record({
              behaviour: 'C3',
              rule: hostHit ? 'http-host' : 'http-keyword',
              flow: ref,
              features: { ...features, gate: 'missed' },
              action: 'PASS',
            });
          } else {
            this.log.record({ behaviour: 'C3', rule: 'http-host', flow: ref, features, action: 'PASS' });
          }
        }
      }
    }

    // C7's passive stage without C6 (the 2020 GFW): no Ex rules, only high-entropy first packets
    // reach the prober, which applies the length trigger and weighting itself.
    if (first && !cfg.c6.enabled && cfg.c7.enabled && flow.outbound && this.#monitored(ref.sIP)) {
      const entropy = shannonEntropy(chunk);
      if (entropy >= cfg.c7.minEntropyWithoutFet) {
        const ev: SuspiciousFlow = {
          flow: ref,
          backend: flow.backend,
          payload: Buffer.from(chunk),
          features: fetFeatures(chunk),
          entropy,
        };
        for (const l of this.#suspicious) l(ev);
      }
    }

    // C6: fully encrypted traffic, first chunk only, outbound, TCP.
    if (first && cfg.c6.enabled && flow.outbound && this.#monitored(ref.sIP)) {
      const f = fetFeatures(chunk, { tlsMaxMinor: cfg.c6.tlsMaxMinor });
      const entropy = shannonEntropy(chunk);
      const features = {
        ...f,
        entropy: round(entropy),
        popcountPerByte: round(f.popcountPerByte),
        printableFraction: round(f.printableFraction),
        pBlock: cfg.c6.pBlock,
      };
      if (f.eligible) {
        // The suspicious-flow event goes to the prober independently of the p_block gate.
        const ev: SuspiciousFlow = {
          flow: ref,
          backend: flow.backend,
          payload: Buffer.from(chunk),
          features: f,
          entropy,
        };
        for (const l of this.#suspicious) l(ev);
        if (this.#rngC6.chance(cfg.c6.pBlock)) {
          flow.dropC2S = true;
          const active = cfg.c6.underLoadThreshold > 0 ? this.#activeResiduals('c6') : 0;
          const underLoad = cfg.c6.underLoadThreshold > 0 && active >= cfg.c6.underLoadThreshold;
          const residualMs = underLoad ? cfg.c6.underLoadResidualMs : cfg.c6.residualMs;
          this.#addResidual(ref, 'c6', residualMs);
          this.log.record({
            behaviour: 'C6',
            rule: 'fet',
            flow: ref,
            features: {
              ...features,
              residualMs,
              ...(underLoad ? { underLoad: true, activeResiduals: active } : {}),
            },
            action: 'DROP_C2S',
          });
          return { action: 'DROP_C2S', forwardThis: !cfg.c6.dropTrigger };
        }
        this.log.record({
          behaviour: 'C6',
          rule: 'fet',
          flow: ref,
          features: { ...features, gate: 'missed' },
          action: 'PASS',
        });
      } else {
        this.log.record({ behaviour: 'C6', rule: 'fet', flow: ref, features, action: 'PASS' });
      }
    }
    return { action: 'PASS' };
  }

  /**
   * The censor's UDP flow table: a 4-tuple is tracked for exactly 60 s from its first datagram
   * (QUIC paper); only the datagram that opens a flow counts as "first".
   */
  #udpFirstOfFlow(f: FlowRef): boolean {
    const key = `${f.cIP}|${f.cPort}|${f.sIP}|${f.sPort}`;
    const now = this.clock.now();
    const created = this.#udpFlows.get(key);
    if (created !== undefined && now - created < UDP_FLOW_MS) return false;
    if (this.#udpFlows.size > 50_000) {
      for (const [k, t] of this.#udpFlows) if (now - t >= UDP_FLOW_MS) this.#udpFlows.delete(k);
    }
    this.#udpFlows.set(key, now);
    return true;
  }

  /** Server->client chunk sizes, for C8 classifiers. */
  onServerData(flow: TcpFlow, chunk: Buffer): void {
    this.#observeShape(flow, 's2c', chunk);
  }

  #observeShape(flow: TcpFlow, dir: 'c2s' | 's2c', chunk: Buffer): void {
    for (const c of this.#shapeClassifiers) {
      const v = c.observe(flow.ref, dir, chunk.length, chunk);
      if (v.action !== 'FLAG') continue;
      const key = `${flow.ref.sIP}:${flow.ref.sPort}`;
      const now = this.clock.now();
      const flags = (this.#c8Flags.get(key) ?? []).filter((t) => now - t < C8_FLAG_WINDOW_MS);
      flags.push(now);
      this.#c8Flags.set(key, flags);
      this.log.record({
        behaviour: 'C8',
        rule: 'tls-in-tls',
        flow: flow.ref,
        features: { ...v.features, flagsInWindow: flags.length },
        action: 'PASS',
      });
      if (flags.length >= C8_FLAG_THRESHOLD) this.blockEndpoint(flow.ref.sIP, flow.ref.sPort, 'C8 flags');
    }
  }

  #monitored(ip: string): boolean {
    const m = this.config.c6.monitored;
    return m.length === 0 ? !this.isDomestic(ip) : m.some((p) => ip.startsWith(p));
  }

  // ---- UDP ---------------------------------------------------------------------------------

  /** C5 seam, then C2: decide about one client->server datagram. */
  onUdpClientDatagram(ref: Omit<FlowRef, 'proto'>, msg: Buffer): UdpVerdict {
    const cfg = this.config;
    const flow: FlowRef = { proto: 'udp', ...ref };
    const firstOfFlow = this.#udpFirstOfFlow(flow);
    const pass: UdpVerdict = { drop: false, forged: [], genuine: 0 };
    const r = this.residualFor(flow);
    if (r && r.mode === 'c5') {
      this.residualHits.c5++;
      this.log.record({
        behaviour: 'residual',
        rule: 'c5-quic',
        flow,
        features: { remainingMs: r.expiresAt - this.clock.now() },
        action: 'DROP_C2S',
      });
      return { ...pass, drop: true };
    }
    for (const insp of this.#udpInspectors) {
      const v = insp.inspect(flow, msg, firstOfFlow, this.isDomestic(ref.cIP));
      if (v.action === 'DROP_3TUPLE') {
        // The triggering datagram itself gets through; later ones on the 3-tuple do not.
        this.#addResidual(flow, 'c5', v.residualMs);
        this.log.record({
          behaviour: 'C5',
          rule: 'quic-sni',
          flow,
          features: v.features,
          action: 'DROP_C2S',
        });
      }
    }
    if (!cfg.c2.enabled || !cfg.c2.ports.includes(ref.sPort)) return pass;
    const q = parseDnsQuery(msg);
    if (!q) return pass;
    if (cfg.c2.strictQclass && q.qclass !== QCLASS_IN) return pass;
    const rule = matchDnsRule(this.#dnsRules, q.qname);
    const features = { qname: q.qname, qtype: q.qtype, rd: q.rd, rule: rule?.source ?? null };
    if (!rule) {
      this.log.record({ behaviour: 'C2', rule: 'dns-regex', flow, features, action: 'PASS' });
      return pass;
    }
    const n = Math.max(1, Math.min(3, cfg.c2.injectors));
    const forged: Buffer[] = [];
    const answers: string[] = [];
    for (let i = 0; i < n; i++) {
      const address = this.#pool.next(rule.source, q.qtype === QTYPE_AAAA);
      answers.push(address);
      forged.push(forgeAnswer(msg, q, { ttl: cfg.c2.ttls[i] ?? 60, address }));
    }
    this.log.record({
      behaviour: 'C2',
      rule: 'dns-regex',
      flow,
      features: {
        ...features,
        injectors: n,
        answers,
        answerType: q.qtype === QTYPE_AAAA ? 'AAAA' : 'A',
        flags: q.rd ? '0x8180' : '0x8400',
        ttls: cfg.c2.ttls.slice(0, n),
        // One measured injector copies the query's IP TTL into its reply; user space sees no TTLs.
        ipTtlCopy: 'not observable in user space',
        genuineDelayMs: cfg.c2.genuineDelayMs,
        dropGenuine: cfg.c2.dropGenuine,
      },
      action: 'INJECT',
    });
    return { drop: false, forged, genuine: cfg.c2.dropGenuine ? 'drop' : cfg.c2.genuineDelayMs };
  }

  /** True if the forged-address pool contains this address (for tests and reports). */
  isForgedAddress(a: string): boolean {
    return this.#pool.isForged(a);
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
