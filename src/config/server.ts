import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { isProtocolError } from '../protocol/errors.js';
import { didYouMean, nearMiss } from '../protocol/near-miss.js';
import { checkMethod } from '../protocol/shadowsocks/key-material.js';
import type { RuntimeKey } from '../shared/control.js';
import { parseRate } from '../shared/parse.js';
import { ConfigError, fileErrorWhy, jsonErrorWhere } from './errors.js';
import { keyFieldIssue } from './key-fields.js';
import {
  DEFAULT_CONNECT_SECONDS,
  DEFAULT_IDLE_SECONDS,
  DEFAULT_REPLAY_CAPACITY,
  DEFAULT_SERVER_PORT,
  MAX_CONNECT_SECONDS,
  MAX_PENDING_CAP,
  MAX_REPLAY_CAPACITY,
  MAX_WORKERS,
  MAX_TIMEOUT_SECONDS,
} from './defaults.js';

/**
 * The `ladder server --config FILE` format:
 *
 *   {
 *     "port": 8388,
 *     "host": "0.0.0.0",
 *     "keys": [{ "id": "alice", "method": "chacha20-ietf-poly1305", "password": "..." }],
 *                                   (a key may add "deviceLimit": 2 and "speedLimit": "10Mbit")
 *     "timeouts": { "idleSeconds": 300, "connectSeconds": 10 },
 *     "allowPrivateDestinations": false,
 *     "replayCapacity": 20000,
 *     "replayStateFile": "replay.bin",
 *     "udp": false,
 *     "maxPendingPerIp": 512,       (connections not yet authenticated, per address; 0: no cap)
 *     "maxPending": 8192,           (and in all, per worker; see src/server/pending-limits.ts)
 *     "workers": 2,                 (data-plane worker threads; default one per core)
 *     "web": { "port": 443, "path": "/SECRET", "decoy": "builtin", "tlsCert": "cert.pem", "tlsKey": "key.pem" }
 *   }
 *
 * Methods: the SIP004 AEAD ciphers (password: any text) and the 2022 edition
 * (2022-blake3-*; password: base64 PSK of the key size, or "iPSK:uPSK" for SIP023 identity).
 *
 * `replayStateFile` (relative to the config file) keeps the salt replay filters across restarts.
 *
 * `web` turns the web front on (the same settings as the --web-* flags, which override it):
 * `port` (required), `host`, `path`, `decoy`, `tlsCert` + `tlsKey` or `acme` (a domain or a list)
 * with `acmeEmail`, `acmeDirectory`, `acmeHttpPort` and `dataDir` (where ACME keeps its account and
 * certificates), `trustProxy` (a CIDR or a list), `publicUrl` (what keys advertise when clients
 * reach the front through a CDN or proxy elsewhere). File paths are relative to the config file.
 *
 * Unknown fields are refused (a typo must not silently fall back to a default). Errors are one
 * line, `FILE: path.to[field]: what is wrong`, and never contain a password.
 */

export { ConfigError, type ConfigErrorCode } from './errors.js';

const MAX_KEYS = 100_000;
/** The most client addresses a key's device limit may allow. */
const MAX_DEVICE_LIMIT = 10_000;

const methodSchema = z.string({ error: 'must be a string naming an AEAD method' }).superRefine((m, ctx) => {
  try {
    checkMethod(m);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: isProtocolError(err) ? err.message : 'unknown method' });
  }
});

const keySchema = z
  .strictObject({
    id: z
      .string({ error: 'must be a string' })
      .min(1, { error: 'must not be empty' })
      .max(200, { error: 'must be at most 200 characters' }),
    method: methodSchema,
    password: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }),
    deviceLimit: z
      .number({ error: 'must be a number of client addresses' })
      .int({ error: 'must be a whole number of client addresses' })
      .min(1, { error: 'must be at least 1 (leave it out for no limit)' })
      .max(MAX_DEVICE_LIMIT, { error: `must be at most ${MAX_DEVICE_LIMIT}` })
      .optional(),
    speedLimit: z
      .string({ error: 'must be a rate with a unit, like "10Mbit" or "2MB/s"' })
      .transform((t, ctx) => {
        try {
          return parseRate(t, 'speedLimit');
        } catch (err) {
          const why = err instanceof Error ? err.message.replace(/^speedLimit /, '') : 'not a rate';
          ctx.addIssue({ code: 'custom', message: why });
          return z.NEVER;
        }
      })
      .optional(),
  })
  .superRefine((k, ctx) => {
    const issue = keyFieldIssue(k.method, k.password);
    // A bad method is reported on the method field (methodSchema).
    if (issue?.path === 'password')
      ctx.addIssue({ code: 'custom', path: ['password'], message: issue.message });
  });

