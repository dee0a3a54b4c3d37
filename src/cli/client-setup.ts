/**
 * Pieces of `ladder client`'s start (commands/client.ts) kept apart to keep that file readable:
 * a config file's SIP008 entries as endpoints, the start-time warnings about their keys, and the
 * proxy credentials (--auth, LADDER_AUTH, the file's "auth") with the banner's hint for them, the
 * banner's shaping and transport words, and `--status`.
 */
import type { ServerEntry } from '../config/client.js';
import { parseProxyAuth, type ProxyAuth } from '../config/proxy-auth.js';
import { UsageError } from './errors.js';
import { endpointFromParts, type KeyEndpoint } from '../client/key.js';
import type { Logger } from '../shared/logger.js';
import { shapesByDefault } from '../client/index.js';
import { formatStatus, readStatuses } from '../client/status.js';
import type { RuleSet } from '../client/routing/rules.js';

/** A config file's SIP008 entry through the checks an ss:// key goes through (v2ray-plugin: its WebSocket hop). */
export function serverEntryEndpoint(s: ServerEntry): KeyEndpoint {
  return endpointFromParts(
    {
      host: s.host,
      port: s.port,
      method: s.method,
      password: s.password,
      ...(s.tag !== undefined ? { tag: s.tag } : {}),
      ...(s.plugin !== undefined ? { plugin: s.plugin } : {}),
      ...(s.pluginOptions !== undefined ? { pluginOptions: s.pluginOptions } : {}),
    },
    (m) => (s.password.length >= 4 ? m.split(s.password).join('[redacted]') : m),
  );
}

/**
 * One warning per v2ray-plugin option a key gives that this client does not use (named, never its
 * value): a key made for v2ray-plugin's own process may carry them, and the user should know they
 * change nothing here. Endpoints by position, as every client log line names them.
 */
export function warnPluginNotes(endpoints: readonly { pluginNotes?: string[] }[], log: Logger): void {
  endpoints.forEach((e, i) => {
    for (const note of e.pluginNotes ?? [])
      // v2ray-plugin's notes begin "option …"; shadow-tls's name their plugin themselves.
      log.warn(
        { endpoint: i + 1 },
        `key of endpoint ${i + 1}: ${note.startsWith('shadow-tls') ? '' : 'v2ray-plugin '}${note}`,
      );
  });
}

/**
 * The credentials applications must give, and where they came from (for messages and the
 * banner): --auth wins, then LADDER_AUTH (out of `ps` and shell history, like LADDER_KEY), then
 * the config file's "auth". A bad value is one line naming its source, never the value.
 */
export function proxyAuthFrom(o: {
  flag: string | undefined;
  env: string | undefined;
  config: ProxyAuth | undefined;
  configName: string | undefined;
}): { auth: ProxyAuth; source: string } | undefined {
  for (const [text, source] of [
    [o.flag, '--auth'],
    // A line ending from an env file (\r\n) is not part of the password.
    [o.env?.replace(/[\r\n]+$/, '') || undefined, 'LADDER_AUTH'],
  ] as const) {
    if (text === undefined) continue;
    const auth = parseProxyAuth(text);
    if (!auth) throw new UsageError(`${source} must be user:password`);
    return { auth, source };
  }
  return o.config ? { auth: o.config, source: `${o.configName ?? 'config'}: "auth"` } : undefined;
}

/** The banner's `try:` command for a proxy URL: with auth, curl's --proxy-user with placeholders (never the password). */
export function tryCommand(proxyUrl: string, auth: boolean): string {
  return `try: curl --proxy ${proxyUrl}${auth ? ' --proxy-user USER:PASSWORD' : ''} https://example.com`;
}

/**
 * What the shaping setting does for these endpoints, in words for the banner; `offBy` names what
 * turned it off (--no-shape, or the config file's "shape"). Web endpoints add their transport.
 */
