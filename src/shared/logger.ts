/**
 * Ladder's logger: one JSON object a line on stderr, in pino's line format (`level` as pino's
 * number, `time` in ms, the bound fields, the call's fields, `msg`), so log shippers and `jq`
 * filters written for pino read it unchanged.
 *
 * Our own rather than pino: every mode logs, and pino's module graph (thread-stream, sonic-boom,
 * the serializers, the redaction compiler) was a tenth of an idle client's memory for the dozen
 * features of it we use. What we use is here: levels, `isLevelEnabled`, child bindings, the
 * redaction backstop, and Error values as `{type, message, stack}`.
 */
import { CodedError } from './errors.js';

/** The levels, in pino's numbering; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const LEVEL_VALUES: Record<LogLevel, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

type LogFn = {
  (obj: object, msg?: string): void;
  (msg: string): void;
};

export interface Logger {
  /** The current level (may be set). */
  level: LogLevel;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  isLevelEnabled(level: LogLevel): boolean;
  /** A logger that adds `bindings` to every line and shares this one's destination. */
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * Keys blanked out wherever they appear at the top level or one level down (pino's `key` and
 * `*.key` paths). Privacy rule: no destination, client address, password, secret or access URL
 * is ever logged at the default level; this is the backstop for code that logs an object
 * carelessly.
 */
export const REDACT_KEYS: ReadonlySet<string> = new Set([
  'password',
  'secret',
  'key',
  'accessUrl',
  'url',
  'destination',
  'remoteAddress',
  'clientAddress',
]);
const CENSOR = '[redacted]';

export interface LoggerConfig {
  level?: string;
  /** Write to this destination instead of stderr (tests capture logs this way). */
  destination?: NodeJS.WritableStream;
}

/** A bad --log-level / LADDER_LOG_LEVEL (a user's input: the CLI prints the message alone). */
export class LogLevelError extends CodedError<'ERR_LOG_LEVEL'> {
  constructor(level: string) {
    super('ERR_LOG_LEVEL', `log level must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
  }
}

export function isLogLevel(text: string): text is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(text);
}

function plainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function errorFields(err: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { type: err.name, message: err.message, stack: err.stack };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  return out;
}

/** One level of an object, redacted; values one level further down are redacted too. */
function redacted(obj: Record<string, unknown>, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (REDACT_KEYS.has(k)) out[k] = CENSOR;
    else if (v instanceof Error) out[k] = errorFields(v);
    else if (depth > 0 && plainObject(v)) out[k] = redacted(v, depth - 1);
    else out[k] = v;
  }
  // req.headers.authorization (a Fastify-style request object) is never logged.
  const req = out.req;
  if (depth > 0 && plainObject(req) && plainObject(req.headers) && 'authorization' in req.headers) {
    out.req = { ...req, headers: { ...req.headers, authorization: CENSOR } };
  }
  return out;
}

function serialize(line: Record<string, unknown>): string {
  try {
    return JSON.stringify(line, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    // A cycle or a throwing getter: keep the line, lose the fields.
    return JSON.stringify({
      level: line.level,
      time: line.time,
      msg: line.msg,
      logError: 'unserializable fields',
    });
  }
}

class JsonLogger implements Logger {
  #value: number;
  #name: LogLevel;
  readonly #write: (line: string) => void;
  readonly #bindings: Record<string, unknown> | undefined;

  constructor(level: LogLevel, write: (line: string) => void, bindings?: Record<string, unknown>) {
    this.#name = level;
    this.#value = LEVEL_VALUES[level];
    this.#write = write;
    this.#bindings = bindings;
  }

  get level(): LogLevel {
    return this.#name;
  }

  set level(level: LogLevel) {
    if (!isLogLevel(level)) throw new LogLevelError(String(level));
    this.#name = level;
    this.#value = LEVEL_VALUES[level];
  }

  isLevelEnabled(level: LogLevel): boolean {
    return LEVEL_VALUES[level] >= this.#value && level !== 'silent';
  }

  child(bindings: Record<string, unknown>): Logger {
    return new JsonLogger(this.#name, this.#write, { ...this.#bindings, ...redacted(bindings, 1) });
  }

  #log(value: number, a: object | string, b?: string): void {
    if (value < this.#value) return;
    const line: Record<string, unknown> = { level: value, time: Date.now(), ...this.#bindings };
    let msg: string | undefined;
    if (typeof a === 'string') msg = a;
    else {
      if (a instanceof Error) {
        line.err = errorFields(a);
        msg = a.message;
      } else if (a !== null && typeof a === 'object')
        Object.assign(line, redacted(a as Record<string, unknown>, 1));
      if (b !== undefined) msg = b;
    }
    if (msg !== undefined) line.msg = msg;
    this.#write(`${serialize(line)}\n`);
  }

  trace: LogFn = (a: object | string, b?: string) => this.#log(10, a, b);
  debug: LogFn = (a: object | string, b?: string) => this.#log(20, a, b);
  info: LogFn = (a: object | string, b?: string) => this.#log(30, a, b);
  warn: LogFn = (a: object | string, b?: string) => this.#log(40, a, b);
  error: LogFn = (a: object | string, b?: string) => this.#log(50, a, b);
  fatal: LogFn = (a: object | string, b?: string) => this.#log(60, a, b);
}

/** A logger at `cfg.level` (default info; a level not in LOG_LEVELS throws LogLevelError). */
export function createLogger(cfg: LoggerConfig = {}): Logger {
  // The CLI resolves --log-level / LADDER_LOG_LEVEL; an empty value means the default.
  const level = cfg.level || 'info';
  if (!isLogLevel(level)) throw new LogLevelError(level);
  const dest = cfg.destination ?? process.stderr;
  return new JsonLogger(level, (line) => void dest.write(line));
}

/** A logger that discards everything (library default when the caller passes none). */
export const silentLogger: Logger = new JsonLogger('silent', () => {});
