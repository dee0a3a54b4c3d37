/**
 * The web front for `ladder server` (both modes): the --web-* / --tls-* / --acme* / --decoy /
 * --trust-proxy flags (and the config file's `web` object), turning them into
 * WebServiceSettings, starting the front with the WebSocket endpoints of a ShadowsocksServer, the
 * banner's status line and the v2ray-plugin access URL of a key.
 *
 * The secret path is a secret like a key's password: it is never logged and only printed inside
 * a key URL, where the key URL itself is printed.
 */
import type { PendingCaps } from '../server/pending-limits.js';
import type { Command } from 'commander';
import { createHash, createHmac } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { fileErrorWhy } from '../config/errors.js';
import { parseFlags, webFlagsSchema } from '../config/flags.js';
import type { WebConfig } from '../config/server.js';
import {
  grpcKeyUrlFor,
  GRPC_CLIENTS,
  HTTP_UPGRADE_CLIENTS,
  httpUpgradeKeyUrlFor,
  webKeyUrlFor,
  webSocketClients,
  type WebEndpoint,
} from '../protocol/sip002/plugin-opts.js';
import { editDistance } from '../protocol/near-miss.js';
import type { SavedWebEndpoint } from './web-endpoint-file.js';
import type { DataPlaneOptions, ShadowsocksServer } from '../server/index.js';
// The web front's modules (ws, acme-client, the decoy site) load only when --web-port is given.
import type { WebService, WebServiceSettings } from '../server/web/setup.js';
import type { RuntimeKey } from '../shared/control.js';
import { bindErrorCode, explainBindError } from '../shared/listen.js';
import { formatHostPort } from '../shared/parse.js';
import type { Logger } from '../shared/logger.js';
import { UsageError } from './errors.js';
import { keptSecret } from './kept-secret.js';
import { looseWebWarnings, refuseAcmeAddress } from './web-loose.js';

export interface WebFlags {
  webPort?: string;
  webHost?: string;
  webPath?: string;
  decoy?: string;
  decoyH2?: string;
  tlsCert?: string;
  tlsKey?: string;
  acme?: string;
  acmeEmail?: string;
  acmeDirectory?: string;
  acmeHttpPort?: string;
  trustProxy?: string[];
  webPublicUrl?: string;
  advertise?: string;
}

/** The web flags: commander's key, the flag, the config file's `web` field. */
const FLAGS = [
  ['webPort', '--web-port', 'port'],
  ['webHost', '--web-host', 'host'],
  ['webPath', '--web-path', 'path'],
  ['decoy', '--decoy', 'decoy'],
  ['decoyH2', '--decoy-h2', 'decoyH2'],
  ['tlsCert', '--tls-cert', 'tlsCert'],
  ['tlsKey', '--tls-key', 'tlsKey'],
  ['acme', '--acme', 'acme'],
  ['acmeEmail', '--acme-email', 'acmeEmail'],
  ['acmeDirectory', '--acme-directory', 'acmeDirectory'],
  ['acmeHttpPort', '--acme-http-port', 'acmeHttpPort'],
  ['trustProxy', '--trust-proxy', 'trustProxy'],
  ['webPublicUrl', '--web-public-url', 'publicUrl'],
  ['advertise', '--advertise', 'advertise'],
] as const;

const commaList = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  ...value.split(',').map((s) => s.trim()),
];

