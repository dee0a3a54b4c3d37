/**
 * An active prober in the manner of the GFW's Shadowsocks prober (docs/glossary.md C7): it sends one
 * probe per connection and classifies the server's reaction as DATA (any byte came back), FIN
 * (orderly close), RST (ECONNRESET) or TIMEOUT (the prober gave up first), with the time from
 * sending to the close. `judge()` turns a batch of results into a list of violations of the
 * uniform-failure rule (D6), so the same assertions can be run against Ladder and against naive
 * servers (the negative controls).
 */
import net from 'node:net';

export type Reaction = 'FIN' | 'RST' | 'TIMEOUT' | 'ERROR';

export interface Probe {
  /** e.g. "NR len=17", "R2 flip byte 0". */
  label: string;
  payload: Buffer;
}

export interface ProbeResult {
  label: string;
  length: number;
  /** Bytes the server sent back. Must be 0. */
  bytesBack: number;
  reaction: Reaction;
  /** ms from the probe's write to the close (or to giving up). */
  ms: number;
  /** Whether the prober half-closed (FIN) after sending. */
  halfClosed: boolean;
  detail?: string;
}

export interface ProbeOptions {
  /** Send FIN right after the payload. */
  halfClose?: boolean;
  /** Give up waiting for the server after this long. */
  giveUpMs: number;
  /**
   * Send the payload one byte at a time, this many ms apart (the slow "one byte at a time"
   * probe). Timing then counts from the last byte, or with `fromFirstByte` from the first.
   */
  trickleMs?: number;
  fromFirstByte?: boolean;
}

export function probeOnce(
  port: number,
  probe: Probe,
  opts: ProbeOptions,
  host = '127.0.0.1',
): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    const s = net.connect({ port, host, allowHalfOpen: true });
    s.setNoDelay(true);
    const halfClosed = opts.halfClose ?? false;
    let t0 = 0;
    let finMs = -1;
    let bytesBack = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    /** The trickle's next byte (apart from `timer`, which the give-up clock may hold meanwhile). */
    let tick: NodeJS.Timeout | undefined;
    const finish = (reaction: Reaction, detail?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(tick);
      const ms = reaction === 'FIN' && finMs >= 0 ? finMs : t0 === 0 ? 0 : performance.now() - t0;
      s.destroy();
      resolve({
        label: probe.label,
        length: probe.payload.length,
        bytesBack,
        reaction,
        ms,
        halfClosed,
        ...(detail ? { detail } : {}),
      });
    };
    // Connecting on loopback is quick; the give-up clock starts at the write.
    timer = setTimeout(() => finish('ERROR', 'connect timeout'), 10_000);
    const startClock = (): void => {
      t0 = performance.now();
      timer = setTimeout(() => finish('TIMEOUT'), opts.giveUpMs);
    };
    s.once('connect', () => {
      clearTimeout(timer);
      const trickle = opts.trickleMs;
      if (trickle === undefined || probe.payload.length <= 1) {
        startClock();
        if (halfClosed) s.end(probe.payload);
        else s.write(probe.payload);
        return;
      }
      let i = 0;
      const next = (): void => {
        if (settled) return;
        const last = i === probe.payload.length - 1;
        const byte = probe.payload.subarray(i, i + 1);
        if (i === 0 && opts.fromFirstByte === true) startClock();
        i++;
        if (last) {
          if (opts.fromFirstByte !== true) startClock();
          if (halfClosed) s.end(byte);
          else s.write(byte);
        } else {
          s.write(byte);
          tick = setTimeout(next, trickle);
        }
      };
      next();
    });
    s.on('data', (d: Buffer) => {
      bytesBack += d.length;
    });
    s.once('end', () => {
      finMs = performance.now() - t0;
      clearTimeout(timer);
      clearTimeout(tick);
      // Linger briefly: an RST may follow when the server closes with data unread.
      timer = setTimeout(() => finish('FIN'), 30);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') finish('RST', e.code);
      else finish('ERROR', e.code ?? e.message);
    });
    s.once('close', () => {
      if (finMs >= 0) finish('FIN');
      else finish('ERROR', 'closed without FIN or error');
    });
  });
}

/**
 * Run probes with at most `concurrency` in flight, in a shuffled order so that scheduling noise
 * (waves of concurrent connections) cannot line up with probe length. Results come back in
 * input order.
 */
export async function runProbes(
  port: number,
  probes: readonly Probe[],
  opts: ProbeOptions & { concurrency?: number },
): Promise<ProbeResult[]> {
  const out: ProbeResult[] = new Array<ProbeResult>(probes.length);
  const order = probes.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const k = next++;
      if (k >= order.length) return;
      const i = order[k]!;
      out[i] = await probeOnce(port, probes[i]!, opts);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 20, probes.length) }, worker));
  return out;
}

