import { ProtocolError } from '../errors.js';
import { isIP } from 'node:net';
import { formatSsUrl, type SsKey } from './index.js';
import { grpcServiceName } from './transport.js';
import { nearMiss } from '../near-miss.js';

/**
 * SIP003 plugin options (SS_PLUGIN_OPTIONS, the part after `plugin=name;` in a SIP002 URL):
 * `key=value` pairs and bare flags separated by `;`, with `\` escaping `;`, `=` and `\` itself.
 * A bare flag maps to true; a repeated key keeps its last value.
 */
export function parsePluginOptions(text: string): Map<string, string | true> {
  const out = new Map<string, string | true>();
  let key = '';
  let value = '';
  let inValue = false;
  const flush = (): void => {
    if (key.length === 0 && !inValue) return;
    if (key.length === 0) throw new ProtocolError('ERR_URL', 'plugin option without a name');
    out.set(key, inValue ? value : true);
    key = '';
    value = '';
    inValue = false;
  };
  for (let i = 0; i < text.length; i++) {
    let c = text[i]!;
    if (c === '\\') {
      if (i + 1 >= text.length) throw new ProtocolError('ERR_URL', 'plugin options end with a lone "\\"');
      c = text[++i]!;
    } else if (c === ';') {
      flush();
      continue;
    } else if (c === '=' && !inValue) {
      inValue = true;
      continue;
    }
    if (inValue) value += c;
    else key += c;
  }
  flush();
  return out;
}

/** SIP003 plugin names whose wire Ladder speaks itself (Debian calls v2ray-plugin ss-v2ray-plugin). */
export const V2RAY_PLUGIN_NAMES: ReadonlySet<string> = new Set(['v2ray-plugin', 'ss-v2ray-plugin']);

/** What a SIP002 key's `plugin=v2ray-plugin;…` asks for (v2ray-plugin's client defaults). */
export interface V2rayPluginOptions {
  tls: boolean;
  /** Host header and TLS server name (default cloudfront.com, as v2ray-plugin). */
  host: string;
  path: string;
  /** Mux.Cool on (v2ray-plugin's mux defaults to 1; 0 turns it off). */
  mux: boolean;
  /** `cert=PATH`: a CA or certificate file the TLS connection trusts besides the usual roots. */
  cert?: string;
  /** mihomo's `v2ray-http-upgrade`: HTTPUpgrade (the upgraded connection is the stream, no frames). */
  httpUpgrade?: true;
  /** mihomo's `v2ray-http-upgrade-fast-open`: HTTPUpgrade's first bytes go with the request. */
  httpUpgradeFastOpen?: true;
  /** Options given that change nothing here, one sentence each naming the option (never its value). */
  notes?: string[];
}

/**
 * mihomo's v2ray-plugin option for HTTPUpgrade (its `plugin-opts` field name, written the same in
 * a SIP002 plugin string): a bare flag, `=true` or `=1` turn it on. v2ray-plugin itself does not
 * know it (HTTPUpgrade keys are for mihomo and Ladder's client).
 */
export const HTTP_UPGRADE = 'v2ray-http-upgrade';
/** mihomo's "send before the 101": the request and the first bytes in one write. */
export const HTTP_UPGRADE_FAST_OPEN = 'v2ray-http-upgrade-fast-open';

/** A mihomo-style boolean option: a bare flag, true/1 or false/0 (anything else is refused). */
function flagOption(o: Map<string, string | true>, name: string): boolean {
  const v = o.get(name);
  if (v !== undefined && v !== true && !['true', 'false', '1', '0'].includes(v))
    throw new ProtocolError('ERR_URL', `v2ray-plugin option "${name}" must be true or false`);
  return v === true || v === 'true' || v === '1';
}

/** The options this client reads (a near miss of one is refused with "did you mean"). */
const READ_OPTIONS = ['host', 'path', 'mode', 'tls', 'mux', 'cert', HTTP_UPGRADE, HTTP_UPGRADE_FAST_OPEN];

/** Options v2ray-plugin knows that only matter to its own process or to its server side. */
const IGNORED_OPTIONS = new Set([
  'loglevel',
  'fast-open',
  'fastOpen',
  'V',
  'localAddr',
  'localPort',
  'remoteAddr',
  'remotePort',
  'key',
  'certRaw',
  'fwmark',
]);

/** The read option `name` is an obvious misspelling of (1 edit for 3 letters, 2 for 4), if any. */
function nearReadOption(name: string): string | undefined {
  return nearMiss(name, READ_OPTIONS, 8);
}

