/**
 * One structured record per censor decision: which behaviour and rule looked at what, the
 * features it computed, and the action taken. Kept in memory so tests can assert *why*
 * something was or was not blocked, and printable as JSON lines.
 */
export type Behaviour =
  'C1' | 'C2' | 'C3' | 'C4' | 'C5' | 'C6' | 'C7' | 'C8' | 'C9' | 'C10' | 'C12' | 'residual' | 'path';

export type Action =
  | 'PASS'
  | 'DROP_C2S'
  | 'DROP_S2C'
  | 'RST_BOTH'
  | 'RST_CLIENT'
  | 'BLACKHOLE_NEW'
  | 'REFUSE_NEW'
  | 'INJECT'
  | 'PROBE'
  | 'VERDICT'
  | 'BLOCK_ENDPOINT'
  | 'SCHEDULE';

export interface FlowRef {
  readonly proto: 'tcp' | 'udp';
  readonly cIP: string;
  readonly cPort: number;
  readonly sIP: string;
  readonly sPort: number;
}

export interface Decision {
  /** Sequence number within this log, from 1. */
  readonly seq: number;
  /** Virtual milliseconds since the censor started. */
  readonly t: number;
  readonly behaviour: Behaviour;
  /** The rule inside the behaviour, e.g. "fet", "residual-3tuple", "sni-first-record". */
  readonly rule: string;
  readonly flow?: FlowRef;
  readonly features: Readonly<Record<string, unknown>>;
  readonly action: Action;
  /** True when the action interferes with traffic (anything but PASS, and not bookkeeping). */
  readonly blocked: boolean;
}

export type DecisionInput = Omit<Decision, 'seq' | 't' | 'blocked'> & { blocked?: boolean };

const INTERFERING: ReadonlySet<Action> = new Set([
  'DROP_C2S',
  'DROP_S2C',
  'RST_BOTH',
  'RST_CLIENT',
  'BLACKHOLE_NEW',
  'REFUSE_NEW',
  'INJECT',
]);

export class DecisionLog {
  readonly #records: Decision[] = [];
  readonly #now: () => number;
  readonly #start: number;
  readonly #limit: number;
  readonly #listeners = new Set<(d: Decision) => void>();
  #dropped = 0;

  constructor(now: () => number, limit = 100_000) {
    this.#now = now;
    this.#start = now();
    this.#limit = limit;
  }

  record(input: DecisionInput): Decision {
    const d: Decision = {
      seq: this.#records.length + this.#dropped + 1,
      t: this.#now() - this.#start,
      ...input,
      blocked: input.blocked ?? INTERFERING.has(input.action),
    };
    if (this.#records.length >= this.#limit) {
      this.#records.shift();
      this.#dropped++;
    }
    this.#records.push(d);
    for (const l of this.#listeners) l(d);
    return d;
  }

  get records(): readonly Decision[] {
    return this.#records;
  }

  filter(pred: Partial<Pick<Decision, 'behaviour' | 'rule' | 'action' | 'blocked'>>): Decision[] {
    return this.#records.filter(
      (d) =>
        (pred.behaviour === undefined || d.behaviour === pred.behaviour) &&
        (pred.rule === undefined || d.rule === pred.rule) &&
        (pred.action === undefined || d.action === pred.action) &&
        (pred.blocked === undefined || d.blocked === pred.blocked),
    );
  }

  onRecord(fn: (d: Decision) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Every record as one JSON object per line. Buffers in features print as hex. */
  toJsonLines(): string {
    return (
      this.#records.map((d) => JSON.stringify(d, jsonReplacer)).join('\n') +
      (this.#records.length ? '\n' : '')
    );
  }
}

export function jsonReplacer(_key: string, value: unknown): unknown {
  if (
    value &&
    typeof value === 'object' &&
    (value as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((value as { data?: unknown }).data)
  ) {
    return Buffer.from((value as { data: number[] }).data).toString('hex');
  }
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  return value;
}