const seconds = (max: number) =>
  z
    .number({ error: 'must be a number of seconds' })
    .positive({ error: 'must be greater than 0' })
    .max(max, { error: `must be at most ${max}` });

/** A cap on pending connections (pending-limits.ts): 0 turns it off. */
const pendingCap = z
  .number({ error: 'must be a number' })
  .int({ error: 'must be an integer' })
  .min(0, { error: 'must be at least 0 (0: no cap)' })
  .max(MAX_PENDING_CAP, { error: `must be at most ${MAX_PENDING_CAP}` });

const portNumber = z
  .number({ error: 'must be a number' })
  .int({ error: 'must be an integer' })
  .min(0, { error: 'must be in 0..65535' })
  .max(65535, { error: 'must be in 0..65535' });
const text = (what: string) =>
  z.string({ error: `must be a string (${what})` }).min(1, { error: 'must not be empty' });
const oneOrMany = (what: string) =>
  z.union(
    [
      text(what).transform((t) => [t]),
      z
        .array(text(what), { error: `must be ${what} or a list of them` })
        .min(1, { error: 'must not be an empty list' }),
    ],
    {
      error: `must be ${what} or a list of them`,
    },
  );

/** The `web` object: the web front (WebSocket endpoints, decoy, TLS), like the --web-* flags. */
export const webConfigSchema = z
  .strictObject({
    port: portNumber,
    host: text('an IP address or host name').optional(),
    path: text('/SECRET').regex(/^\//, { error: 'must start with "/"' }).optional(),
    decoy: text('builtin, a directory or an https:// URL').optional(),
    decoyH2: z.boolean({ error: 'must be true or false (offer HTTP/2 for the decoy)' }).optional(),
    tlsCert: text('a PEM file path').optional(),
    tlsKey: text('a PEM file path').optional(),
    acme: oneOrMany('a domain name').optional(),
    acmeEmail: text('an e-mail address').optional(),
    acmeDirectory: text('an https:// URL')
      .regex(/^https?:\/\//, { error: 'must be an https:// URL' })
      .optional(),
    acmeHttpPort: portNumber.optional(),
    trustProxy: oneOrMany('a CIDR').optional(),
    dataDir: text('a directory').optional(),
    publicUrl: text('a ws://, wss://, http:// or https:// URL').optional(),
    advertise: text('"all" or "web"').optional(),
  })
  .superRefine((w, ctx) => {
    if ((w.tlsCert === undefined) !== (w.tlsKey === undefined))
      ctx.addIssue({
        code: 'custom',
        path: [w.tlsCert === undefined ? 'tlsCert' : 'tlsKey'],
        message: 'tlsCert and tlsKey go together',
      });
    if (w.acme && w.tlsCert !== undefined)
      ctx.addIssue({ code: 'custom', path: ['acme'], message: 'acme and tlsCert/tlsKey are exclusive' });
    if (w.acme && w.dataDir === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['dataDir'],
        message: 'is required with acme (where its account and certificates live)',
      });
    for (const k of ['acmeEmail', 'acmeDirectory', 'acmeHttpPort'] as const)
      if (w[k] !== undefined && !w.acme)
        ctx.addIssue({ code: 'custom', path: [k], message: 'only means something with acme' });
  });

export type WebConfig = Readonly<z.output<typeof webConfigSchema>>;

/** The `shadowtls` object: the ShadowTLS v3 port, like the --shadowtls-* flags (which override it). */
export const shadowTlsConfigSchema = z.strictObject({
  port: portNumber,
  host: text('an IP address or host name').optional(),
  handshake: text('HOST[:PORT] of a TLS 1.3 website'),
  sni: text('a host name').optional(),
  password: text('a password').optional(),
});

export type ShadowTlsConfig = Readonly<z.output<typeof shadowTlsConfigSchema>>;

export const serverConfigSchema = z.strictObject({
  port: z
    .number({ error: 'must be a number' })
    .int({ error: 'must be an integer' })
    .min(0, { error: 'must be in 0..65535' })
    .max(65535, { error: 'must be in 0..65535' })
    .default(DEFAULT_SERVER_PORT),
  host: z
    .string({ error: 'must be a string (an IP address or host name)' })
    .min(1, { error: 'must not be empty' })
    .optional(),
  keys: z
    .array(keySchema, { error: 'must be a list of keys' })
    .min(1, { error: 'must list at least one key' })
    .max(MAX_KEYS, { error: `must list at most ${MAX_KEYS} keys` })
    .superRefine((keys, ctx) => {
      const seen = new Map<string, number>();
      // Two keys with the same method and password cannot be told apart on the wire: every
      // connection would be counted to the first. (The message never contains the password.)
      const secrets = new Map<string, number>();
      keys.forEach((k, i) => {
        const prev = seen.get(k.id);
        if (prev !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [i, 'id'],
            message: `duplicate id "${k.id}" (also keys[${prev}].id)`,
          });
        } else seen.set(k.id, i);
        const same = secrets.get(`${k.method}\0${k.password}`);
        if (same !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [i, 'password'],
            message: `the same method and password as keys[${same}] ("${keys[same]!.id}"): the server could not tell the two apart`,
          });
        } else secrets.set(`${k.method}\0${k.password}`, i);
      });
    }),
  timeouts: z
    .strictObject({
      idleSeconds: seconds(MAX_TIMEOUT_SECONDS).default(DEFAULT_IDLE_SECONDS),
      connectSeconds: seconds(MAX_CONNECT_SECONDS).default(DEFAULT_CONNECT_SECONDS),
    })
    .default({ idleSeconds: DEFAULT_IDLE_SECONDS, connectSeconds: DEFAULT_CONNECT_SECONDS }),
  allowPrivateDestinations: z.boolean({ error: 'must be true or false' }).default(false),
  replayCapacity: z
    .number({ error: 'must be a number' })
    .int({ error: 'must be an integer' })
    .min(1, { error: 'must be at least 1' })
    .max(MAX_REPLAY_CAPACITY, { error: `must be at most ${MAX_REPLAY_CAPACITY}` })
    .default(DEFAULT_REPLAY_CAPACITY),
  replayStateFile: z
    .string({ error: 'must be a file path' })
    .min(1, { error: 'must not be empty' })
    .optional(),
  udp: z.boolean({ error: 'must be true or false' }).default(false),
  maxPendingPerIp: pendingCap.optional(),
  maxPending: pendingCap.optional(),
  workers: z
    .number({ error: 'must be a number' })
    .int({ error: 'must be an integer' })
    .min(1, { error: 'must be at least 1' })
    .max(MAX_WORKERS, { error: `must be at most ${MAX_WORKERS}` })
    .optional(),
  web: webConfigSchema.optional(),
  shadowtls: shadowTlsConfigSchema.optional(),
});

