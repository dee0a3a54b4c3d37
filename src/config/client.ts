/**
 * The client's JSON config file (`ladder client --config FILE`), as a zod schema. Pure: the CLI
 * reads the file and hands the text here.
 *
 * Format (every field optional except that some server must be given here or by --key; the
 * user's reference is docs/client-config.md):
 *
 *   {
 *     "keys": ["ss://...", "ss://..."],            // each key is one server endpoint, in order
 *     "servers": [                                  // or SIP008 entries (online-config style)
 *       { "server": "198.51.100.7", "server_port": 8388, "method": "chacha20-ietf-poly1305",
 *         "password": "...", "remarks": "tokyo" },
 *       { "server": "vpn.example", "server_port": 443, ..., "plugin": "v2ray-plugin",
 *         "plugin_opts": "mode=websocket;path=/p;host=vpn.example;tls" }   // as ss://…?plugin=
 *     ],
 *     "socks": "127.0.0.1:1080", "http": "127.0.0.1:8118",
 *     "route": "auto", "rules": "rules.txt",       // rules path relative to the config file
 *     "dns": "127.0.0.1:5353", "dnsUpstream": "1.1.1.1:53", "dnsMode": "tunnel",
 *     "shape": true, "residualSeconds": 180, "udp": true, "udpOverTcp": false,
 *     "auth": "user:password"                       // or {"username": …, "password": …}; as --auth
 *   }
 *
 * Unknown top-level fields are refused (SIP008 server entries may carry fields of their own).
 * Errors are one line, `FILE: field must…`, name the file and the field, never a password or key.
 */
import { z } from 'zod';
import { MAX_CLIENT_SECONDS } from './defaults.js';
import { ClientConfigError, jsonErrorWhere } from './errors.js';
import { keyFieldIssue } from './key-fields.js';
import { didYouMean } from '../protocol/near-miss.js';
import { parseProxyAuth, type ProxyAuth } from './proxy-auth.js';
import { isProtocolError } from '../protocol/errors.js';
import { parseV2rayPluginOptions, V2RAY_PLUGIN_NAMES } from '../protocol/sip002/plugin-opts.js';
import { parseShadowTlsPluginOptions, SHADOW_TLS_PLUGIN_NAMES } from '../protocol/sip002/shadowtls-opts.js';
import { parseRouteMode, ROUTE_MODES, routeModeOf, type RouteMode } from './route-mode.js';

export { parseRouteMode, ROUTE_MODES, routeModeOf, type RouteMode };

export { ClientConfigError };

export interface ServerEntry {
  host: string;
  port: number;
  method: string;
  password: string;
  tag?: string;
  /** SIP003 plugin: only v2ray-plugin (its wire Ladder speaks), with its options as SIP002 gives them. */
  plugin?: string;
  pluginOptions?: string;
}

export interface ClientConfig {
  keys: string[];
  servers: ServerEntry[];
  socks?: string | false;
  http?: string;
  route?: RouteMode;
  rules?: string;
  dns?: string;
  dnsUpstream?: string;
  dnsMode?: 'tunnel' | 'stub';
  shape?: boolean;
  residualSeconds?: number;
  /** Relay SOCKS5 UDP ASSOCIATE through the first server's UDP relay. */
  udp?: boolean;
  /** With udp: as UDP-over-TCP v2 inside the tunnel stream, whatever the key says. */
  udpOverTcp?: boolean;
  /** Credentials applications must give (SOCKS5 RFC 1929, HTTP Basic), as --auth. */
  auth?: ProxyAuth;
}

export { parseProxyAuth, type ProxyAuth } from './proxy-auth.js';