export interface Policy {
  /** Without half-close: the server may close no earlier than this after the probe ... */
  minCloseMs: number;
  /** ... and no later than this (beyond it counts as TIMEOUT, which is also a violation here). */
  maxCloseMs: number;
  /** Largest allowed spread (max - min) of per-length-bucket median close times. */
  maxBucketSpreadMs: number;
}

export const LENGTH_BUCKETS: readonly [number, number][] = [
  [1, 15],
  [16, 33],
  [34, 50],
  [51, 100],
  [101, 100_000],
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Judgement {
  violations: string[];
  /** Median close time per bucket label, for the report. */
  bucketMedians: Record<string, number>;
  reactions: Record<string, number>;
}

/** Check a batch of results against the uniform-failure policy. */
export function judge(results: readonly ProbeResult[], policy: Policy): Judgement {
  const violations: string[] = [];
  const reactions: Record<string, number> = {};
  for (const r of results) {
    reactions[r.reaction] = (reactions[r.reaction] ?? 0) + 1;
    const at = `${r.label} (len ${r.length}${r.halfClosed ? ', half-closed' : ''})`;
    if (r.bytesBack > 0) violations.push(`${at}: server sent ${r.bytesBack} bytes (DATA)`);
    if (r.reaction !== 'FIN')
      violations.push(
        `${at}: reaction ${r.reaction}${r.detail ? ` ${r.detail}` : ''} after ${r.ms.toFixed(0)} ms, expected FIN`,
      );
    else if (r.ms < policy.minCloseMs)
      violations.push(`${at}: closed early, after ${r.ms.toFixed(0)} ms (< ${policy.minCloseMs})`);
    else if (r.ms > policy.maxCloseMs)
      violations.push(`${at}: closed late, after ${r.ms.toFixed(0)} ms (> ${policy.maxCloseMs})`);
  }
  const bucketMedians: Record<string, number> = {};
  for (const [lo, hi] of LENGTH_BUCKETS) {
    const xs = results
      .filter((r) => r.length >= lo && r.length <= hi && r.reaction === 'FIN')
      .map((r) => r.ms);
    if (xs.length > 0) bucketMedians[`${lo}-${hi >= 100_000 ? '∞' : hi}`] = median(xs);
  }
  const meds = Object.values(bucketMedians);
  if (meds.length > 1) {
    const spread = Math.max(...meds) - Math.min(...meds);
    if (spread > policy.maxBucketSpreadMs) {
      violations.push(
        `time-to-close depends on probe length: bucket medians ${JSON.stringify(roundAll(bucketMedians))} spread ${spread.toFixed(0)} ms > ${policy.maxBucketSpreadMs} ms`,
      );
    }
  }
  return { violations, bucketMedians, reactions };
}

function roundAll(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v)]));
}

/** Random probes of lengths 1..100 and 221 (the GFW's NR set). */
export function randomProbes(rand: (n: number) => Buffer): Probe[] {
  const lengths = [...Array.from({ length: 100 }, (_, i) => i + 1), 221];
  return lengths.map((n) => ({ label: `NR len=${n}`, payload: rand(n) }));
}

function flip(buf: Buffer, idx: readonly number[]): Buffer {
  const b = Buffer.from(buf);
  for (const i of idx) if (i < b.length) b[i] = b[i]! ^ 0xff;
  return b;
}

/** R1 (identical replay) and R2-R4 (byte-altered replays) of a captured first packet. */
export function replayProbes(first: Buffer, tag: string): Probe[] {
  return [
    { label: `${tag} R1 identical replay`, payload: Buffer.from(first) },
    { label: `${tag} R2 byte 0 flipped`, payload: flip(first, [0]) },
    { label: `${tag} R3 bytes 0-7,62-63 flipped`, payload: flip(first, [0, 1, 2, 3, 4, 5, 6, 7, 62, 63]) },
    { label: `${tag} R4 byte 16 flipped`, payload: flip(first, [16]) },
  ];
}

/** One-line summary of a batch for logs. */
export function summarise(name: string, results: readonly ProbeResult[], j: Judgement): string {
  const ms = results.map((r) => r.ms);
  return `${name}: ${results.length} probes, reactions ${JSON.stringify(j.reactions)}, bytes back ${results.reduce((a, r) => a + r.bytesBack, 0)}, close ms min ${Math.min(...ms).toFixed(0)} max ${Math.max(...ms).toFixed(0)}, bucket medians ${JSON.stringify(roundAll(j.bucketMedians))}, violations ${j.violations.length}`;
}
