/**
 * C7: the active prober (docs/glossary.md C7; IMC'20 §3-§6, Frolov et al. NDSS 2020).
 *
 * Fed by the censor's "suspicious fully-encrypted flow" events, it records the first payload,
 * connects *directly* to the real server from its own loopback source addresses, replays the
 * payload (R1, R2) and sends random probes of the measured lengths (NR1 trios, NR2 = 221 bytes,
 * the odd lengths), and only if R1 or R2 drew DATA moves on to stage 2 (R3, R4, R5, bytes 16-32
 * altered). It classifies each reaction as TIMEOUT, RST, FIN or DATA and flags the server as a
 * proxy by rules (i)-(v); a "proxy" verdict feeds C1.
 */
import net from 'node:net';
import type { Clock } from '../shared/clock.js';
import { sleep } from './clock.js';
import type { Censor, Endpoint, SuspiciousFlow } from './censor.js';
import type { CensorConfig } from './profiles.js';
import { SeededRng } from './rng.js';

export type Reaction = 'TIMEOUT' | 'RST' | 'FIN' | 'DATA' | 'ERROR';
export type ProbeKind = 'R1' | 'R2' | 'R3' | 'R4' | 'R5' | 'R16-32' | 'NR1' | 'NR2' | 'NR-other';

export interface ProbeResult {
  readonly kind: ProbeKind;
  readonly length: number;
  readonly reaction: Reaction;
  /** Virtual ms from sending the payload to the reaction (or to giving up). */
  readonly ms: number;
  /** Identifies identical payloads sent more than once (NR2 repeats). */
  readonly payloadId: string;
  readonly source: string;
}

export interface Verdict {
  /** The emulated endpoint (what C1 blocks), "ip:port". */
  readonly endpoint: string;
  readonly proxy: boolean;
  /** Which classifier rules fired: "i" .. "v". */
  readonly rules: readonly string[];
  readonly evidence: readonly string[];
  readonly stage2: boolean;
  readonly probes: readonly ProbeResult[];
}

export interface ProbeTarget {
  /** The emulated (censor-side) endpoint. */
  readonly endpoint: Endpoint;
  /** The real server the prober connects to. */
  readonly backend: Endpoint;
}

/** NR1: trios (n-1, n, n+1) for n = 8, 12, 16, 22, 33, 41, 49. */
export const NR1_LENGTHS: readonly number[] = [8, 12, 16, 22, 33, 41, 49].flatMap((n) => [n - 1, n, n + 1]);
export const NR2_LENGTH = 221;
export const NR_OTHER_LENGTHS: readonly number[] = [53, 56, 169, 180, 402];

export interface ProberOptions {
  readonly censor: Censor;
  readonly seed?: number;
  /** Source addresses the probes come from (distinct loopback addresses). */
  readonly sources?: readonly string[];
  /** Real-time floor on the reaction wait, so a compressed clock does not starve slow hosts. */
  readonly minRealWaitMs?: number;
}

/**
 * Replay delay drawn from the measured CDF (min 0.28 s; P(<=1 s) ~ 0.2, P(<=60 s) ~ 0.5,
 * P(<=15 min) ~ 0.75; tail to 570 h), then capped at maxDelayMs (the lab's compression).
 */
export function replayDelayMs(rng: SeededRng, maxDelayMs: number): number {
  const u = rng.next();
  let d: number;
  if (u < 0.2) d = 280 + rng.next() * 720;
  else if (u < 0.5) d = 1_000 + rng.next() * 59_000;
  else if (u < 0.75) d = 60_000 + rng.next() * 840_000;
  else d = 900_000 + rng.next() * (570 * 3_600_000 - 900_000);
  return Math.min(Math.round(d), maxDelayMs);
}

