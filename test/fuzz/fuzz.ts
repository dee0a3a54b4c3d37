/**
 * Seeded, bounded fuzzing: a fixed-seed generator (src/lab/rng.ts) and mutators of valid samples
 * (bit flips, truncation at every offset, length bytes set to 0/max/off-by-one, repeated or
 * deleted sections, random bytes), and a runner that feeds each case to a parser and asserts it
 * either returns or throws the module's own typed error, within a time bound per case. A failure
 * names the target, the case number and the input (hex or JSON) so it replays as a regression
 * test. FUZZ_SEED overrides the seed (the default is fixed so CI is reproducible); FUZZ_SCALE
 * multiplies the case counts for a longer local run.
 */
import assert from 'node:assert/strict';
import { SeededRng } from '../../src/lab/rng.js';

export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 0x1adde2);
export const FUZZ_SCALE = Math.max(1, Number(process.env.FUZZ_SCALE ?? 1));

export function rng(label: string): SeededRng {
  return new SeededRng(FUZZ_SEED).fork(label);
}

/** Every truncation of `sample` (lengths 0..n-1): the "input ended early" cases. */
export function* truncations(sample: Uint8Array): Generator<Buffer> {
  for (let n = 0; n < sample.length; n++) yield Buffer.from(sample.subarray(0, n));
}

/** One random mutation of a byte sample. */
export function mutateBytes(r: SeededRng, sample: Uint8Array): Buffer {
  const b = Buffer.from(sample);
  if (b.length === 0) return r.bytes(r.int(16));
  const at = r.int(b.length);
  switch (r.int(8)) {
    case 0: // bit flip
      b[at] = b[at]! ^ (1 << r.int(8));
      return b;
    case 1: // a length-ish byte set to 0, 0xff, or ±1
      b[at] = r.pick([0, 0xff, 0x7f, 0x80, (b[at]! + 1) & 0xff, (b[at]! - 1) & 0xff]);
      return b;
    case 2: // a 16-bit field set to 0/max/off-by-one
      if (at + 1 < b.length) {
        const v = b.readUInt16BE(at);
        b.writeUInt16BE(r.pick([0, 0xffff, (v + 1) & 0xffff, (v - 1) & 0xffff, 0x8000]), at);
      }
      return b;
    case 3: {
      // repeat a section
      const end = at + r.range(1, Math.min(64, b.length - at));
      return Buffer.concat([b.subarray(0, end), b.subarray(at, end), b.subarray(end)]);
    }
    case 4: {
      // delete a section
      const end = at + r.range(1, Math.min(16, b.length - at));
      return Buffer.concat([b.subarray(0, at), b.subarray(end)]);
    }
    case 5: // truncate
      return b.subarray(0, at);
    case 6: // random bytes appended
      return Buffer.concat([b, r.bytes(r.range(1, 32))]);
    default: // several random bytes overwritten
      for (let i = 0; i < r.range(1, 4); i++) b[r.int(b.length)] = r.int(256);
      return b;
  }
}

/** Characters that break text parsers: delimiters, escapes, controls, non-ASCII, surrogates. */
const NASTY = [
  '%',
  '%2',
  '%zz',
  '%00',
  '%ff',
  '%C2%A8',
  '%F0%9F',
  '@',
  ':',
  '::',
  '/',
  '?',
  '&',
  '=',
  '#',
  ';',
  '\\',
  '[',
  ']',
  '[::1]',
  ' ',
  '\t',
  '\n',
  '\r\n',
  '\0',
  '\x7f',
  '\u00e9',
  '\u{1f600}',
  '\ud800',
  '\udc00',
  '+',
  '-',
  '.',
  '0',
  '65535',
  '65536',
  '-1',
  '99999999999999999999',
  '{',
  '}',
  '"',
  "'",
  '*',
  '&&',
  '<<',
  '$',
  'null',
  'true',
  '[]',
  '{}',
  ',',
  '!',
  '~',
  '`',
  '==',
  'ss://',
  'ssconf://',
  'a'.repeat(300),
];

/** One random mutation of a text sample. */
export function mutateText(r: SeededRng, sample: string): string {
  const s = [...sample];
  const at = r.int(s.length + 1);
  switch (r.int(6)) {
    case 0: // insert a nasty piece
      s.splice(at, 0, r.pick(NASTY));
      break;
    case 1: // replace a character with a nasty piece
      s.splice(at, 1, r.pick(NASTY));
      break;
    case 2: // delete a run
      s.splice(at, r.range(1, 8));
      break;
    case 3: {
      // repeat a run
      const run = s.slice(at, at + r.range(1, 12));
      s.splice(at, 0, ...run, ...run);
      break;
    }
    case 4: // truncate
      s.length = Math.min(s.length, at);
      break;
    default: // random printable ASCII
      s.splice(at, r.range(0, 2), String.fromCharCode(r.range(0x20, 0x7e)));
  }
  return s.join('');
}

/** A case shown in a failure: hex for bytes, JSON for text and values (bounded). */
export function show(input: unknown): string {
  const s =
    Buffer.isBuffer(input) || input instanceof Uint8Array
      ? `hex:${Buffer.from(input).toString('hex')}`
      : (JSON.stringify(input) ?? String(input));
  return s.length > 600 ? `${s.slice(0, 600)}…(${s.length} chars)` : s;
}

