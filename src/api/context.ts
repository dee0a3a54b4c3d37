import type { ServerControl } from '../shared/control.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { isHostName, ParseError, parseIsoDate } from '../shared/parse.js';
import type { LadderMetrics } from '../metrics/index.js';
import {
  type KeyEnforcer,
  type KeyRecord,
  type KeyStatus,
  type KeyWriteCheck,
  type ServerSettings,
  type NodeRegistry,
  type ReportPolicy,
  type Store,
  type WebFront,
} from '../store/index.js';
import { ProtocolError } from '../protocol/errors.js';
import { keyPrefixSettingFor } from '../protocol/shadowsocks/key-prefix.js';
import { isAead2022MethodName } from '../protocol/shadowsocks/methods2022.js';
import { keyShadowTlsPassword, shadowTlsKeyUrl } from '../protocol/sip002/shadowtls.js';
import { accessUrl, dynamicUrlVia, webOnlyFor, type ApiEndpoint } from './access-url.js';
import { ApiError, invalid } from './errors.js';
import {
  checkSecret,
  secretFree,
  isMultiUserSecret,
  KeySecretError,
  planSecrets,
  type SecretPlan,
  type SecretRequest,
} from './key-secrets.js';
import type { AccessKeyJson } from './schemas.js';
import { subscriptionUrlVia } from './subscriptions/url.js';

/**
 * The web front's public parameters (managed mode with --web-port), so subscriptions can offer
 * Shadowsocks over WebSocket next to raw Shadowsocks (host undefined: hostnameForAccessKeys at
 * request time). The secret path is a secret like a password. The same shape a fleet node
 * records for its web front (store/nodes.ts).
 */
export type WebEndpoint = WebFront & {
  /**
   * `--advertise web`: keys and subscriptions name this front only, never the raw host:port (the
   * origin a CDN hides); see access-url.ts webOnlyFor.
   */
  only?: boolean | undefined;
};

/**
 * The ShadowTLS v3 port's public parameters (managed mode with --shadowtls-port). No password:
 * each key's is its own (keyShadowTlsPassword, src/protocol/sip002/shadowtls.ts).
 */
export interface ShadowTlsEndpoint {
  readonly port: number;
  /** The handshake site's name: the SNI clients send. */
  readonly sni: string;
  /** UDP rides inside the streams (UDP-over-TCP v2) when the server relays UDP. */
  readonly udp: boolean;
}

/** This node, as GET /nodes reports it. */
export interface FleetSelf {
  name: string;
  keysVersion: number;
  listening: boolean;
  notifications: number;
}

/** What the API needs of the fleet. */
export interface FleetView {
  nodes: NodeRegistry;
  self: () => FleetSelf;
  /** Pending (unflushed) usage of this node, bytes: a hook for the fleet usage path. */
  pendingUsageBytes?: () => number;
  /** Blocked-address detection: how many distinct keys within what window (default DEFAULT_REPORT_POLICY). */
  reportPolicy?: ReportPolicy;
}

/** Everything route handlers need, built once by buildApi. */
export interface ApiContext {
  store: Store;
  control: ServerControl;
  metrics: LadderMetrics | undefined;
  enforcer: KeyEnforcer;
  logger: Logger;
  clock: Clock;
  /** Methods new keys may use; the first is the default (Outline: chacha20-ietf-poly1305). */
  methods: readonly string[];
  /** Reported as `version` in GET /server (Outline Manager gates features on it). */
  version: string;
  /** Whether the Prometheus endpoint is being served (GET /server's metricsEnabled); undefined = unknown. */
  metricsServed: (() => boolean) | undefined;
  /** The API certificate's SHA-256 (upper-case hex), when it serves HTTPS: the pin in dynamic key URLs. */
  apiCertSha256?: string | undefined;
  /** The web front, when there is one (read per request: managed mode starts it after the API). */
  webEndpoint?: (() => WebEndpoint | undefined) | undefined;
  /** The ShadowTLS v3 port, when there is one (read per request, as webEndpoint). */
  shadowTls?: (() => ShadowTlsEndpoint | undefined) | undefined;
  /** The fleet, on a fleet node (--node): keys list its nodes, and the node routes exist. */
  fleet?: FleetView | undefined;
  /** Where this API listens (startApi fills it in): the endpoint of the URLs it hands out. */
  apiAddress?: ApiAddress | undefined;
}

/**
 * This process's management API as clients reach it: port and pin once it listens; host only on
 * a fleet node (its own public host), else hostnameForAccessKeys at request time.
 */
