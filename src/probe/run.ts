/** Measure a list of URLs with bounded concurrency, in list order. */
import { measureUrl, type Measurement, type ProbeOptions } from './measure.js';

export interface ListEntry {
  readonly url: string;
  /** citizenlab category code (e.g. NEWS), when the list gave one. */
  readonly category?: string | undefined;
}

export interface ProbeResult extends Measurement {
  readonly category: string;
}

export interface ListOptions extends ProbeOptions {
  /** URLs measured at once (default 8, at most 256). */
  readonly concurrency?: number;
  readonly onResult?: (done: number, total: number, r: ProbeResult) => void;
}

export async function probeList(entries: readonly ListEntry[], opts: ListOptions): Promise<ProbeResult[]> {
  const out = new Array<ProbeResult>(entries.length);
  let next = 0;
  let done = 0;
  const width = Math.max(1, Math.min(opts.concurrency ?? 8, 256, entries.length));
  const worker = async (): Promise<void> => {
    while (next < entries.length) {
      const i = next++;
      const e = entries[i]!;
      const m = await measureUrl(e.url, opts);
      out[i] = { ...m, category: e.category ?? 'MISC' };
      opts.onResult?.(++done, entries.length, out[i]);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return attributeResiduals(out);
}

/**
 * Residual censorship: after a name-based trigger (SNI, Host, keyword) the GFW resets every new
 * connection from this client to that address:port for minutes. A list that repeats a host then
 * sees connects reset there, which alone would read as `tcp_ip`; the mechanism is the trigger's.
 * Only resets count (a null route is silence), and only where this run saw the trigger.
 */
export function attributeResiduals(results: ProbeResult[]): ProbeResult[] {
  const trigger = new Map<string, ProbeResult['keys']['blocking']>();
  for (const r of results) {
    if (r.keys.blocking !== 'tls' && r.keys.blocking !== 'http-failure') continue;
    for (const t of r.keys.tcp_connect)
      if (t.status.success) trigger.set(`${t.ip}:${t.port}`, r.keys.blocking);
  }
  return results.map((r) => {
    const tcp = r.keys.tcp_connect;
    if (r.keys.blocking !== 'tcp_ip' || tcp.length === 0) return r;
    if (!tcp.every((t) => t.status.failure === 'connection_reset')) return r;
    const mech = trigger.get(`${tcp[0]!.ip}:${tcp[0]!.port}`);
    if (!mech) return r;
    for (const t of tcp) t.status.blocked = false;
    return { ...r, keys: { ...r.keys, blocking: mech, x_residual: true } };
  });
}