/** The web front's options, shared by both modes of `ladder server`. */
export function addWebOptions(cmd: Command): Command {
  return cmd
    .option(
      '--web-port <port>',
      'also serve Shadowsocks over WebSocket (and a decoy website) on this port (0 picks one)',
    )
    .option('--web-host <addr>', 'address the web front listens on (default all interfaces)')
    .option(
      '--web-path <path>',
      'secret path of the WebSocket endpoints, /SECRET (default: managed mode generates one and keeps it in --data-dir; unmanaged derives one from the first key)',
    )
    .option(
      '--decoy <site>',
      'what everyone else sees on the web port: builtin (default), a directory, or https://upstream',
    )
    .option(
      '--decoy-h2 <on|off>',
      'offer HTTP/2 (ALPN h2) for the decoy on the TLS web port, as most HTTPS sites do (default on)',
    )
    .option('--tls-cert <file>', 'web front: TLS certificate (PEM; with --tls-key)')
    .option('--tls-key <file>', 'web front: TLS private key (PEM; with --tls-cert)')
    .option(
      '--acme <domain>',
      'web front: get a TLS certificate for DOMAIN[,DOMAIN] from an ACME CA (managed mode: kept in --data-dir)',
    )
    .option('--acme-email <addr>', 'ACME account contact')
    .option('--acme-directory <url>', "ACME directory URL (default Let's Encrypt)")
    .option('--acme-http-port <port>', 'where ACME HTTP-01 challenges are answered (default 80)')
    .option(
      '--trust-proxy <cidr>',
      'believe X-Forwarded-For/Forwarded/CF-Connecting-IP from these addresses (CIDR[,CIDR]; repeatable): nginx, a CDN',
      commaList,
    )
    .option(
      '--web-public-url <url>',
      'what keys and subscriptions tell clients to dial for the web front when it is not this host and --web-port, e.g. wss://cdn.example.net (a CDN or reverse proxy)',
    )
    .option(
      '--advertise <all|web>',
      'what keys and subscriptions name: all = the web front and the raw host:port (default); web = the web front only, so key holders never learn the origin a CDN hides',
    );
}

/** Where clients reach the web front from outside (a CDN edge, a reverse proxy): --web-public-url. */
export interface PublicWebUrl {
  /** Name or address clients dial and send as Host/SNI (IPv6 without brackets). */
  host: string;
  port: number;
  tls: boolean;
}

/**
 * Parse --web-public-url: ws:// or http:// (plain), wss:// or https:// (TLS), a host, an optional
 * port (default 80 / 443), nothing else. The secret path stays the server's (a CDN forwards it).
 */
export function parsePublicWebUrl(text: string): PublicWebUrl {
  // The value is echoed unless it may carry credentials (user:password@).
  const shown = text.includes('@') ? '' : `, got ${JSON.stringify(text)}`;
  const bad = (why: string): never => {
    throw new UsageError(`--web-public-url: ${why}${shown}`);
  };
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return bad('expected a URL such as wss://cdn.example.net or https://cdn.example.net:8443');
  }
  const tls = u.protocol === 'wss:' || u.protocol === 'https:';
  if (!tls && u.protocol !== 'ws:' && u.protocol !== 'http:')
    bad('expected ws://, wss://, http:// or https://');
  if (u.hostname === '') bad('no host');
  if (u.username !== '' || u.password !== '') bad('no user name or password in it');
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '' || /[?#]/.test(text))
    bad("no path, query or fragment (the secret path is the server's, --web-path)");
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: u.port === '' ? (tls ? 443 : 80) : Number(u.port), tls };
}

/** The web settings without the secret path (which the mode decides), or undefined when the front is off. */
export type WebPlan = Omit<WebServiceSettings, 'secretPath' | 'logger'> & {
  secretPath?: string;
  /** --web-public-url: advertised in keys and subscriptions instead of this host and port. */
  publicUrl?: PublicWebUrl;
  /** --advertise web: keys and subscriptions name the web front only, never the raw host:port. */
  webOnly?: boolean;
};

/**
 * Flags over the config file's `web` object. `dataDir` is where ACME keeps its state (managed
 * mode's data dir; the config file's web.dataDir in unmanaged mode). Bad values and combinations
 * are one-line usage errors.
 */