/** An option name (or a mode or mux value) as shown: quoted, printable, bounded (names are never secrets; a path or host may be). */
function shownName(name: string): string {
  return JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name);
}

/**
 * Interpret v2ray-plugin's options for a client. Only websocket mode is supported (quic is
 * refused). `cert=PATH` is v2ray-plugin's client meaning: a certificate or CA to trust (the file
 * is read by the caller). Options that only matter to v2ray-plugin's own process (loglevel, fast-open, …) and
 * names v2ray-plugin does not know are kept as `notes` for a warning at start (keys other tools
 * generate may carry extras: refusing them would break those keys); a name one or two edits from
 * an option this client reads (`hots`, `Path`, `tsl`) is refused with "did you mean", since
 * ignoring it would silently dial with v2ray-plugin's default instead.
 */
export function parseV2rayPluginOptions(text: string | undefined): V2rayPluginOptions {
  const o = parsePluginOptions(text ?? '');
  const str = (k: string): string | undefined => {
    const v = o.get(k);
    return v === undefined ? undefined : v === true ? '' : v;
  };
  const notes: string[] = [];
  for (const name of o.keys()) {
    if (READ_OPTIONS.includes(name) || name === 'server') continue;
    if (IGNORED_OPTIONS.has(name)) {
      notes.push(`option ${shownName(name)} is ignored (it only matters to v2ray-plugin's own process)`);
      continue;
    }
    const near = nearReadOption(name);
    if (near !== undefined)
      throw new ProtocolError(
        'ERR_URL',
        `v2ray-plugin option ${shownName(name)} is unknown: did you mean "${near}"?`,
      );
    notes.push(`option ${shownName(name)} is not a v2ray-plugin option; ignored`);
  }
  const mode = str('mode') ?? 'websocket';
  if (mode !== 'websocket')
    throw new ProtocolError(
      'ERR_URL',
      `v2ray-plugin mode ${shownName(mode)} is not supported (only websocket)`,
    );
  if (o.has('server')) throw new ProtocolError('ERR_URL', 'v2ray-plugin "server" option in a client key');
  const tlsOpt = o.get('tls');
  const path = str('path') || '/';
  const muxText = str('mux') ?? '1';
  const mux = Number(muxText);
  if (!Number.isInteger(mux) || mux < 0)
    throw new ProtocolError('ERR_URL', `v2ray-plugin mux ${shownName(muxText)} is not a count`);
  // The host and path go into a Host header and a request line: a CR/LF would split the
  // request, a space or "#" would end or change the URL there.
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f/\\?#@]/.test(str('host') ?? ''))
    throw new ProtocolError(
      'ERR_URL',
      'v2ray-plugin option "host" contains a character not allowed in a host name',
    );
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f#]/.test(str('path') ?? ''))
    throw new ProtocolError(
      'ERR_URL',
      'v2ray-plugin option "path" contains a space, a control character or "#"',
    );
  const tls = tlsOpt !== undefined && tlsOpt !== 'false' && tlsOpt !== '0';
  const httpUpgrade = flagOption(o, HTTP_UPGRADE);
  const fastOpen = flagOption(o, HTTP_UPGRADE_FAST_OPEN);
  if (fastOpen && !httpUpgrade)
    notes.push(`option "${HTTP_UPGRADE_FAST_OPEN}" is ignored without "${HTTP_UPGRADE}"`);
  const cert = str('cert');
  if (cert === '')
    throw new ProtocolError('ERR_URL', 'v2ray-plugin option "cert" needs a file path (cert=PATH)');
  if (cert !== undefined && !tls) notes.push('option "cert" is ignored without "tls"');
  return {
    tls,
    host: str('host') || 'cloudfront.com',
    path: path.startsWith('/') ? path : `/${path}`,
    mux: mux > 0,
    ...(cert !== undefined && tls ? { cert } : {}),
    ...(httpUpgrade ? { httpUpgrade: true as const } : {}),
    ...(httpUpgrade && fastOpen ? { httpUpgradeFastOpen: true as const } : {}),
    ...(notes.length > 0 ? { notes } : {}),
  };
}

/**
 * A web front's public endpoint: what a v2ray-plugin key, a Clash/sing-box entry or a
 * subscription points at. `host` is dialled and sent as Host (and SNI with TLS); `path` is the
 * secret path (a secret: print it only where keys are printed); `mux` says the server takes
 * Mux.Cool (Ladder's takes raw WebSockets too).
 */
