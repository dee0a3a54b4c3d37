import { z } from 'zod';
import { parseRate } from '../shared/parse.js';

/**
 * Request and response shapes of the management API. The Outline-defined parts match
 * specs/outline-management-api.yml; Ladder's additions are optional fields and extra routes, so
 * Outline clients can ignore them. The dashboard imports these types (type-only).
 */

export const LIMIT_PERIOD = z.enum(['rolling30d', 'daily', 'weekly', 'monthly']);

export const DataLimit = z
  .object({ bytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) })
  .meta({ description: 'A data transfer limit in bytes' });

export const DataLimitBody = z.object({
  limit: DataLimit,
  period: LIMIT_PERIOD.optional().meta({
    description:
      'Ladder extension (per-key limits only): count usage over a trailing 30 days (default, as Outline) or reset it every UTC day, ISO week or month',
  }),
});

/**
 * An expiry time: ISO 8601 text, the forms `ladder keys expire` takes and prints (a date is
 * midnight UTC, a date-time without a zone is UTC, seconds optional; parseExpiry checks each
 * field), or milliseconds since the epoch.
 */
// 8.64e15 ms is the last instant a JavaScript Date can hold; beyond it the key list could not be rendered.
export const ExpiryInput = z.union([z.string().max(64), z.number().int().min(0).max(8.64e15)]).meta({
  description:
    'ISO 8601 date (2026-12-31, midnight UTC) or date-time (2026-12-31T18:00Z; without a zone: UTC), or ms since the epoch',
});

/** Ladder extension beside `expiresAt`: a time already past is refused (400) without it. */
const AllowPastExpiry = z.boolean().optional().meta({
  description:
    'Ladder extension: accept an `expiresAt` already past (the key is expired at once); without it such a time is a 400',
});

const MultiUserInput = z.boolean().optional().meta({
  description:
    'Ladder extension, 2022-blake3-* methods: SIP023 multi-user key (password "iPSK:uPSK" with the server\'s identity PSK; default for the AES methods) or single-user (false; one PSK)',
});

const PrefixInput = z.string().max(200).meta({
  description:
    'Ladder extension, SIP004 keys: the Outline salt `prefix` dynamic keys, subscriptions and (when pinned) the static ss:// URL carry. "auto" (default): a fresh one on every dynamic-key fetch; "off": none; or pinned bytes as hex ("160301") or Outline\'s URL-escaped string ("POST%20")',
});

export const PrefixBody = z.object({ prefix: PrefixInput });

/** A limit of the wrong shape gets the shapes it may take; a missing one zod's own words (a 400 "missing"). */
const shapeHint = (input: unknown, hint: string): string | undefined =>
  input === undefined ? undefined : hint;

/** Ladder extension (docs/limits.md): client addresses using the key at once, on each server. */
export const DeviceLimit = z
  .object(
    {
      devices: z
        .number({ error: 'must be a number of devices' })
        .int({ error: 'must be a whole number of devices' })
        .min(1, { error: 'must be at least 1 (DELETE the limit for none)' })
        .max(10_000, { error: 'must be at most 10000' }),
    },
    { error: (i) => shapeHint(i.input, 'expected {"devices": N} or a number of devices') },
  )
  .meta({
    description: 'Ladder extension: at most this many client addresses use the key at once (on each server)',
  });

/** Ladder extension: bytes per second each way, shared by the key's connections (on each server). */
export const SpeedLimit = z
  .object(
    {
      bytesPerSecond: z
        .number({ error: 'must be a number of bytes per second' })
        .int({ error: 'must be a whole number of bytes per second' })
        .min(1024, { error: 'must be at least 1024 (1 KiB/s; DELETE the limit for none)' })
        .max(2 ** 40, { error: 'must be at most 2^40 (1 TiB/s)' }),
    },
    {
      error: (i) =>
        shapeHint(
          i.input,
          'expected {"bytesPerSecond": N}, a number of bytes per second, or a rate like "10Mbit"',
        ),
    },
  )
  .meta({
    description:
      "Ladder extension: the key's connections together move at most this many bytes per second in each direction (on each server)",
  });

/** A device limit as a request gives it: `{"devices": 3}`, or a bare `3` as the config file takes it. */
const DeviceLimitInput = z.preprocess((v) => (typeof v === 'number' ? { devices: v } : v), DeviceLimit);

/**
 * A speed limit as a request gives it: `{"bytesPerSecond": N}`, a bare number of bytes per
 * second, or a rate with a unit as the config file and the CLI take it (`"10Mbit"`, `"2MB/s"`).
 */
const SpeedLimitInput = z.preprocess((v, ctx) => {
  if (typeof v === 'number') return { bytesPerSecond: v };
  if (typeof v !== 'string') return v;
  try {
    return { bytesPerSecond: parseRate(v, 'a rate') };
  } catch (err) {
    ctx.issues.push({ code: 'custom', input: v, message: err instanceof Error ? err.message : 'not a rate' });
    return v;
  }
}, SpeedLimit);