export async function planWeb(
  flags: WebFlags,
  fromFile: { web: WebConfig; source: string } | undefined,
  dataDir: string | undefined,
): Promise<WebPlan | undefined> {
  const file = fromFile?.web;
  const parsed = parseFlags(webFlagsSchema, flags);
  const port = parsed.webPort ?? file?.port;
  if (port === undefined) {
    const given = FLAGS.find(([k]) => flags[k] !== undefined);
    if (given) throw new UsageError(`${given[1]} needs --web-port (it configures the web front)`);
    return undefined;
  }
  // A message about a value from the config file names its field there, not the flag.
  const fail = (message: string): never => {
    const hit = FLAGS.find(
      ([k, name, field]) => message.startsWith(name) && flags[k] === undefined && file?.[field] !== undefined,
    );
    if (hit && fromFile)
      throw new UsageError(`${fromFile.source}: web.${hit[2]}${message.slice(hit[1].length)}`);
    throw new UsageError(message);
  };
  for (const [k, name] of [
    ['webHost', '--web-host'],
    ['webPath', '--web-path'],
    ['decoy', '--decoy'],
    ['acme', '--acme'],
    ['webPublicUrl', '--web-public-url'],
  ] as const) {
    if (flags[k] === '') throw new UsageError(`${name} must not be empty`);
  }
  const pick = <T>(a: T | undefined, b: T | undefined): T | undefined => (a !== undefined ? a : b);
  // TLS from the flags replaces TLS from the file as a whole (files or ACME, not a mix).
  const tlsFromFlags = flags.tlsCert !== undefined || flags.tlsKey !== undefined || flags.acme !== undefined;
  const tlsCertFile = tlsFromFlags ? flags.tlsCert : file?.tlsCert;
  const tlsKeyFile = tlsFromFlags ? flags.tlsKey : file?.tlsKey;
  const acmeDomains = tlsFromFlags ? flags.acme?.split(',').map((d) => d.trim()) : file?.acme;
  const plan: WebPlan = {
    port,
    ...opt('host', pick(flags.webHost, file?.host)),
    ...opt('secretPath', pick(flags.webPath, file?.path)),
    ...opt('decoy', pick(flags.decoy, file?.decoy)),
    ...opt('decoyH2', pick(parseOnOff(flags.decoyH2, '--decoy-h2'), file?.decoyH2)),
    ...opt('tlsCertFile', tlsCertFile),
    ...opt('tlsKeyFile', tlsKeyFile),
    ...opt('acmeDomains', acmeDomains),
    ...opt('acmeEmail', pick(flags.acmeEmail, file?.acmeEmail)),
    ...opt('acmeDirectoryUrl', pick(flags.acmeDirectory, file?.acmeDirectory)),
    ...opt('acmeHttpPort', pick(parsed.acmeHttpPort, file?.acmeHttpPort)),
    ...opt('dataDir', pick(dataDir, file?.dataDir)),
    ...opt('trustProxy', pick(flags.trustProxy, file?.trustProxy)),
  };
  const publicUrl = pick(flags.webPublicUrl, file?.publicUrl);
  if (publicUrl !== undefined) {
    try {
      plan.publicUrl = parsePublicWebUrl(publicUrl);
    } catch (err) {
      fail((err as Error).message);
    }
  }
  const advertise = pick(flags.advertise, file?.advertise);
  if (advertise !== undefined && advertise !== 'all' && advertise !== 'web')
    fail(`--advertise: expected all or web, got ${JSON.stringify(advertise)}`);
  if (advertise === 'web') plan.webOnly = true;
  if (acmeDomains?.some((d) => d === '')) throw new UsageError('--acme: empty domain name');
  refuseAcmeAddress(acmeDomains);
  if (!plan.acmeDomains && (plan.acmeEmail ?? plan.acmeDirectoryUrl ?? plan.acmeHttpPort) !== undefined)
    throw new UsageError('--acme-email, --acme-directory and --acme-http-port need --acme');
  const { validateWebSettings } = await import('../server/web/setup.js');
  try {
    // A stand-in path when the mode generates one later.
    validateWebSettings({ ...plan, secretPath: plan.secretPath ?? '/x' });
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  for (const [f, name] of [
    [plan.tlsCertFile, '--tls-cert'],
    [plan.tlsKeyFile, '--tls-key'],
  ] as const) {
    if (f === undefined) continue;
    try {
      await access(f, constants.R_OK);
    } catch (err) {
      fail(`${name} ${f}: ${fileErrorWhy(err)}`);
    }
  }
  if (plan.tlsCertFile !== undefined && plan.tlsKeyFile !== undefined)
    await checkCertificatePair(
      plan.tlsCertFile,
      plan.tlsKeyFile,
      tlsFromFlags ? undefined : fromFile?.source,
      fail,
    );
  const dir = decoyDir(plan.decoy);
  if (dir !== undefined) {
    const isDir = await stat(dir).then(
      (s) => s.isDirectory(),
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? 'missing' : false),
    );
    // `bulitin`, `buildin`: a near miss of the one word --decoy takes, not a directory name.
    const near = !dir.includes('/') && editDistance(dir, 'builtin') <= 2 ? ' (did you mean builtin?)' : '';
    // `ftp://…`, `wss://…`: a site of a kind the decoy cannot proxy, not a directory name.
    const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(dir)
      ? ' (a site to show is https://HOST[/PATH], or http:// on this machine or its network)'
      : '';
    if (isDir !== true)
      fail(
        `--decoy ${dir}: ${isDir === 'missing' && !near && !scheme ? 'no such directory' : 'not a directory'}${near}${scheme}`,
      );
  }
  return plan;
}