export interface WebEndpoint {
  host: string;
  port: number;
  path: string;
  tls: boolean;
  mux: boolean;
}

/** Escape a plugin option value (SIP003: `\` before `;`, `=` and `\`). */
export function pluginValue(v: string): string {
  return v.replace(/[\\;=]/g, (c) => `\\${c}`);
}

/** `mode=websocket;path=…;host=…[;tls]` for `ep`, as v2ray-plugin reads it. */
export function formatV2rayPluginOptions(ep: Pick<WebEndpoint, 'host' | 'path' | 'tls'>): string {
  const opts = ['mode=websocket', `path=${pluginValue(ep.path)}`, `host=${pluginValue(ep.host)}`];
  if (ep.tls) opts.push('tls');
  return opts.join(';');
}

/**
 * A key's SIP002 URL over a web front, for v2ray-plugin clients (ss-local + v2ray-plugin,
 * v2rayNG, Clash/mihomo, sing-box, ladder client).
 */
export function webKeyUrlFor(key: { method: string; secret: string }, ep: WebEndpoint, tag?: string): string {
  return frontKeyUrl(key, ep, tag, { plugin: 'v2ray-plugin', pluginOptions: formatV2rayPluginOptions(ep) });
}

/**
 * A key's SIP002 URL over the web front's HTTPUpgrade endpoint (`/SECRET/up`,
 * server/web/httpupgrade.ts): the WebSocket URL's v2ray-plugin options with mihomo's
 * `v2ray-http-upgrade`, which `ladder client` and mihomo read. v2ray-plugin, v2rayN and v2rayNG
 * do not know the option and would dial a WebSocket there: they take the WebSocket URL.
 */
/** Who takes that URL as it is (the words every place that prints it uses). */
export const HTTP_UPGRADE_CLIENTS =
  "ladder client, Clash/mihomo; Xray/v2rayN/v2rayNG: the subscription's v2ray-json format";

/**
 * The apps a web front's WebSocket key (the v2ray-plugin URL) is printed for. shadowsocks-libev's
 * ss-local has no Shadowsocks-2022 ciphers (`invalid cipher name`): a 2022 key names
 * shadowsocks-rust's sslocal, which takes the same plugin, instead.
 */
export function webSocketClients(method: string): string {
  const local = method.startsWith('2022-') ? 'sslocal (shadowsocks-rust)' : 'ss-local';
  return `${local} + v2ray-plugin, v2rayNG, Clash/mihomo, sing-box`;
}

/** Who takes a `type=grpc` URL (the words the banners and `keys url` use). */
export const GRPC_CLIENTS = "ladder client; v2rayNG/v2rayN: the subscription's v2ray-json format";

export function httpUpgradeKeyUrlFor(
  key: { method: string; secret: string },
  ep: WebEndpoint,
  tag?: string,
): string {
  const opts = `${formatV2rayPluginOptions({ ...ep, path: `${ep.path}/up` })};${HTTP_UPGRADE}`;
  return frontKeyUrl(key, ep, tag, { plugin: 'v2ray-plugin', pluginOptions: opts });
}

/** A key's ss:// URL at the front's host and port, with `how` (a plugin or a transport). */
function frontKeyUrl(
  key: { method: string; secret: string },
  ep: WebEndpoint,
  tag: string | undefined,
  how: Pick<SsKey, 'plugin' | 'pluginOptions' | 'transport'>,
): string {
  const where = { method: key.method, password: key.secret, host: ep.host, port: ep.port };
  return formatSsUrl({ ...where, ...(tag !== undefined ? { tag } : {}), ...how });
}

/**
 * A key's ss:// URL over the web front's gRPC service (Xray's share-link names, which `ladder
 * client` reads: `type=grpc&serviceName=…&security=tls&sni=…`), or undefined where the front takes
 * no gRPC (plain HTTP, or TLS without h2: `grpc: false`). Not for v2rayN/v2rayNG, which read no
 * transport from an ss:// link (subscriptions give them the v2ray-json format).
 */
export function grpcKeyUrlFor(
  key: { method: string; secret: string },
  ep: WebEndpoint & { grpc?: boolean | undefined },
  tag?: string,
): string | undefined {
  if (!ep.tls || ep.grpc === false) return undefined;
  // RFC 6066: no address as SNI (the client then sends none, as for a WebSocket key).
  const sni = isIP(ep.host) ? {} : { sni: ep.host };
  return frontKeyUrl(key, ep, tag, {
    transport: { type: 'grpc', serviceName: grpcServiceName(ep.path), tls: true, ...sni },
  });
}
