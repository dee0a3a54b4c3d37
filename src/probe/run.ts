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
  return out;
}