/**
 * Refuse a certificate or key TLS cannot use (not PEM, a key that does not match the
 * certificate) before anything listens, in one line naming the files; never their contents.
 */
async function checkCertificatePair(
  certFile: string,
  keyFile: string,
  configFile: string | undefined,
  fail: (message: string) => never,
): Promise<void> {
  const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  const names = configFile
    ? `${configFile}: web.tlsCert ${certFile} / web.tlsKey ${keyFile}`
    : `--tls-cert ${certFile} / --tls-key ${keyFile}`;
  // Which file is wrong (the two swapped, or the certificate given twice), before OpenSSL's words.
  if (!cert.includes('-----BEGIN CERTIFICATE-----'))
    fail(`${names}: expected a PEM certificate (-----BEGIN CERTIFICATE-----) in ${certFile}`);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString('latin1')))
    fail(`${names}: expected a PEM private key (-----BEGIN PRIVATE KEY-----) in ${keyFile}`);
  const { createSecureContext } = await import('node:tls');
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    const raw = err instanceof Error ? err.message : String(err);
    const why = /key values mismatch/i.test(raw)
      ? 'the key does not belong to the certificate'
      : /no start line|bad base64|PEM/i.test(raw)
        ? 'expected a PEM certificate (-----BEGIN CERTIFICATE-----) and a PEM private key'
        : raw.replace(/^error:[0-9A-F]+:[^:]*::/i, '');
    fail(`${names}: ${why}`);
  }
}

/** `on` / `off` → true / false; anything else is a usage error naming the flag. */
function parseOnOff(value: string | undefined, name: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === 'on' || value === 'off') return value === 'on';
  throw new UsageError(`${name}: expected on or off, got ${JSON.stringify(value)}`);
}