const AUTH_ERROR = 'must be "user:password" or {"username": …, "password": …}';
const authSchema = z.unknown().transform((v, ctx): ProxyAuth => {
  const auth =
    typeof v === 'string'
      ? parseProxyAuth(v)
      : typeof v === 'object' &&
          v !== null &&
          Object.keys(v).every((k) => k === 'username' || k === 'password') &&
          typeof (v as ProxyAuth).username === 'string' &&
          typeof (v as ProxyAuth).password === 'string' &&
          (v as ProxyAuth).username !== '' &&
          (v as ProxyAuth).password !== ''
        ? { username: (v as ProxyAuth).username, password: (v as ProxyAuth).password }
        : undefined;
  if (!auth) {
    ctx.addIssue({ code: 'custom', message: AUTH_ERROR });
    return z.NEVER;
  }
  return auth;
});

const nonEmpty = (error: string) => z.string({ error }).refine((v) => v.trim() !== '', { error });
const text = nonEmpty('must be a non-empty string');
const bool = z.boolean({ error: 'must be true or false' });

const serverEntrySchema = z
  .looseObject(
    {
      server: z.string({ error: 'must be a host name or IP' }).min(1, { error: 'must be a host name or IP' }),
      server_port: z
        .number({ error: 'must be an integer 1..65535' })
        .int({ error: 'must be an integer 1..65535' })
        .min(1, { error: 'must be an integer 1..65535' })
        .max(65535, { error: 'must be an integer 1..65535' }),
      method: z.string({ error: 'must be a string' }).min(1, { error: 'must be a string' }),
      password: z
        .string({ error: 'must be a non-empty string' })
        .min(1, { error: 'must be a non-empty string' }),
      plugin: z.string({ error: 'must be a string' }).optional(),
      plugin_opts: z.string({ error: 'must be a string' }).optional(),
      remarks: z.unknown().optional(),
    },
    { error: 'must be an object' },
  )
  .superRefine((e, ctx) => {
    const plugin = e.plugin ?? '';
    if (SHADOW_TLS_PLUGIN_NAMES.has(plugin)) {
      const issue = pluginOptionsIssue(e.plugin_opts, parseShadowTlsPluginOptions);
      if (issue) ctx.addIssue({ code: 'custom', path: ['plugin_opts'], message: issue });
    } else if (plugin !== '' && !V2RAY_PLUGIN_NAMES.has(plugin))
      ctx.addIssue({
        code: 'custom',
        path: ['plugin'],
        message: `plugin ${JSON.stringify(plugin.slice(0, 40))} is not supported (only v2ray-plugin and shadow-tls)`,
      });
    else if (plugin !== '') {
      // The options as an ss:// key's plugin= would give them: same checks, same one-line messages.
      const issue = pluginOptionsIssue(e.plugin_opts);
      if (issue) ctx.addIssue({ code: 'custom', path: ['plugin_opts'], message: issue });
    }
    // The method and the key here, so the message names the entry (never the password).
    const issue = keyFieldIssue(e.method, e.password);
    if (issue) ctx.addIssue({ code: 'custom', path: [issue.path], message: issue.message });
  })
  .transform((e): ServerEntry => ({
    host: e.server,
    port: e.server_port,
    method: e.method,
    password: e.password,
    ...(typeof e.remarks === 'string' && e.remarks ? { tag: e.remarks } : {}),
    ...(e.plugin ? { plugin: e.plugin, ...(e.plugin_opts ? { pluginOptions: e.plugin_opts } : {}) } : {}),
  }));

/** What is wrong with v2ray-plugin (or, with `parse`, shadow-tls) options (one line, never a secret), or undefined. */
function pluginOptionsIssue(
  text: string | undefined,
  parse: (t: string | undefined) => unknown = parseV2rayPluginOptions,
): string | undefined {
  try {
    parse(text);
    return undefined;
  } catch (err) {
    if (isProtocolError(err)) return err.message;
    throw err;
  }
}