export interface RunOptions {
  /** Is this thrown value the module's own typed error? */
  typed: (err: unknown) => boolean;
  /** User-facing: the message must be one line (no stack, no newline) and not empty. */
  oneLine?: boolean;
  /** Most milliseconds of CPU one case may take (synchronous parsers; default 250): see timeCase. */
  maxMs?: number;
  /** Further checks on a case that parsed (wrong-but-silent acceptance). */
  accepted?: (input: never, out: unknown) => void;
  /** Further checks on a typed error (e.g. that it does not echo a secret). */
  refused?: (input: never, err: Error) => void;
}

export interface RunStats {
  cases: number;
  accepted: number;
  refused: number;
}

/** A case's bounds: CPU milliseconds (x4 with CI=true: slower runners) and a wall-clock backstop. */
export function caseBound(maxMs = 250): { cpuMs: number; wallMs: number } {
  const cpuMs = maxMs * (process.env.CI === 'true' ? 4 : 1);
  return { cpuMs, wallMs: cpuMs * WALL_FACTOR };
}

/** How much longer than the CPU bound a case may take by the clock (a loaded machine's queue). */
const WALL_FACTOR = 20;

/**
 * Run `run` (one case) and say why it is too slow, or undefined. The measure is the process's
 * CPU time (user + system), not the clock: on a loaded laptop a case waits for a core and its
 * wall time grows with the load, its CPU time does not. A case over a bound is run twice more and
 * judged by its fastest run, so one collection of V8's heap landing in it does not fail it; a
 * parser that is slow (a regular expression backtracking, a loop over the input) is slow every
 * time. The clock still bounds a case at WALL_FACTOR times the CPU bound, so a case that blocks
 * without burning CPU (a synchronous read that waits) fails too; one that never returns is the
 * test runner's timeout, as before.
 */
export function timeCase(run: () => void, bound: { cpuMs: number; wallMs: number }): string | undefined {
  let best = { cpuMs: Infinity, wallMs: Infinity };
  for (let attempt = 0; attempt < 3; attempt++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    run();
    const wallMs = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const cpuMs = (c.user + c.system) / 1000;
    best = { cpuMs: Math.min(best.cpuMs, cpuMs), wallMs: Math.min(best.wallMs, wallMs) };
    if (best.cpuMs <= bound.cpuMs && best.wallMs <= bound.wallMs) return undefined;
  }
  return (
    `took ${best.cpuMs.toFixed(0)} ms of CPU and ${best.wallMs.toFixed(0)} ms by the clock at best of 3 runs ` +
    `(bounds ${bound.cpuMs} and ${bound.wallMs})`
  );
}

/** Feed every case to `parse`, asserting the contract; returns counts for the report. */
export function fuzz<T>(
  target: string,
  cases: Iterable<T>,
  parse: (input: T) => unknown,
  o: RunOptions,
): RunStats {
  const stats: RunStats = { cases: 0, accepted: 0, refused: 0 };
  const bound = caseBound(o.maxMs);
  for (const input of cases) {
    const n = stats.cases++;
    let out: unknown;
    let threw: unknown;
    let didThrow = false;
    const run = (): void => {
      didThrow = false;
      try {
        out = parse(input);
      } catch (err) {
        threw = err;
        didThrow = true;
      }
    };
    const where = `${target} case ${n} (seed ${FUZZ_SEED}) input ${show(input)}`;
    const slow = timeCase(run, bound);
    assert.ok(slow === undefined, `${where}: ${slow}`);
    if (!didThrow) {
      stats.accepted++;
      o.accepted?.(input as never, out);
      continue;
    }
    stats.refused++;
    if (!o.typed(threw)) {
      const e = threw as Error;
      assert.fail(`${where}: untyped throw ${e?.name}: ${e?.message}\n${e?.stack ?? ''}`);
    }
    const msg = (threw as Error).message;
    if (o.oneLine) {
      assert.ok(msg.trim().length > 0, `${where}: empty error message`);
      assert.ok(!/[\r\n]/.test(msg), `${where}: error message is not one line: ${JSON.stringify(msg)}`);
      assert.ok(!/\n\s+at /.test(msg), `${where}: error message carries a stack`);
    }
    o.refused?.(input as never, threw as Error);
  }
  return stats;
}

/** `count` mutants of each sample (text), plus the samples themselves. */
export function* textCases(label: string, samples: readonly string[], count: number): Generator<string> {
  const r = rng(label);
  yield* samples;
  for (let i = 0; i < count * FUZZ_SCALE; i++) {
    let s = r.pick(samples);
    for (let k = r.range(1, 3); k > 0; k--) s = mutateText(r, s);
    yield s;
  }
}

/** Truncations of each sample, then `count` mutants (bytes). */
export function* byteCases(label: string, samples: readonly Uint8Array[], count: number): Generator<Buffer> {
  const r = rng(label);
  for (const s of samples) {
    yield Buffer.from(s);
    yield* truncations(s);
  }
  for (let i = 0; i < count * FUZZ_SCALE; i++) {
    let b: Buffer = Buffer.from(r.pick(samples));
    for (let k = r.range(1, 3); k > 0; k--) b = mutateBytes(r, b);
    yield b;
  }
  for (let i = 0; i < 50 * FUZZ_SCALE; i++) yield r.bytes(r.int(64));
}