export const DeviceLimitBody = z.object({ limit: DeviceLimitInput });
export const SpeedLimitBody = z.object({ limit: SpeedLimitInput });

/** What a new key may set, one key or many: Outline's data limit, then Ladder's extensions. */
const NEW_KEY_SETTINGS = {
  limit: DataLimit.optional(),
  dataLimitPeriod: LIMIT_PERIOD.optional(),
  expiresAt: ExpiryInput.optional(),
  allowPastExpiry: AllowPastExpiry,
  enabled: z.boolean().optional(),
  multiUser: MultiUserInput,
  prefix: PrefixInput.optional(),
  deviceLimit: DeviceLimitInput.optional(),
  speedLimit: SpeedLimitInput.optional(),
};

export const NewAccessKeyBody = z
  .object({
    name: z.string().max(256).optional(),
    method: z.string().optional(),
    password: z.string().min(1).max(256).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    ...NEW_KEY_SETTINGS,
  })
  .meta({ description: 'All fields optional; omitted ones get server defaults' });

export const BulkCreateBody = z.object({
  count: z.number().int().min(1).max(1000),
  name: z
    .string()
    .max(90)
    .optional()
    .meta({ description: 'Name prefix; keys are named "<name> 1", "<name> 2", ...' }),
  method: z.string().optional(),
  ...NEW_KEY_SETTINGS,
});

export const KEY_STATE = z.enum(['active', 'disabled', 'expired', 'over_limit']);

export const AccessKey = z.object({
  id: z.string(),
  name: z.string(),
  password: z.string(),
  port: z.number().int(),
  method: z.string(),
  accessUrl: z.string(),
  dataLimit: DataLimit.optional(),
  // Ladder extensions
  dataLimitPeriod: LIMIT_PERIOD.optional(),
  deviceLimit: DeviceLimit.optional(),
  speedLimit: SpeedLimit.optional(),
  devicesInUse: z.number().int().optional().meta({
    description:
      'Ladder extension, keys with a device limit: client addresses using the key now on the server that answers (each fleet node counts its own)',
  }),
  expiresAt: z.string().optional().meta({ description: 'ISO 8601; absent = never expires' }),
  enabled: z.boolean(),
  state: KEY_STATE.optional().meta({ description: 'Latest enforcement decision' }),
  dataUsed: z
    .object({ bytes: z.number() })
    .optional()
    .meta({ description: 'Usage in the current limit window' }),
  dynamicAccessUrl: z.string().optional().meta({ description: 'ssconf:// URL of the dynamic key' }),
  shadowtlsAccessUrl: z.string().optional().meta({
    description:
      "ss:// URL through the server's ShadowTLS v3 port (plugin=shadow-tls;host=SNI;password=the key's own;version=3), when it runs one",
  }),
  subscriptionUrl: z.string().optional().meta({
    description:
      'https:// subscription URL (no admin secret): the key in the format each app reads (Clash/mihomo, sing-box, v2rayNG/Shadowrocket base64, Outline, SIP008), chosen by User-Agent and Accept or by /FORMAT; a browser gets a page with QR codes',
  }),
  createdTimestampMs: z.number(),
  lastTrafficSeenTimestampMs: z.number().optional(),
  multiUser: z
    .boolean()
    .optional()
    .meta({ description: '2022-blake3-* keys: SIP023 multi-user ("iPSK:uPSK") or single-user' }),
  prefix: z.string().optional().meta({
    description:
      'SIP004 keys: the Outline salt prefix setting, "auto", "off" or the pinned bytes in hex (pinned ones are also in accessUrl)',
  }),
});
export type AccessKeyJson = z.infer<typeof AccessKey>;

export const AccessKeyList = z.object({ accessKeys: z.array(AccessKey) });
/** GET /access-keys: the Outline list, plus `next` when a page was asked for (Ladder extension). */
export const AccessKeyPage = AccessKeyList.extend({
  next: z.string().optional().meta({
    description: 'Ladder extension, paginated requests only: `after` for the next page; absent on the last',
  }),
});
export const ListQuery = z.object({
  limit: z
    .string()
    .optional()
    .meta({ description: 'Ladder extension: keys per page, 1 to 1000 (default 500 when `after` is given)' }),
  after: z.string().optional().meta({ description: "Ladder extension: the previous page's `next`" }),
  fields: z
    .string()
    .optional()
    .meta({ description: 'Ladder extension: only these fields of each key (comma-separated; id always)' }),
});

/** Blocked-address detection's threshold (fleet-wide; docs/fleet.md). */
export const ReportSettings = z.object({
  keys: z
    .number()
    .int()
    .min(1)
    .max(10_000)
    .meta({ description: 'Distinct keys that must report an address' }),
  windowSeconds: z
    .number()
    .int()
    .min(60)
    .max(86_400)
    .meta({ description: 'Within this many seconds (reports older are forgotten)' }),
});