function alter(payload: Buffer, positions: readonly number[], rng: SeededRng): Buffer {
  const out = Buffer.from(payload);
  for (const p of positions) if (p < out.length) out[p] = out[p]! ^ (1 + rng.int(255));
  return out;
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

interface Planned {
  readonly kind: ProbeKind;
  readonly payload: Buffer;
  readonly payloadId: string;
  readonly delayMs: number;
}

export class ActiveProber {
  readonly #censor: Censor;
  readonly #clock: Clock;
  readonly #cfg: CensorConfig['c7'];
  readonly #rng: SeededRng;
  readonly #sources: readonly string[];
  readonly #minRealWaitMs: number;
  readonly #campaigns = new Map<string, Promise<Verdict>>();
  readonly #verdicts = new Map<string, Verdict>();
  readonly #held: Array<SuspiciousFlow> = [];
  #holding = false;
  #sourceIdx = 0;
  #active = 0;
  readonly #waiters: Array<() => void> = [];
  #unsubscribe: (() => void) | undefined;

  constructor(opts: ProberOptions) {
    this.#censor = opts.censor;
    this.#clock = opts.censor.clock;
    this.#cfg = opts.censor.config.c7;
    this.#rng = new SeededRng(opts.seed ?? opts.censor.rng.seed).fork('c7');
    this.#sources = opts.sources ?? range(1, 8).map((i) => `127.0.30.${i}`);
    this.#minRealWaitMs = opts.minRealWaitMs ?? 150;
  }

  /** Subscribe to the censor's suspicious-flow events (only when C7 is enabled). */
  attach(): this {
    if (this.#cfg.enabled && !this.#unsubscribe)
      this.#unsubscribe = this.#censor.onSuspiciousFlow((s) => this.#onSuspicious(s));
    return this;
  }

  detach(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  /** Queue suspicious flows instead of acting on them (the measured delay reaches hours). */
  hold(): void {
    this.#holding = true;
  }

  /** Act on every queued flow. */
  release(): void {
    this.#holding = false;
    for (const s of this.#held.splice(0)) this.#onSuspicious(s);
  }

  /** Resolves when every campaign started so far has produced its verdict. */
  async settled(): Promise<void> {
    for (;;) {
      const n = this.#campaigns.size;
      await Promise.all(this.#campaigns.values());
      if (this.#campaigns.size === n) return;
    }
  }

  get verdicts(): ReadonlyMap<string, Verdict> {
    return this.#verdicts;
  }

  #onSuspicious(s: SuspiciousFlow): void {
    if (this.#holding) {
      this.#held.push(s);
      return;
    }
    const key = `${s.flow.sIP}:${s.flow.sPort}`;
    const len = s.payload.length;
    const inRange = len >= this.#cfg.minLength && len <= this.#cfg.maxLength;
    let p = inRange ? 1 : 0;
    if (inRange && this.#cfg.weighted)
      p = Math.min(1, 0.05 * ([2, 9].includes(len % 16) ? 3 : 1) * (s.entropy >= 7 ? 4 : 1));
    const features = {
      length: len,
      mod16: len % 16,
      entropy: Math.round(s.entropy * 1000) / 1000,
      inRange,
      p,
      campaignRunning: this.#campaigns.has(key),
    };
    if (!this.#rng.chance(p) || this.#campaigns.has(key)) {
      this.#censor.log.record({
        behaviour: 'C7',
        rule: 'trigger',
        flow: s.flow,
        features,
        action: 'PASS',
        blocked: false,
      });
      return;
    }
    this.#censor.log.record({
      behaviour: 'C7',
      rule: 'trigger',
      flow: s.flow,
      features,
      action: 'SCHEDULE',
      blocked: false,
    });
    const target: ProbeTarget = { endpoint: { host: s.flow.sIP, port: s.flow.sPort }, backend: s.backend };
    this.#campaigns.set(key, this.campaign(target, s.payload));
  }

  /** Run a whole staged campaign against one server, classify, and feed C1 on "proxy". */
  async campaign(target: ProbeTarget, recorded: Buffer): Promise<Verdict> {
    const endpoint = `${target.endpoint.host}:${target.endpoint.port}`;
    const rng = this.#rng.fork(endpoint);
    const max = this.#cfg.maxDelayMs;
    const stage1: Planned[] = [
      { kind: 'R1', payload: recorded, payloadId: 'R1', delayMs: replayDelayMs(rng, max) },
      { kind: 'R2', payload: alter(recorded, [0], rng), payloadId: 'R2', delayMs: replayDelayMs(rng, max) },
    ];
    for (const n of NR1_LENGTHS)
      stage1.push({ kind: 'NR1', payload: rng.bytes(n), payloadId: `NR1-${n}`, delayMs: rng.int(max + 1) });
    const nr2a = rng.bytes(NR2_LENGTH);
    stage1.push({ kind: 'NR2', payload: nr2a, payloadId: 'NR2-a', delayMs: rng.int(max + 1) });
    stage1.push({ kind: 'NR2', payload: nr2a, payloadId: 'NR2-a', delayMs: max + 1 }); // the repeat, after the first
    stage1.push({
      kind: 'NR2',
      payload: rng.bytes(NR2_LENGTH),
      payloadId: 'NR2-b',
      delayMs: rng.int(max + 1),
    });
    for (const n of NR_OTHER_LENGTHS)
      stage1.push({
        kind: 'NR-other',
        payload: rng.bytes(n),
        payloadId: `NR-${n}`,
        delayMs: rng.int(max + 1),
      });

    const results = await this.#runAll(target, stage1);
    const r12Data = results.some((r) => (r.kind === 'R1' || r.kind === 'R2') && r.reaction === 'DATA');
    if (r12Data) {
      const stage2: Planned[] = [
        {
          kind: 'R3',
          payload: alter(recorded, [...range(0, 7), 62, 63], rng),
          payloadId: 'R3',
          delayMs: rng.int(max + 1),
        },
        { kind: 'R4', payload: alter(recorded, [16], rng), payloadId: 'R4', delayMs: rng.int(max + 1) },
        { kind: 'R5', payload: alter(recorded, [6, 16], rng), payloadId: 'R5', delayMs: rng.int(max + 1) },
        {
          kind: 'R16-32',
          payload: alter(recorded, range(16, 32), rng),
          payloadId: 'R16-32',
          delayMs: rng.int(max + 1),
        },
      ];
      results.push(...(await this.#runAll(target, stage2)));
    }
    const verdict = classify(endpoint, results, this.#cfg.timeoutMs, r12Data);
    this.#verdicts.set(endpoint, verdict);
    this.#censor.log.record({
      behaviour: 'C7',
      rule: 'classifier',
      features: {
        endpoint,
        proxy: verdict.proxy,
        rules: verdict.rules,
        evidence: verdict.evidence,
        stage2: verdict.stage2,
        reactions: summarize(results),
      },
      action: 'VERDICT',
      blocked: false,
    });
    if (verdict.proxy) {
      const block = (): void =>
        this.#censor.blockEndpoint(
          target.endpoint.host,
          this.#cfg.scope === 'ip' ? undefined : target.endpoint.port,
          `prober verdict: rules ${verdict.rules.join(',')}`,
        );
      if (this.#cfg.confirmDelayMs > 0) await sleep(this.#clock, this.#cfg.confirmDelayMs);
      block();
    }
    return verdict;
  }

  async #runAll(target: ProbeTarget, plan: Planned[]): Promise<ProbeResult[]> {
    // Same-payload repeats must run after their first copy, so order by delay and keep order.
    const sorted = plan.map((p, i) => ({ p, i })).sort((a, b) => a.p.delayMs - b.p.delayMs || a.i - b.i);
    const out: ProbeResult[] = new Array<ProbeResult>(plan.length);
    const firstDone = new Map<string, Promise<unknown>>();
    await Promise.all(
      sorted.map(async ({ p, i }) => {
        await sleep(this.#clock, p.delayMs);
        const prior = firstDone.get(p.payloadId);
        const run = (async (): Promise<void> => {
          if (prior) await prior;
          await this.#acquire();
          try {
            out[i] = await this.probe(target.backend, p.kind, p.payload, p.payloadId);
          } finally {
            this.#releaseSlot();
          }
        })();
        if (!prior) firstDone.set(p.payloadId, run);
        await run;
      }),
    );
    for (const r of out) {
      this.#censor.log.record({
        behaviour: 'C7',
        rule: 'probe',
        features: {
          kind: r.kind,
          length: r.length,
          reaction: r.reaction,
          ms: r.ms,
          payloadId: r.payloadId,
          source: r.source,
        },
        action: 'PROBE',
        blocked: false,
      });
    }
    return out;
  }

  async #acquire(): Promise<void> {
    while (this.#active >= Math.max(1, this.#cfg.concurrency))
      await new Promise<void>((r) => this.#waiters.push(r));
    this.#active++;
  }

  #releaseSlot(): void {
    this.#active--;
    this.#waiters.shift()?.();
  }

  /** Send one probe from the next source address and classify the server's reaction. */
  probe(backend: Endpoint, kind: ProbeKind, payload: Buffer, payloadId: string = kind): Promise<ProbeResult> {
    const source = this.#sources[this.#sourceIdx++ % this.#sources.length]!;
    const clock = this.#clock;
    return new Promise((resolve) => {
      let sentAt = clock.now();
      let done = false;
      const s = net.connect({ host: backend.host, port: backend.port, localAddress: source });
      const finish = (reaction: Reaction): void => {
        if (done) return;
        done = true;
        clock.clearTimeout(virtualTimer);
        clearTimeout(realTimer);
        s.destroy();
        resolve({
          kind,
          length: payload.length,
          reaction,
          ms: Math.max(0, clock.now() - sentAt),
          payloadId,
          source,
        });
      };
      // Give up after the prober timeout of virtual time, but never before a real-time floor.
      let virtualExpired = false;
      let realExpired = false;
      const virtualTimer = clock.setTimeout(() => {
        virtualExpired = true;
        if (realExpired) finish('TIMEOUT');
      }, this.#cfg.timeoutMs);
      const realTimer = setTimeout(() => {
        realExpired = true;
        if (virtualExpired) finish('TIMEOUT');
      }, this.#minRealWaitMs);
      s.on('connect', () => {
        sentAt = clock.now();
        s.write(payload);
      });
      s.on('data', () => finish('DATA'));
      s.on('end', () => finish('FIN'));
      s.on('error', (err: NodeJS.ErrnoException) =>
        finish(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'RST' : 'ERROR'),
      );
      s.on('close', () => finish('FIN'));
    });
  }
}

function summarize(results: readonly ProbeResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) out[r.reaction] = (out[r.reaction] ?? 0) + 1;
  return out;
}

/**
 * The classifier (docs/glossary.md C7): proxy if any of
 *  (i)   R1 -> DATA;
 *  (ii)  the reaction class is a function of probe length with a threshold (bands);
 *  (iii) the RST share over random probes of >= 15 bytes is in [0.75, 0.995];
 *  (iv)  the same NR payload drew different reactions the first and second time;
 *  (v)   closes cluster at a fixed server timeout shorter than the prober's.
 */
export function classify(
  endpoint: string,
  results: readonly ProbeResult[],
  proberTimeoutMs: number,
  stage2: boolean,
): Verdict {
  const rules: string[] = [];
  const evidence: string[] = [];
  const r1 = results.filter((r) => r.kind === 'R1');
  if (r1.some((r) => r.reaction === 'DATA')) {
    rules.push('i');
    evidence.push('R1 (identical replay) drew DATA: no replay filter');
  }
  const nr = results
    .filter((r) => r.kind.startsWith('NR') && r.reaction !== 'ERROR')
    .sort((a, b) => a.length - b.length);
  // (ii) bands by length
  const byLen = new Map<number, Set<Reaction>>();
  for (const r of nr) {
    const s = byLen.get(r.length) ?? new Set<Reaction>();
    s.add(r.reaction);
    byLen.set(r.length, s);
  }
  const consistent = [...byLen.values()].every((s) => s.size === 1);
  if (consistent && byLen.size >= 2) {
    const seq = [...byLen.entries()].sort((a, b) => a[0] - b[0]).map(([len, s]) => ({ len, c: [...s][0]! }));
    const bands: Array<{ c: Reaction; from: number; to: number }> = [];
    for (const x of seq) {
      const last = bands[bands.length - 1];
      if (last && last.c === x.c) last.to = x.len;
      else bands.push({ c: x.c, from: x.len, to: x.len });
    }
    if (bands.length >= 2 && bands.length <= 4) {
      rules.push('ii');
      evidence.push(
        'reaction depends on probe length: ' + bands.map((b) => `${b.c} for ${b.from}..${b.to}`).join(', '),
      );
    }
  }
  // (iii) stream-cipher RST share
  const long = nr.filter((r) => r.length >= 15);
  if (long.length >= 5) {
    const share = long.filter((r) => r.reaction === 'RST').length / long.length;
    if (share >= 0.75 && share <= 0.995) {
      rules.push('iii');
      evidence.push(
        `RST share over random probes >= 15 bytes is ${share.toFixed(3)} (stream-cipher signature)`,
      );
    }
  }
  // (iv) same payload, different reactions
  const byId = new Map<string, Reaction[]>();
  for (const r of results.filter((x) => x.kind.startsWith('NR')))
    byId.set(r.payloadId, [...(byId.get(r.payloadId) ?? []), r.reaction]);
  for (const [id, rs] of byId) {
    if (rs.length >= 2 && new Set(rs).size > 1) {
      rules.push('iv');
      evidence.push(`payload ${id} sent twice drew ${rs.join(' then ')}`);
      break;
    }
  }
  // (v) fixed server timeout shorter than the prober's
  const closes = results.filter((r) => (r.reaction === 'FIN' || r.reaction === 'RST') && r.ms >= 1_000);
  if (closes.length >= Math.max(3, Math.ceil(results.length * 0.8))) {
    const ms = closes.map((r) => r.ms).sort((a, b) => a - b);
    const median = ms[Math.floor(ms.length / 2)]!;
    if (median < proberTimeoutMs && ms.every((m) => Math.abs(m - median) <= median * 0.2)) {
      rules.push('v');
      evidence.push(
        `connections closed after a fixed ~${median} ms, shorter than the prober timeout ${proberTimeoutMs} ms`,
      );
    }
  }
  return { endpoint, proxy: rules.length > 0, rules, evidence, stage2, probes: results };
}