function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** The directory a --decoy value names, if it names one. */
function decoyDir(decoy: string | undefined): string | undefined {
  if (decoy === undefined || decoy === 'builtin' || /^https?:\/\//i.test(decoy)) return undefined;
  return decoy.startsWith('dir:') ? decoy.slice(4) : decoy;
}

const SECRET_FILE = 'web-path';

/**
 * Managed mode's secret path: --web-path when given (and then kept), else the one kept in the
 * data dir, else a new one (kept). Stable across restarts.
 */
export async function storedSecretPath(dataDir: string, given: string | undefined): Promise<string> {
  const generate = async (): Promise<string> => (await import('../server/web/front.js')).generateSecretPath();
  return keptSecret(dataDir, SECRET_FILE, given, generate);
}

export interface RunningWeb {
  readonly service: WebService;
  readonly settings: WebServiceSettings;
  /** --web-public-url, when given: what keys and subscriptions advertise. */
  readonly publicUrl?: PublicWebUrl | undefined;
  /** --advertise web: keys and subscriptions name this front only. */
  readonly webOnly: boolean;
  close(): Promise<void>;
}

/**
 * The unmanaged server's secret path when none is given: derived from its first key (HMAC-SHA256
 * of a fixed label under the key's method and secret), so the web URLs a server prints stay valid
 * across restarts while that key stays first, with no state to keep. It reveals nothing of the key;
 * anyone holding a key of this server learns the path from their URL anyway. The shape is that of
 * a generated path (22 base64url characters).
 */
export function derivedSecretPath(firstKey: { method: string; secret: string }): string {
  const mac = createHmac('sha256', `${firstKey.method}:${firstKey.secret}`).update('ladder web path v1');
  return '/' + mac.digest().subarray(0, 16).toString('base64url');
}

/**
 * Start the web front for `server`: WebSocket streams (every key of the server) and, when
 * `udp` is true, UDP over WebSocket (the same keys, usage counted to them). Without a secret path in `plan`, a new one is generated
 * (the unmanaged server's; managed mode passes its stored one). Bind errors are usage errors
 * naming the web port.
 */
export async function startWeb(
  plan: WebPlan,
  server: ShadowsocksServer,
  udp: boolean,
  logger: Logger,
  pending?: PendingCaps,
): Promise<RunningWeb> {
  const [{ generateSecretPath }, { startWebService }, { createWebSocketEndpoints }, { createGrpcEndpoints }] =
    await Promise.all([
      import('../server/web/front.js'),
      import('../server/web/setup.js'),
      import('../server/web/websocket.js'),
      import('../server/web/grpc.js'),
    ]);
  const { publicUrl, webOnly, ...front } = plan;
  const secretPath = front.secretPath ?? generateSecretPath();
  // The builtin decoy's wording follows the secret path (stable with it), not revealing it.
  const settings: WebServiceSettings = {
    decoySeed: createHash('sha256').update(`decoy ${secretPath}`).digest(),
    ...front,
    secretPath,
  };
  const endpoints = createWebSocketEndpoints(server, {
    secretPath: settings.secretPath,
    udp,
  });
  // gRPC calls on the secret path (service name = the path without '/'): ../server/web/grpc.ts.
  const grpc = createGrpcEndpoints(server, { secretPath: settings.secretPath });
  let service: WebService;
  try {
    service = await startWebService(
      { ...settings, logger, pending },
      (req, socket, head, addr) => endpoints.onUpgrade(req, socket, head, addr),
      (req, res, addr) => grpc.onRequest(req, res, addr),
    );
  } catch (err) {
    endpoints.close();
    grpc.close();
    const code = bindErrorCode(err);
    if (code) {
      const port = settings.acmeDomains?.length
        ? `${settings.port} (or the ACME port ${settings.acmeHttpPort ?? 80})`
        : `${settings.port}`;
      throw new UsageError(
        `cannot listen on web port ${port}: ${explainBindError(code, settings.acmeDomains?.length ? Math.min(settings.port, settings.acmeHttpPort ?? 80) : settings.port)}`,
      );
    }
    throw err;
  }
  if (publicUrl !== undefined && webOnly !== true) logger.warn(RAW_ADVERTISED);
  for (const line of looseWebWarnings({ decoy: settings.decoy, publicUrl })) logger.warn(line);
  return {
    service,
    settings,
    publicUrl,
    webOnly: webOnly === true,
    async close() {
      endpoints.close();
      grpc.close();
      await service.close();
    },
  };
}

/** The start-up warning when a CDN's URL is given but keys still name the origin (docs/web-front.md). */
export const RAW_ADVERTISED =
  '--web-public-url is set but keys and subscriptions still name the raw port at this host (the origin a CDN hides); --advertise web leaves it out';

/**
 * Managed mode's server for the web front: the data planes' options, no listener of its own
 * (its keys are every key of every port, set by the port pool); usage runs as on a listening
 * server. With `replayFilters` (the primary port's workers' shared filters) its salts are checked
 * against the raw port's and the other way round; the primary port loads and saves them.
 */
export async function startWebOnlyServer(
  options: Omit<DataPlaneOptions, 'keys' | 'port'>,
): Promise<ShadowsocksServer> {
  const { ShadowsocksServer } = await import('../server/index.js');
  const { host: _host, udp, replayStateFile: _file, ...rest } = options;
  // No UDP socket of its own, but UDP-over-TCP on its streams follows the data planes' UDP.
  const server = new ShadowsocksServer({ udpOverTcp: udp !== undefined && udp !== false, ...rest });
  await server.startWithoutListener();
  return server;
}

/** One banner line about the web front (no secrets). */
export function webStatusLine(web: RunningWeb): string {
  const s = web.settings;
  const tls = s.acmeDomains?.length
    ? `TLS, ACME certificate for ${s.acmeDomains.join(', ')}`
    : web.service.front.tls
      ? 'TLS'
      : 'plain HTTP; put TLS in front of it, e.g. nginx or a CDN';
  const d = s.decoy;
  const decoy =
    d === undefined || d === 'builtin'
      ? 'builtin site'
      : /^https?:\/\//i.test(d)
        ? 'reverse proxy'
        : 'files from a directory';
  const n = s.trustProxy?.length ?? 0;
  const proxies = n === 0 ? 'no trusted proxies' : `${n} trusted prox${n === 1 ? 'y' : 'ies'}`;
  const pu = web.publicUrl;
  const advertised = pu
    ? `; advertised as ${pu.tls ? 'wss' : 'ws'}://${formatHostPort(pu.host, pu.port)}`
    : '';
  // A short secret path is found by a prober trying common ones ('/ws', '/v2ray', '/ray'...).
  const len = s.secretPath.length - 1;
  const short =
    len < SHORT_PATH
      ? `; WARNING: the web path has ${len} characters, easy to guess (use ${SHORT_PATH}+ random ones)`
      : '';
  return `web front on port ${web.service.front.port} (${tls}); decoy: ${decoy}; ${proxies}${advertised}${short}`;
}

/** Secret paths shorter than this (after the slash) get a warning in the banner. */
const SHORT_PATH = 12;

export {
  GRPC_CLIENTS,
  grpcKeyUrlFor,
  HTTP_UPGRADE_CLIENTS,
  httpUpgradeKeyUrlFor,
  webKeyUrlFor,
  type WebEndpoint,
};

/**
 * The public endpoint of a running front: --web-public-url when given, else `host` (the
 * access-key host; the ACME domain wins) with the front's own port and TLS.
 */
export function webEndpointOf(web: RunningWeb, host: string): SavedWebEndpoint {
  const pu = web.publicUrl;
  return {
    host: pu?.host ?? web.settings.acmeDomains?.[0] ?? host,
    port: pu?.port ?? web.service.front.port,
    path: web.settings.secretPath,
    tls: pu?.tls ?? web.service.front.tls,
    mux: true,
    // gRPC needs h2: a TLS front of its own without ALPN h2 (--decoy-h2 off) has none.
    ...(pu === undefined && web.service.front.tls && !web.service.front.h2 ? { grpc: false } : {}),
    ...(web.webOnly ? { only: true } : {}),
  };
}

/** A key's v2ray-plugin URL for a running front (see webEndpointOf). */
export function webKeyUrl(
  key: Pick<RuntimeKey, 'method' | 'secret'>,
  host: string,
  web: RunningWeb,
  tag: string,
): string {
  return webKeyUrlFor(key, webEndpointOf(web, host), tag);
}

/**
 * The managed banner's web lines for a key: its WebSocket, HTTPUpgrade and (where the front takes
 * gRPC: TLS with h2) gRPC URLs, as the unmanaged banner prints them (none for a web-only front).
 */
export function webBannerUrls(
  key: Pick<RuntimeKey, 'method' | 'secret'>,
  host: string,
  web: RunningWeb | undefined,
  name: string,
): { webUrl?: string; webClients?: string; httpUpgradeUrl?: string; grpcUrl?: string } {
  if (!web || web.webOnly) return {};
  const ep = webEndpointOf(web, host);
  const grpcUrl = grpcKeyUrlFor(key, ep, `${name} (gRPC)`);
  return {
    webUrl: webKeyUrlFor(key, ep, `${name} (web)`),
    webClients: webSocketClients(key.method),
    httpUpgradeUrl: httpUpgradeKeyUrlFor(key, ep, `${name} (HTTPUpgrade)`),
    ...(grpcUrl ? { grpcUrl } : {}),
  };
}

/** A key's gRPC URL for a running front (for `ladder client`), or undefined where it takes no gRPC. */
export function grpcKeyUrl(
  key: Pick<RuntimeKey, 'method' | 'secret'>,
  host: string,
  web: RunningWeb,
  tag: string,
): string | undefined {
  return grpcKeyUrlFor(key, webEndpointOf(web, host), tag);
}

export { loadWebEndpoint, saveWebEndpoint, type SavedWebEndpoint } from './web-endpoint-file.js';