export interface ServerConfig {
  readonly port: number;
  readonly host: string | undefined;
  readonly keys: readonly RuntimeKey[];
  readonly idleMs: number;
  readonly connectMs: number;
  readonly allowPrivateDestinations: boolean;
  readonly replayCapacity: number;
  /** Caps on connections not yet authenticated (--max-pending-per-ip, --max-pending); unset: defaults. */
  readonly pending?: { readonly perAddress?: number | undefined; readonly total?: number | undefined };
  readonly replayStateFile: string | undefined;
  /** Also relay UDP on the same port number (like ss-server -u). */
  readonly udp: boolean;
  /** Data-plane worker threads; undefined: one per core. */
  readonly workers: number | undefined;
  /** The web front (WebSocket, decoy, TLS), when the file has a `web` object. */
  readonly web?: WebConfig;
  /** The ShadowTLS v3 port, when the file has a `shadowtls` object. */
  readonly shadowtls?: ShadowTlsConfig;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const p of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** The field names the server config's object at `path` accepts (for "did you mean"). */
function fieldsAt(path: readonly PropertyKey[]): string[] {
  const unwrap = (t: unknown): unknown =>
    t instanceof z.ZodOptional || t instanceof z.ZodDefault ? unwrap(t.unwrap()) : t;
  let t: unknown = serverConfigSchema;
  for (const p of path) {
    t = unwrap(t);
    if (typeof p === 'number') t = t instanceof z.ZodArray ? t.element : undefined;
    else t = t instanceof z.ZodObject ? (t.shape as Record<string, unknown>)[String(p)] : undefined;
  }
  t = unwrap(t);
  return t instanceof z.ZodObject ? Object.keys(t.shape) : [];
}

function issueToError(source: string, issue: z.core.$ZodIssue, input: unknown): ConfigError {
  const path = formatPath(issue.path);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const names = issue.keys.map((k) => `"${k}"`).join(', ');
    const near =
      issue.keys.length === 1 ? didYouMean(issue.keys[0]!, fieldsAt(issue.path), (f) => `"${f}"`) : '';
    message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${names}${near}`;
  } else if (issue.code === 'invalid_type' && valueAt(input, issue.path) === undefined) {
    message = 'is required';
  }
  if (path === '') return new ConfigError(`${source}: ${message}`, '', 'ERR_CONFIG_FIELD');
  return new ConfigError(`${source}: ${path}: ${message}`, path);
}

/** Validate an already-parsed config object. `source` names it in errors (the file name). */
export function parseServerConfig(input: unknown, source = 'config'): ServerConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError(`${source}: must be a JSON object`, '');
  }
  const r = serverConfigSchema.safeParse(input);
  if (!r.success) {
    // A misspelt field first: the "is required" it causes is its consequence.
    const issues = r.error.issues;
    const first = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0]!;
    const err = issueToError(source, first, input);
    // …and not counted as one more problem: the required field the misspelt name was meant to be.
    const meant =
      first.code === 'unrecognized_keys' && first.keys.length === 1
        ? nearMiss(first.keys[0]!, fieldsAt(first.path))
        : undefined;
    const related = (i: z.core.$ZodIssue): boolean =>
      i === first ||
      (meant !== undefined &&
        i.code === 'invalid_type' &&
        formatPath(i.path) === formatPath([...first.path, meant]) &&
        valueAt(input, i.path) === undefined);
    const more = issues.filter((i) => !related(i)).length;
    if (more > 0) err.message += ` (and ${more} more problem${more > 1 ? 's' : ''})`;
    throw err;
  }
  const c = r.data;
  return Object.freeze({
    port: c.port,
    host: c.host,
    keys: Object.freeze(
      c.keys.map((k) =>
        Object.freeze({
          id: k.id,
          method: k.method,
          secret: k.password,
          ...(k.deviceLimit !== undefined ? { deviceLimit: k.deviceLimit } : {}),
          ...(k.speedLimit !== undefined ? { speedLimit: k.speedLimit } : {}),
        }),
      ),
    ),
    idleMs: Math.round(c.timeouts.idleSeconds * 1000),
    connectMs: Math.round(c.timeouts.connectSeconds * 1000),
    allowPrivateDestinations: c.allowPrivateDestinations,
    replayCapacity: c.replayCapacity,
    ...(c.maxPendingPerIp !== undefined || c.maxPending !== undefined
      ? { pending: Object.freeze({ perAddress: c.maxPendingPerIp, total: c.maxPending }) }
      : {}),
    replayStateFile: c.replayStateFile,
    udp: c.udp,
    workers: c.workers,
    ...(c.web ? { web: Object.freeze(c.web) } : {}),
    ...(c.shadowtls ? { shadowtls: Object.freeze(c.shadowtls) } : {}),
  });
}

/** Parse JSON text; syntax errors report line and column but never the text (it has passwords). */
export function parseServerConfigText(text: string, source = 'config'): ServerConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${source}: ${jsonErrorWhere(text, err)}`, '');
  }
  return parseServerConfig(json, source);
}