export interface ApiAddress {
  host?: string | undefined;
  port?: number | undefined;
  certSha256?: string | undefined;
}

/**
 * The endpoint of the dynamic and subscription URLs this API hands out: its own address and pin.
 * Without one (an API built without startApi), a single server's settings (hostnameForAccessKeys
 * and apiPort are its own); a fleet node never mixes shared parts in.
 */
export function apiEndpointOf(ctx: ApiContext, settings: ServerSettings): ApiEndpoint | undefined {
  const a = ctx.apiAddress;
  const certSha256 = a?.certSha256 ?? ctx.apiCertSha256;
  if (a?.port !== undefined)
    return { host: a.host ?? settings.hostnameForAccessKeys, port: a.port, certSha256 };
  if (ctx.fleet || settings.apiPort === null) return undefined;
  return { host: settings.hostnameForAccessKeys, port: settings.apiPort, certSha256 };
}

/**
 * `api`: the endpoint (host, port, pin) of the key's dynamic and subscription URLs (apiEndpointOf).
 * `web`: the running web front; with `only` set, `accessUrl` is its v2ray-plugin URL.
 */
export function toAccessKeyJson(
  key: KeyRecord,
  settings: ServerSettings,
  status?: KeyStatus,
  api?: ApiEndpoint,
  web?: WebEndpoint,
  stls?: ShadowTlsEndpoint,
  /** Per device-limited key id, the client addresses using it now on this server (devicesInUse). */
  devices?: ReadonlyMap<string, number>,
): AccessKeyJson {
  const webOnly = webOnlyFor(web, key, settings);
  const json: AccessKeyJson = {
    id: key.id,
    name: key.name,
    password: key.secret,
    port: key.port,
    method: key.method,
    accessUrl: accessUrl(key, settings, undefined, webOnly),
    enabled: key.enabled,
    createdTimestampMs: key.createdAt,
  };
  if (key.method.startsWith('2022-')) json.multiUser = isMultiUserSecret(key.method, key.secret);
  if (key.dataLimitBytes !== null) {
    json.dataLimit = { bytes: key.dataLimitBytes };
    json.dataLimitPeriod = key.limitPeriod;
  } else if (key.limitPeriod !== 'rolling30d') json.dataLimitPeriod = key.limitPeriod;
  if (key.deviceLimit != null) {
    json.deviceLimit = { devices: key.deviceLimit };
    if (devices) json.devicesInUse = devices.get(key.id) ?? 0;
  }
  if (key.speedLimit != null) json.speedLimit = { bytesPerSecond: key.speedLimit };
  if (key.expiresAt !== null) json.expiresAt = new Date(key.expiresAt).toISOString();
  if (status && status.key.id === key.id) {
    json.state = status.state;
    json.dataUsed = { bytes: status.usedBytes };
  }
  const dyn = dynamicUrlVia(key, settings, api);
  if (dyn !== undefined) json.dynamicAccessUrl = dyn;
  const sub = subscriptionUrlVia(key, settings, api);
  if (sub !== undefined) json.subscriptionUrl = sub;
  // The key through the ShadowTLS port, with its own password (not for Outline: it has no ShadowTLS).
  // --advertise web: none (it would name the origin host, as the subscriptions' entries skip it).
  if (stls && !webOnly)
    json.shadowtlsAccessUrl = shadowTlsKeyUrl(
      key,
      { host: settings.hostnameForAccessKeys, port: stls.port },
      { sni: stls.sni, password: keyShadowTlsPassword(key) },
    );
  if (key.lastSeenAt !== null) json.lastTrafficSeenTimestampMs = key.lastSeenAt;
  if (!key.method.startsWith('2022-')) json.prefix = key.prefix ?? 'auto';
  return json;
}

/**
 * The stored form ('auto' | 'off' | hex) of a `prefix` field for a key of `method`; a 400 naming
 * the field when the text does not parse or the prefix does not fit the method (key-prefix.ts).
 */
export function checkPrefix(method: string, text: string, field = 'prefix'): string {
  try {
    return keyPrefixSettingFor(method, text);
  } catch (err) {
    if (err instanceof ProtocolError) {
      throw invalid(field, `Invalid "${field}": ${err.message.replace(/^prefix: /, '')}`);
    }
    throw err;
  }
}

/** Each evaluation's statuses by key id, built once per evaluation (the enforcer replaces the array). */
const indexes = new WeakMap<readonly KeyStatus[], ReadonlyMap<string, KeyStatus>>();