export function shapingSummary(
  eps: readonly KeyEndpoint[],
  shape: boolean | undefined,
  offBy: string,
): string {
  const shaped = eps.filter((e) => shape !== false && shapesByDefault(e)).length;
  const parts: string[] = [];
  if (shaped === eps.length) parts.push('first-packet shaping on');
  else if (shaped > 0) parts.push(`first-packet shaping on for ${shaped} of ${eps.length} endpoints`);
  else if (shape === false) parts.push(`first-packet shaping off (${offBy})`);
  if (eps.some((e) => e.prefix)) parts.push('key prefix as given');
  const ws = eps.filter((e) => e.websocket);
  if (ws.length > 0) parts.push(webSummary(ws, eps.length));
  const grpc = eps.filter((e) => e.grpc);
  if (grpc.length > 0)
    parts.push(
      `${grpc.length === eps.length ? '' : `${grpc.length} of ${eps.length} endpoints `}over gRPC${grpc.every((e) => e.grpc!.tls) ? '+TLS' : ''} (one HTTP/2 connection per server)`,
    );
  const stls = eps.filter((e) => e.shadowTls).length;
  if (stls > 0)
    parts.push(
      `${stls === eps.length ? '' : `${stls} of ${eps.length} endpoints `}over ShadowTLS v3 (a real site's TLS handshake, then tagged records)`,
    );
  return parts.join(', ');
}

/** The web endpoints' transport for the banner: WebSocket or HTTPUpgrade (+TLS), Mux.Cool on or off and how to change it. */
function webSummary(ws: readonly KeyEndpoint[], all: number): string {
  const tls = ws.every((e) => e.websocket!.url.startsWith('wss:')) ? '+TLS' : '';
  const muxed = ws.filter((e) => e.websocket!.mux).length;
  const which = ws.length === all ? '' : `${ws.length} of ${all} endpoints `;
  const up = ws.filter((e) => e.websocket!.httpUpgrade).length;
  const over =
    up === 0
      ? `WebSocket${tls}`
      : up === ws.length
        ? `HTTPUpgrade${tls}`
        : `WebSocket${tls} (HTTPUpgrade for ${up} of them)`;
  const carrier = up === ws.length ? 'an HTTPUpgrade' : 'a WebSocket';
  const mux =
    muxed === ws.length
      ? `Mux.Cool on (add mux=0 to the key for ${carrier} per connection)`
      : muxed === 0
        ? 'Mux.Cool off'
        : `Mux.Cool on for ${muxed} of them`;
  return `${which}over ${over} with ${mux}`;
}

const MODE_TEXT = {
  proxy: 'everything through the tunnel',
  direct: 'everything direct (no tunnel)',
  auto: 'direct while it works; TLS fragmentation or the tunnel once a site is seen blocked',
} as const;

/**
 * The banner's routing line: the mode, and the rules (`name`: their file) that win over it. A
 * rule set with a default (a final rule, an ACL's [bypass_all]) decides every destination the
 * rules do not match, so the mode then says nothing (auto still moves a site seen blocked on).
 */
export function routingSummary(
  route: keyof typeof MODE_TEXT,
  rules: RuleSet | undefined,
  name: string | undefined,
): string {
  if (!rules) return `${route}: ${MODE_TEXT[route]}`;
  const n = `${rules.rules.length} rule${rules.rules.length === 1 ? '' : 's'} from ${name ?? 'rules'}`;
  const fb = rules.fallback;
  if (!fb) return `${route}: ${MODE_TEXT[route]} unless a rule says otherwise, ${n}`;
  if (route === 'auto')
    return `auto: ${n}, unmatched: ${fb} (the rules' default) until a site is seen blocked, then TLS fragmentation or the tunnel`;
  return `rules: ${n}, unmatched: ${fb} (the rules' default; --route ${route} does not apply)`;
}

/** `ladder client --status`: every client's status file in the state directory. */
export function statusReport(stateDir: string): string {
  const all = readStatuses(stateDir);
  const running = all.filter((s) => s.running);
  if (all.length === 0)
    return `no ladder client status in ${stateDir} (a client writes one when its key offers a choice of endpoints or is dynamic)\n`;
  const shown = running.length > 0 ? running : all.slice(0, 1);
  return `${shown.map((s) => formatStatus(s.status, s.running)).join('\n\n')}\n`;
}