export const Server = z.object({
  name: z.string(),
  serverId: z.string(),
  metricsEnabled: z.boolean(),
  createdTimestampMs: z.number(),
  version: z.string(),
  portForNewAccessKeys: z.number().int(),
  hostnameForAccessKeys: z.string(),
  accessKeyDataLimit: DataLimit.optional(),
  // Ladder extension
  dynamicKeyBaseUrl: z
    .string()
    .optional()
    .meta({ description: 'Base URL of ssconf:// dynamic keys, when set' }),
  openapi: z
    .string()
    .optional()
    .meta({ description: "Path of this API's OpenAPI document (under the secret prefix)" }),
  blockedAddressReports: ReportSettings.optional().meta({
    description: 'Fleet: how many distinct keys within how many seconds mark a reported address suspected',
  }),
});
export type ServerJson = z.infer<typeof Server>;

export const ErrorBody = z.object({ code: z.string(), message: z.string(), field: z.string().optional() });

export const IdParams = z.object({ id: z.string().min(1).max(128) });

/** The most keys one bulk action may name. */
export const MAX_BULK_IDS = 10_000;
export const BULK_ACTIONS = ['enable', 'disable', 'delete', 'extend'] as const;
export const BulkActionBody = z.object({
  action: z
    .enum(BULK_ACTIONS)
    .meta({ description: '`extend` moves each expiry `days` later (from now when unset or past)' }),
  ids: z.array(z.string().min(1).max(128)).min(1).max(MAX_BULK_IDS),
  days: z.number().positive().max(36_500).optional().meta({ description: 'With `extend` only: days to add' }),
});
export const BulkActionResult = z.object({ changed: z.number().int() });

/** Server name: 1..100 characters, as Outline. */
export const NameBody = z.object({ name: z.string().min(1).max(100) });
/** Key name: non-empty, as Outline (which sets no upper bound; we cap it). */
export const KeyNameBody = z.object({ name: z.string().min(1).max(256) });
export const HostnameBody = z.object({ hostname: z.string().min(1).max(253) });
export const PortBody = z.object({ port: z.number().int().min(1).max(65535) });
export const MetricsEnabledBody = z.object({ metricsEnabled: z.boolean() });
export const EnabledBody = z.object({ enabled: z.boolean() });
export const DynamicBaseBody = z.object({
  url: z
    .url({ protocol: /^https$/, error: 'expected an https:// URL' })
    .nullable()
    .meta({ description: 'https://host[:port][/path] that serves /access/{token}; null = the API itself' }),
});
export const ExpiryBody = z.object({ expiresAt: ExpiryInput, allowPastExpiry: AllowPastExpiry });

export const TransferMetrics = z.object({ bytesTransferredByUserId: z.record(z.string(), z.number().int()) });

const Bytes = z.object({ bytes: z.number() });
const Seconds = z.object({ seconds: z.number() });
const Sample = z.object({ data: Bytes, timestamp: z.number().int() });

export const ServerMetrics = z.object({
  server: z.object({
    tunnelTime: Seconds,
    dataTransferred: Bytes,
    bandwidth: z.object({ current: Sample, peak: Sample }),
    locations: z.array(
      z.object({
        location: z.string(),
        asn: z.number().nullable(),
        asOrg: z.string().nullable(),
        tunnelTime: Seconds,
        dataTransferred: Bytes,
      }),
    ),
  }),
  accessKeys: z.array(
    z.object({
      accessKeyId: z.number().int(),
      tunnelTime: Seconds,
      dataTransferred: Bytes,
      connection: z.object({
        lastTrafficSeen: z.number(),
        peakDeviceCount: z.object({ data: z.number().int(), timestamp: z.number().int() }),
      }),
    }),
  ),
});

export const SinceQuery = z.object({
  since: z
    .string()
    .regex(/^\d+[smhdw]$/, 'expected a number followed by s, m, h, d or w, e.g. 30d')
    .optional(),
});

export const KeyUsage = z.object({
  id: z.string(),
  state: KEY_STATE,
  dataLimitPeriod: LIMIT_PERIOD,
  windowStartTimestampMs: z.number(),
  nextResetTimestampMs: z.number().nullable(),
  dataUsed: Bytes,
  dataLimit: DataLimit.nullable(),
  trailing30Days: z.object({ up: z.number(), down: z.number(), bytes: z.number() }),
  openConnections: z.number().int(),
});

export const OutlineDynamicConfig = z.union([
  z.object({
    server: z.string(),
    server_port: z.number().int(),
    method: z.string(),
    password: z.string(),
    /** Outline's salt prefix, one character per byte (src/protocol/shadowsocks/key-prefix.ts). */
    prefix: z.string().optional(),
  }),
  z.object({ error: z.object({ message: z.string(), details: z.string().optional() }) }),
]);