export async function loadServerConfigFile(path: string): Promise<ServerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: ${fileErrorWhy(err)}`, '', 'ERR_CONFIG_READ');
  }
  const c = parseServerConfigText(text, path);
  const rel = (f: string): string => (isAbsolute(f) ? f : resolve(dirname(path), f));
  const relIfSet = (f: string | undefined): string | undefined => (f === undefined ? f : rel(f));
  let web = c.web;
  if (web) {
    // A decoy directory is relative to the file too ('builtin' and URLs are not paths).
    const d = web.decoy;
    const decoy =
      d === undefined || d === 'builtin' || /^https?:\/\//.test(d)
        ? d
        : d.startsWith('dir:')
          ? `dir:${rel(d.slice(4))}`
          : rel(d);
    web = Object.freeze({
      ...web,
      ...(decoy !== undefined ? { decoy } : {}),
      ...(web.tlsCert !== undefined ? { tlsCert: rel(web.tlsCert) } : {}),
      ...(web.tlsKey !== undefined ? { tlsKey: rel(web.tlsKey) } : {}),
      ...(web.dataDir !== undefined ? { dataDir: relIfSet(web.dataDir) } : {}),
    });
  }
  return Object.freeze({
    ...c,
    replayStateFile: relIfSet(c.replayStateFile),
    ...(web ? { web } : {}),
  });
}