export function statusIndex(enforcer: KeyEnforcer): ReadonlyMap<string, KeyStatus> {
  const statuses = enforcer.statuses;
  let index = indexes.get(statuses);
  if (index === undefined) indexes.set(statuses, (index = new Map(statuses.map((s) => [s.key.id, s]))));
  return index;
}

export function checkMethod(ctx: ApiContext, method: string | undefined, field = 'method'): string {
  if (method === undefined) return ctx.methods[0]!;
  if (!ctx.methods.includes(method)) {
    throw invalid(
      field,
      `Invalid "${field}": "${method}" is not supported; use one of ${ctx.methods.join(', ')}`,
    );
  }
  return method;
}

/** A caller-chosen password must be usable with its method (2022 methods need a base64 PSK of the key size). */
export function checkPassword(method: string, password: string, field = 'password'): void {
  try {
    checkSecret(method, password);
  } catch (err) {
    if (err instanceof KeySecretError) throw invalid(field, `Invalid "${field}": ${err.message}`);
    throw err;
  }
}

/** A KeySecretError as the API answers it: 400, or 409 for a secret another key has. */
export function secretApiError(err: KeySecretError): ApiError {
  return err.conflict
    ? new ApiError(409, 'ConflictError', err.message, err.field)
    : invalid(err.field, `Invalid "${err.field}": ${err.message}`);
}

/**
 * planSecrets with its errors as the API's. A chosen 2022 secret another key has is refused (409):
 * the data plane skips the second key, which would never work. A SIP004 one is taken, as Outline
 * takes it (its spec's own examples give two keys one password; both work, the first key that
 * decrypts a connection gets it); rotation (a Ladder route) refuses every method's.
 */
export async function secretsFor(
  ctx: ApiContext,
  req: SecretRequest,
): Promise<SecretPlan & { check: KeyWriteCheck | undefined }> {
  try {
    const plan = await planSecrets(ctx.store, req);
    const chosen2022 = plan.secret !== undefined && isAead2022MethodName(req.method);
    return { ...plan, check: chosen2022 ? secretFree(req.method, plan.secret!) : undefined };
  } catch (err) {
    if (err instanceof KeySecretError) throw secretApiError(err);
    throw err;
  }
}

/**
 * An expiry from a request: ms since the epoch, or ISO 8601 text as `ladder keys expire` takes
 * it (parseIsoDate: "2026-12-31" is midnight UTC, no zone is UTC, "2027-02-30" says why not).
 */
export function parseExpiry(v: string | number | undefined, field = 'expiresAt'): number | undefined {
  if (v === undefined) return undefined;
  let ms: number;
  try {
    ms = typeof v === 'number' ? v : parseIsoDate(v, `Invalid "${field}":`);
  } catch (err) {
    if (err instanceof ParseError) throw invalid(field, err.message);
    throw err;
  }
  if (!Number.isFinite(ms) || !Number.isFinite(new Date(ms).getTime()))
    throw invalid(field, `Invalid "${field}": not a date`);
  return ms;
}

/**
 * A new expiry from a request, refused (400) when it is already past unless `allowPast`: the key
 * would stop working at once, which is what PUT /access-keys/{id}/enabled is for, and a past time
 * is most often a mistake (ms since the epoch given in seconds lands in January 1970). The CLI
 * asks for --force and the dashboard for a second press in the same case (docs/api.md).
 */
export function newExpiry(
  ctx: Pick<ApiContext, 'clock'>,
  v: string | number | undefined,
  allowPast: boolean | undefined,
): number | undefined {
  const ms = parseExpiry(v);
  if (ms === undefined || allowPast === true || ms > ctx.clock.now()) return ms;
  const when = new Date(ms).toISOString().replace(/:00\.000Z$/, 'Z');
  const seconds =
    typeof v === 'number' && v < 1e11 ? ' (it counts ms since the epoch: was it given in seconds?)' : '';
  throw invalid(
    'expiresAt',
    `Invalid "expiresAt": ${when} is in the past${seconds}, so the key would stop working at once; disable it for that (PUT /access-keys/{id}/enabled), or send "allowPastExpiry": true`,
  );
}

/** A hostname (RFC 1123 labels) or an IPv4/IPv6 address. */
export const isValidHostname = isHostName;

/**
 * Per device-limited key id, the client addresses using it now in this server's process (each
 * fleet node counts its own); undefined when the data plane does not tell (the key JSON then has
 * no `devicesInUse`).
 */
export function devicesInUseOf(ctx: Pick<ApiContext, 'control'>): ReadonlyMap<string, number> | undefined {
  return ctx.control.devicesInUse?.();
}
