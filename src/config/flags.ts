/**
 * Command-line flags. Commander hands flag values over as strings; these rules turn them into
 * numbers and addresses with the shared parsers (src/shared/parse.ts), so a flag and the config
 * field it overrides accept the same text and fail with the same one-line message.
 *
 *   const f = parseFlags(clientFlagsSchema, flags);   // throws ParseError naming the flag
 *
 * Deliberately not zod: every command parses its flags at start, and zod's module graph is the
 * largest single part of an idle client's memory (bench/idle-rss.ts); the config-file schemas,
 * which need zod's structure, load only when a --config file is given.
 */
import {
  ParseError,
  parseHostPort,
  parseIntInRange,
  parsePort,
  parseSeconds,
  type HostPortOptions,
} from '../shared/parse.js';
import { MAX_CLIENT_SECONDS, MAX_FIRST_DATA_WAIT_MS, MAX_PENDING_CAP, MAX_WORKERS } from './defaults.js';

/** One flag: how its text is parsed, and whether it may be absent. */
export interface FlagRule<T> {
  /** The flag as the user typed it, e.g. "--port". */
  readonly what: string;
  readonly required: boolean;
  readonly parse: (text: string) => T;
  /** The same rule, allowed to be absent. */
  optional(): FlagRule<T | undefined>;
}

function rule<T>(what: string, parse: (text: string) => T, required = true): FlagRule<T> {
  return { what, required, parse, optional: () => rule<T | undefined>(what, parse, false) };
}

/** Rules for one flag each; `what` is the flag as the user typed it, e.g. "--port". */
export const flag = {
  port: (what: string, min: 0 | 1 = 0) => rule(what, (t) => parsePort(t, what, min)),
  int: (what: string, min: number, max: number) => rule(what, (t) => parseIntInRange(t, what, min, max)),
  seconds: (what: string, max?: number) => rule(what, (t) => parseSeconds(t, what, max)),
  hostPort: (what: string, opts: HostPortOptions) => rule(what, (t) => parseHostPort(t, what, opts)),
};

/** The flags of one command that need parsing (keyed as commander names them). */
export interface FlagSchema<S extends Record<string, FlagRule<unknown>>> {
  readonly shape: S;
}

export function flagSchema<S extends Record<string, FlagRule<unknown>>>(shape: S): FlagSchema<S> {
  return { shape };
}

export type ParsedFlags<S extends Record<string, FlagRule<unknown>>> = {
  [K in keyof S]: S[K] extends FlagRule<infer T> ? T : never;
};

/**
 * Parse the flags a schema names (other flags are left to the command); the first bad one
 * throws its ParseError (exit 2). Flags are checked in the schema's order.
 */
export function parseFlags<S extends Record<string, FlagRule<unknown>>>(
  schema: FlagSchema<S>,
  flags: object,
): ParsedFlags<S> {
  const out: Record<string, unknown> = {};
  for (const [name, r] of Object.entries(schema.shape)) {
    const value = (flags as Record<string, unknown>)[name];
    if (value === undefined) {
      if (r.required) throw new ParseError('ERR_INTEGER', `${r.what} is required`);
      continue;
    }
    if (typeof value !== 'string') throw new ParseError('ERR_INTEGER', `${r.what} takes a value`);
    out[name] = r.parse(value);
  }
  return out as ParsedFlags<S>;
}

/**
 * The numeric flags of `ladder client` (commander supplies the defaults declared with the
 * command's option declarations).
 */
export const clientFlagsSchema = flagSchema({
  firstDataWait: flag.int('--first-data-wait', 0, MAX_FIRST_DATA_WAIT_MS),
  idleTimeout: flag.int('--idle-timeout', 1, MAX_CLIENT_SECONDS),
  residual: flag.int('--residual', 0, MAX_CLIENT_SECONDS).optional(),
  /** How often a dynamic key is fetched again (seconds). */
  refresh: flag.int('--refresh', 1, MAX_CLIENT_SECONDS).optional(),
});

/** The numeric flags of `ladder server` (data-plane flags; commander's strings). */
export const serverFlagsSchema = flagSchema({
  port: flag.port('--port').optional(),
  idleTimeout: flag.seconds('--idle-timeout').optional(),
  workers: flag.int('--workers', 1, MAX_WORKERS).optional(),
  maxPendingPerIp: flag.int('--max-pending-per-ip', 0, MAX_PENDING_CAP).optional(),
  maxPending: flag.int('--max-pending', 0, MAX_PENDING_CAP).optional(),
});

/** The numeric flags of the web front (both modes). */
export const webFlagsSchema = flagSchema({
  webPort: flag.port('--web-port').optional(),
  acmeHttpPort: flag.port('--acme-http-port', 1).optional(),
});

/** The flags managed mode adds, with the ports and addresses parsed. */
export const managedFlagsSchema = flagSchema({
  port: serverFlagsSchema.shape.port,
  apiPort: flag.port('--api-port').optional(),
  metricsPort: flag.port('--metrics-port').optional(),
  idleTimeout: serverFlagsSchema.shape.idleTimeout,
  workers: serverFlagsSchema.shape.workers,
  maxPendingPerIp: serverFlagsSchema.shape.maxPendingPerIp,
  maxPending: serverFlagsSchema.shape.maxPending,
  dynamicListen: flag.hostPort('--dynamic-listen', { defaultHost: '0.0.0.0' }).optional(),
  keyPoll: flag.seconds('--key-poll', 3600).optional(),
});