export const clientConfigSchema = z.strictObject({
  keys: z
    .custom<string[]>((v) => Array.isArray(v) && v.every((k) => typeof k === 'string'), {
      error: 'must be an array of ss:// strings',
    })
    .optional(),
  servers: z.array(serverEntrySchema, { error: 'must be an array' }).optional(),
  socks: z.union([z.literal(false), text], { error: 'must be a non-empty string' }).optional(),
  http: text.optional(),
  rules: text.optional(),
  dns: text.optional(),
  dnsUpstream: text.optional(),
  route: text
    .transform((v, ctx) => {
      const mode = routeModeOf(v);
      if (mode === undefined) {
        ctx.addIssue({ code: 'custom', message: `must be auto, proxy or direct, got "${v}"` });
        return z.NEVER;
      }
      return mode;
    })
    .optional(),
  dnsMode: text
    .refine((v) => v === 'tunnel' || v === 'stub', { error: 'must be "tunnel" or "stub"' })
    .transform((v) => v as 'tunnel' | 'stub')
    .optional(),
  shape: bool.optional(),
  udp: bool.optional(),
  udpOverTcp: bool.optional(),
  auth: authSchema.optional(),
  residualSeconds: z
    .number({ error: `must be a number 0..${MAX_CLIENT_SECONDS}` })
    .min(0, { error: `must be a number 0..${MAX_CLIENT_SECONDS}` })
    .max(MAX_CLIENT_SECONDS, { error: `must be a number 0..${MAX_CLIENT_SECONDS}` })
    .optional(),
  // SIP008 documents carry these; they mean nothing to the client (bytes_*: a key with a limit).
  version: z.unknown().optional(),
  remarks: z.unknown().optional(),
  bytes_used: z.unknown().optional(),
  bytes_remaining: z.unknown().optional(),
});

/** `servers[1].server_port`: the field path as ClientConfigError.path. */
function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}

function issueMessage(issue: z.core.$ZodIssue): { message: string; field: string } {
  if (issue.code === 'unrecognized_keys') {
    const name = String(issue.keys[0]);
    const near = didYouMean(name, Object.keys(clientConfigSchema.shape), (f) => `"${f}"`);
    return { message: `unknown field "${name}"${near}`, field: '' };
  }
  const field = fieldPath(issue.path);
  if (field === '') return { message: issue.message, field };
  // Top-level fields are quoted ("route" must…); "servers[0] must be an object", but
  // "servers[0].plugin: plugin "x" is not supported".
  const label = issue.path.length === 1 ? `"${field}"` : field;
  const sep = issue.message.startsWith('must ') ? ' ' : ': ';
  return { message: `${label}${sep}${issue.message}`, field };
}

export function parseClientConfig(input: string, source = 'config'): ClientConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(input);
  } catch (err) {
    throw new ClientConfigError(`${source}: ${jsonErrorWhere(input, err)}`, '', 'ERR_CONFIG_JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ClientConfigError(`${source}: expected a JSON object`, '', 'ERR_CONFIG_JSON');
  const r = clientConfigSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues;
    const first = issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0]!;
    const { message, field } = issueMessage(first);
    throw new ClientConfigError(`${source}: ${message}`, field, 'ERR_CONFIG_FIELD');
  }
  const { keys, servers, version, remarks: _r, bytes_used: _u, bytes_remaining: left, ...rest } = r.data;
  // A SIP008 subscription of a key the server refuses (over its limit, expired, disabled) lists no
  // servers: say that, rather than that no key was given.
  if (version !== undefined && servers?.length === 0 && (keys ?? []).length === 0)
    throw new ClientConfigError(
      `${source}: this SIP008 subscription lists no servers${left === 0 ? ' (bytes_remaining: 0)' : ''}: the server refuses its key for now (over its data limit, expired or disabled); ask whoever gave you the link`,
      'servers',
      'ERR_CONFIG_FIELD',
    );
  const out: ClientConfig = { keys: keys ?? [], servers: servers ?? [] };
  for (const [k, v] of Object.entries(rest))
    if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  return out;
}
