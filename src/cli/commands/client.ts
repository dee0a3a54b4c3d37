import { Option, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, resolve as resolvePath } from 'node:path';
import { parseHostPort, parseRouteMode, parseRulesText, type ClientConfig } from '../../client/config.js';
import {
  createTunnelDialer,
  DEFAULT_DNS_UPSTREAM,
  endpointFromKey,
  parseListenAddress,
  startClient,
  type DnsMode,
  type ListenAddress,
} from '../../client/index.js';
import type { UdpAssociateHandler } from '../../client/udp-associate.js';
import {
  DynamicKeyFetchError,
  isDynamicKeyUrl,
  parseDynamicKeyUrl,
  type DynamicKeyUrl,
} from '../../client/dynamic-fetch.js';
import { refusalText } from '../../client/dynamic-key.js';
import { dialErrno, hintDialFailureOnce } from '../../client/dial-hint.js';
import {
  proxyAuthFrom,
  serverEntryEndpoint,
  shapingSummary,
  routingSummary,
  statusReport,
  tryCommand,
  warnPluginNotes,
} from '../client-setup.js';
import { startPickedTunnel, type PickedTunnel } from '../../client/picked-tunnel.js';
import { DEFAULT_ERROR_RETRY_MS, DEFAULT_REFRESH_MS } from '../../client/key-source.js';
import { defaultStateDir } from '../../client/status.js';
import type { RouteMode } from '../../client/routing/router.js';
import type { RuleSet } from '../../client/routing/rules.js';
import { parseProbeRules } from '../../client/routing/probe-rules.js';
import type { ShadowsocksEndpoint } from '../../transport/shadowsocks-dialer.js';
import type { WsEndpoint } from '../../transport/ws-dialer.js';
import type { GrpcTransportOptions } from '../../transport/grpc-dialer.js';
import { createLogger, LOG_LEVELS, type Logger } from '../../shared/logger.js';
import { logLevelFrom } from '../log-level.js';
import {
  DEFAULT_FIRST_DATA_WAIT_MS,
  DEFAULT_IDLE_SECONDS,
  DEFAULT_RESIDUAL_SECONDS,
  DEFAULT_SOCKS_LISTEN,
  SUGGESTED_HTTP_PORT,
} from '../../config/defaults.js';
import { formatHostPort } from '../../shared/parse.js';
import { clientFlagsSchema, parseFlags } from '../../config/flags.js';
import { fileErrorWhy } from '../../config/errors.js';
import { refuseBeside } from '../given-flags.js';
import { listenRefusal, twoSettings, type OwnPort } from '../own-ports.js';
import { commanderUsageError, isUserError, UsageError } from '../errors.js';
import { untilSignal } from '../shutdown.js';
import { pastedKey } from '../key-paste.js';

interface ClientFlags {
  key?: string[];
  config?: string;
  socks: string | false;
  http?: string;
  auth?: string;
  firstDataWait: string;
  shape?: boolean;
  route?: string;
  rules?: string;
  rulesFromProbe?: string;
  dns?: string;
  dnsUpstream?: string;
  dnsMode?: string;
  residual?: string;
  idleTimeout: string;
  udp?: boolean;
  udpOverTcp?: boolean;
  logLevel?: string;
  stateDir?: string;
  status?: boolean;
  refresh?: string;
}

function hostPort(a: AddressInfo): string {
  return formatHostPort(a.address, a.port);
}

/** Two listen addresses that are one (port 0 picks a free port for each: never the same). */
function sameListenAddress(a: ListenAddress, b: ListenAddress): boolean {
  return a.port !== 0 && a.port === b.port && a.host === b.host;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The file's text; a failure names where the path came from, if given (`--rules x: no such file`). */
function readText(path: string, from?: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`${from ? `${from} ` : ''}${path}: ${fileErrorWhy(err)}`, 'ERR_INPUT');
  }
}

/** Run `fn`, turning the parsers' errors into one-line usage errors that say `what`; a bug stays a bug. */
function usage<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    // A dynamic key URL's shape (scheme, certSha256) is the user's data too.
    if (err instanceof UsageError || !(isUserError(err) || err instanceof DynamicKeyFetchError)) throw err;
    const msg = (err as Error).message;
    throw new UsageError(what ? `${what}: ${msg}` : msg, 'ERR_INPUT');
  }
}

/** A flag with a default shown as written (commander quotes string defaults: "50"). */
function shownDefault(flags: string, description: string, value: string | number): Option {
  return new Option(flags, description).default(String(value), String(value));
}

type Endpoint = ShadowsocksEndpoint & {
  tag?: string;
  websocket?: WsEndpoint;
  grpc?: GrpcTransportOptions;
  udpOverTcp?: 1 | 2;
  pluginNotes?: string[];
};

/** The picker over a dynamic key or several endpoints; the first fetch's failure is one line. */
async function startPicked(o: {
  dynamicKey: DynamicKeyUrl | undefined;
  endpoints: Endpoint[];
  shape: boolean | undefined;
  residualMs: number | undefined;
  refreshMs: number | undefined;
  stateDir: string;
  log: Logger;
}): Promise<PickedTunnel> {
  try {
    return await startPickedTunnel({
      ...(o.dynamicKey ? { dynamic: o.dynamicKey } : { endpoints: o.endpoints }),
      dialerFor: (e) => createTunnelDialer(e, { shape: o.shape }),
      log: o.log,
      stateDir: o.stateDir,
      ...(o.residualMs !== undefined ? { picker: { residualMs: o.residualMs } } : {}),
      ...(o.refreshMs !== undefined
        ? { source: { refreshMs: o.refreshMs, errorRetryMs: Math.min(DEFAULT_ERROR_RETRY_MS, o.refreshMs) } }
        : {}),
    });
  } catch (err) {
    if (err instanceof DynamicKeyFetchError) throw new UsageError(`--key: ${err.message}`, 'ERR_INPUT');
    throw err;
  }
}

/** `ladder client`: the local proxy (SOCKS5 and optional HTTP in, Shadowsocks tunnel out). */
export function registerClient(program: Command): void {
  program
    .command('client')
    .exitOverride((err) => {
      if (err.exitCode === 0) throw err; // --help
      throw commanderUsageError(err, 'client');
    })
    .description(
      'run the local proxy: SOCKS5 (and optionally HTTP) in; direct, TLS-fragmented or through the Shadowsocks tunnel out',
    )
    .option(
      '--key <key>',
      'access key: ss://... (repeat for several servers: the client picks what gets through), or one dynamic key ssconf://... or https://... (fetched at start and kept fresh; a self-signed server needs ?certSha256=HEX in it); or set LADDER_KEY (several separated by spaces) to keep keys out of ps and shell history',
      collect,
    )
    .option(
      '--state-dir <dir>',
      'where the client remembers which endpoints got through on which network, and writes its status (default $LADDER_STATE_DIR, $XDG_STATE_HOME/ladder or ~/.local/state/ladder)',
    )
    .option('--status', 'show what the running clients chose (endpoints, failures, dynamic key) and exit')
    .option(
      '--refresh <s>',
      `fetch a dynamic key again this often (default ${DEFAULT_REFRESH_MS / 1000}; sooner when its endpoints fail, and at least every minute while the server refuses the key or cannot be reached)`,
    )
    .option(
      '--config <file>',
      'JSON client config: "keys" (ss:// keys)/"servers" (SIP008, e.g. a saved subscription; plugin v2ray-plugin or shadow-tls with plugin_opts), "socks", "http", "route", "rules", "dns", "dnsUpstream", "dnsMode", "shape", "residualSeconds", "udp", "udpOverTcp", "auth"; "rules" relative to the file; flags win (docs/client-config.md)',
    )
    .addOption(
      shownDefault(
        '--socks <addr>',
        'SOCKS5 listen address (host:port, [v6]:port or port)',
        DEFAULT_SOCKS_LISTEN,
      ),
    )
    .option('--no-socks', 'do not start the SOCKS5 proxy')
    .option(
      '--http <addr>',
      `also start an HTTP proxy (CONNECT and http:// URLs) on this address, e.g. 127.0.0.1:${SUGGESTED_HTTP_PORT}; it serves the PAC file at /proxy.pac`,
    )
    .option(
      '--auth <user:password>',
      'require these credentials from applications (SOCKS5 RFC 1929, HTTP Basic); or set LADDER_AUTH, or "auth" in --config, to keep the password out of ps',
    )
    .option(
      '--route <mode>',
      'proxy: everything through the tunnel (default); direct: nothing; auto: direct while it works, TLS fragmentation or the tunnel once a site is seen blocked',
    )
    .option(
      '--rules <file>',
      'routing rules, winning over --route: list format (domain-suffix,example.com,proxy / ip-cidr,10.0.0.0/8,direct / domain-keyword,ads,block / final,proxy) or a Shadowsocks .acl file; routes: direct, fragment, proxy, block (refused at once)',
    )
    .option(
      '--rules-from-probe <file>',
      'routing rules from a `ladder probe --json` file: what it found blocked through the tunnel (with --route auto, SNI-filtered https sites try TLS fragmentation first), what it found accessible direct; after --rules',
    )
    .option(
      '--dns <addr>',
      'start a local DNS server (UDP and TCP) on this address, e.g. 127.0.0.1:5353, answering through the tunnel',
    )
    .option(
      '--dns-upstream <host:port>',
      `resolver the DNS server asks (through the tunnel, so it resolves at the server's side, over TCP: it must answer DNS over TCP; default ${DEFAULT_DNS_UPSTREAM.host}:${DEFAULT_DNS_UPSTREAM.port})`,
    )
    .option(
      '--dns-mode <mode>',
      'tunnel (default): DNS over the tunnel; stub: plain DNS to the upstream that drops injected (forged) answers',
    )
    .option(
      '--residual <s>',
      `with several servers, keep off one that stalled or reset for this many seconds (default ${DEFAULT_RESIDUAL_SECONDS})`,
    )
    .addOption(
      shownDefault(
        '--first-data-wait <ms>',
        "wait this long for the application's first bytes to send them with the header",
        DEFAULT_FIRST_DATA_WAIT_MS,
      ),
    )
    .option(
      '--shape',
      'insist on first-packet shaping (on by default for keys without a prefix, except 2022-blake3-aes-128-gcm): per-connection printable/TLS-like salt prefix, first write off the prober length trigger',
    )
    .option('--no-shape', 'turn first-packet shaping off (plain random salts: for comparisons only)')
    .addOption(
      shownDefault('--idle-timeout <s>', 'close tunnels idle for this many seconds', DEFAULT_IDLE_SECONDS),
    )
    .option(
      '--udp',
      "answer SOCKS5 UDP ASSOCIATE (DNS, QUIC, calls) through the first server's UDP relay (ladder server --udp, a managed server, or ss-server -u); a web key over its packet endpoint; a key with uot=1|2 inside its tunnel stream (UDP-over-TCP)",
    )
    .option(
      '--udp-over-tcp',
      'with --udp: carry UDP inside the tunnel stream as UDP-over-TCP v2 even when the key does not say uot= (a server whose UDP port or packet endpoint is unreachable: Ladder, sing-box or mihomo)',
    )
    .option(
      '--log-level <level>',
      `${LOG_LEVELS.join('|')} (debug logs each connection's destination, its route and the rule that chose it, and why a tunnel failed or got no answer; default info or LADDER_LOG_LEVEL)`,
    )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  ladder client --key ss://... --socks 127.0.0.1:1080 --http 127.0.0.1:8118',
        '  curl --proxy socks5h://127.0.0.1:1080 https://example.com',
        '  ladder client --key ss://A --key ss://B --route auto --rules rules.txt --dns 127.0.0.1:5353',
        '  browser: automatic proxy configuration URL http://127.0.0.1:8118/proxy.pac',
        '',
        'Names are never resolved locally for proxied destinations (use socks5h:// or the HTTP proxy).',
        'Logs name no destination, server or key unless --log-level debug.',
        '',
      ].join('\n'),
    )
    .action(async (flags: ClientFlags, cmd: Command) => {
      const fromCli = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
      const stateDir = resolvePath(flags.stateDir ?? defaultStateDir());
      if (flags.status) {
        refuseBeside(cmd, '--status', ['--state-dir'], "reads the running clients' status, starts none");
        process.stdout.write(statusReport(stateDir));
        return;
      }
      let config: ClientConfig = { keys: [], servers: [] };
      let configDir = process.cwd();
      if (flags.config !== undefined) {
        const path = resolvePath(flags.config);
        const { parseClientConfig } = await import('../../config/client.js'); // zod: only with a file
        config = usage('', () => parseClientConfig(readText(path), flags.config!));
        configDir = dirname(path);
      }
      const envKeys = (process.env.LADDER_KEY ?? '').split(/\s+/).filter((k) => k.length > 0);
      const cliKeys = flags.key ?? [];
      const keyTexts = cliKeys.length > 0 ? cliKeys : envKeys;
      // Messages name where a key came from: --key, or the LADDER_KEY environment variable.
      const keySource = cliKeys.length > 0 ? '--key' : 'LADDER_KEY';
      keyTexts.forEach((k, i) => pastedKey(keyTexts.length > 1 ? `${keySource} #${i + 1}` : keySource, k));
      const endpoints: Endpoint[] = [];
      const dynamicTexts = keyTexts.filter(isDynamicKeyUrl);
      if (dynamicTexts.length > 0 && keyTexts.length > 1)
        throw new UsageError(
          `${keySource}: give one dynamic (ssconf:// or https://) key alone, without other keys`,
        );
      const dynamicKey =
        dynamicTexts[0] !== undefined
          ? usage(keySource, () => parseDynamicKeyUrl(dynamicTexts[0]!))
          : undefined;
      keyTexts.forEach((k, i) => {
        if (dynamicKey) return;
        const what = keyTexts.length > 1 ? `${keySource} #${i + 1}` : keySource;
        endpoints.push(usage(what, () => endpointFromKey(k, 'local')));
      });
      if (cliKeys.length === 0) {
        config.keys.forEach((k, i) =>
          endpoints.push(
            usage(`${flags.config}: keys[${i}]`, () =>
              endpointFromKey(pastedKey(`${flags.config}: keys[${i}]`, k), 'local'),
            ),
          ),
        );
        config.servers.forEach((s, i) =>
          endpoints.push(usage(`${flags.config}: servers[${i}]`, () => serverEntryEndpoint(s))),
        );
      }
      if (endpoints.length === 0 && !dynamicKey)
        throw new UsageError(
          '--key is required (an ss:// access key), or set LADDER_KEY, or give --config with "keys"',
        );

      let socks: ListenAddress | undefined;
      let httpAddr: ListenAddress | undefined;
      const socksFromFile = !fromCli('socks') && config.socks !== undefined;
      const socksSpec = socksFromFile ? config.socks! : flags.socks;
      const httpSpec = flags.http ?? config.http;
      // A value from the config file is named as its field there, not as the flag.
      const socksName = socksFromFile ? `${flags.config}: "socks"` : '--socks';
      const httpName = flags.http === undefined ? `${flags.config}: "http"` : '--http';
      usage('', () => {
        if (socksSpec !== false) socks = parseListenAddress(socksSpec, socksName);
        if (httpSpec !== undefined) httpAddr = parseListenAddress(httpSpec, httpName);
      });
      if (!socks && !httpAddr) throw new UsageError('nothing to do: --no-socks given and no --http address');
      if (socks && httpAddr && sameListenAddress(socks, httpAddr))
        throw new UsageError(
          `${twoSettings(socksName, httpName)} both name ${formatHostPort(httpAddr.host, httpAddr.port)}: give each proxy its own port`,
        );
      const authFrom = proxyAuthFrom({
        flag: flags.auth,
        env: process.env.LADDER_AUTH,
        config: config.auth,
        configName: flags.config,
      });
      const auth = authFrom?.auth;
      const numbers = parseFlags(clientFlagsSchema, flags);
      const firstDataWaitMs = numbers.firstDataWait;
      const idleTimeoutMs = numbers.idleTimeout * 1000;
      const residualMs =
        numbers.residual !== undefined
          ? numbers.residual * 1000
          : config.residualSeconds !== undefined
            ? config.residualSeconds * 1000
            : undefined;

      const shape = fromCli('shape') ? flags.shape : config.shape;
      // Where a value came from, for messages: the flag, or the config file's field.
      const named = (flag: string, field: keyof ClientConfig, fromFlag: boolean): string =>
        fromFlag || config[field] === undefined ? flag : `${flags.config}: "${field}"`;
      if (shape === true) {
        if (endpoints.some((e) => e.method === '2022-blake3-aes-128-gcm'))
          throw new UsageError(
            '--shape needs a 32-byte salt: 2022-blake3-aes-128-gcm has no room for a prefix after 16 random bytes',
          );
        if (endpoints.some((e) => e.prefix))
          throw new UsageError('--shape cannot be combined with a key that has a prefix');
      }

      const route: RouteMode = usage('', () =>
        flags.route !== undefined ? parseRouteMode(flags.route, '--route') : (config.route ?? 'proxy'),
      );
      let rules: RuleSet | undefined;
      let rulesName: string | undefined;
      const rulesPath =
        flags.rules !== undefined
          ? resolvePath(flags.rules)
          : config.rules
            ? resolvePath(configDir, config.rules)
            : undefined;
      if (rulesPath !== undefined) {
        rulesName = flags.rules ?? config.rules;
        const from = flags.rules !== undefined ? '--rules' : `${flags.config}: "rules":`;
        rules = usage('', () => parseRulesText(readText(rulesPath, from), rulesName!));
      }
      if (flags.rulesFromProbe !== undefined) {
        const name = flags.rulesFromProbe;
        const text = readText(resolvePath(name), '--rules-from-probe');
        const measured = usage('', () => parseProbeRules(text, name, { fragment: route === 'auto' }));
        rules = rules ? rules.concat(measured) : measured;
        rulesName = rulesName ? `${rulesName} and ${name}` : name;
      }

      const dnsListen = flags.dns ?? config.dns;
      const dnsModeText = flags.dnsMode ?? config.dnsMode ?? 'tunnel';
      if (dnsModeText !== 'tunnel' && dnsModeText !== 'stub')
        throw new UsageError(`--dns-mode must be tunnel or stub, got "${dnsModeText}"`); // the file's is checked
      const dnsMode: DnsMode = dnsModeText;
      const upstreamText = flags.dnsUpstream ?? config.dnsUpstream;
      const dnsUpstream = upstreamText
        ? usage('', () =>
            parseHostPort(
              upstreamText,
              named('--dns-upstream', 'dnsUpstream', flags.dnsUpstream !== undefined),
              53,
            ),
          )
        : DEFAULT_DNS_UPSTREAM;
      if (dnsListen === undefined && (flags.dnsUpstream !== undefined || flags.dnsMode !== undefined))
        throw new UsageError(
          '--dns-upstream and --dns-mode need --dns <addr> (where the DNS server listens)',
        );
      const dns =
        dnsListen !== undefined
          ? {
              listen: usage('', () =>
                parseListenAddress(dnsListen, named('--dns', 'dns', flags.dns !== undefined)),
              ),
              mode: dnsMode,
              upstream: dnsUpstream,
            }
          : undefined;

      const log = createLogger({ level: logLevelFrom(flags.logLevel) });

      // A dynamic key, or several endpoints: the picker (D9), with its memory and status file.
      const picked =
        dynamicKey || endpoints.length > 1
          ? await startPicked({
              dynamicKey,
              endpoints,
              shape,
              residualMs,
              refreshMs: numbers.refresh !== undefined ? numbers.refresh * 1000 : undefined,
              stateDir,
              log,
            })
          : undefined;
      let udpEndpoint = endpoints[0];
      if (picked?.first) {
        const body = picked.first;
        if (body.kind === 'error') process.stdout.write(`ladder client: ${refusalText(body)}\n`);
        else {
          endpoints.push(...body.endpoints);
          udpEndpoint = body.udp ?? body.endpoints.find((e) => !e.websocket);
        }
      }

      warnPluginNotes(endpoints, log);

      const udpOn = fromCli('udp') ? flags.udp === true : config.udp === true;
      const uotOn = fromCli('udpOverTcp') ? flags.udpOverTcp === true : config.udpOverTcp === true;
      if (uotOn && !udpOn)
        throw new UsageError('--udp-over-tcp carries the datagrams of --udp: add --udp (or "udp": true)');
      let udpAssociate: UdpAssociateHandler | undefined;
      if (udpOn) {
        if (!socks) throw new UsageError('--udp needs the SOCKS5 proxy (UDP ASSOCIATE is a SOCKS5 command)');
        if (!udpEndpoint) {
          picked?.close();
          throw new UsageError(
            '--udp needs a plain Shadowsocks endpoint (host:port) in the key, and the dynamic key gives none now',
          );
        }
        const first = udpEndpoint;
        // A gRPC endpoint has no UDP path of its own: its datagrams ride in its streams (UoT v2).
        const uot = first.udpOverTcp ?? (uotOn || first.grpc ? 2 : undefined);
        // Loaded only with --udp: the UDP relay's codecs (2022 included) and batching sockets are
        // idle RSS a TCP-only client would carry for nothing (issue 15's idle-RSS figure).
        const { createUdpAssociate } = await import('../../client/udp-associate.js');
        udpAssociate = usage('--udp', () =>
          createUdpAssociate({
            server: {
              host: first.host,
              port: first.port,
              method: first.method,
              password: first.password,
              websocket: first.websocket,
              ...(uot ? { udpOverTcp: { dialer: createTunnelDialer(first, { shape }), version: uot } } : {}),
            },
            logger: log,
          }),
        );
      }

      let client;
      try {
        client = await startClient({
          ...(picked
            ? { tunnel: picked.tunnel, keySourceMessage: picked.keySourceMessage }
            : { keys: endpoints }),
          socks,
          http: httpAddr,
          auth,
          firstDataWaitMs,
          idleTimeoutMs,
          shape,
          route,
          ...(rules ? { rules } : {}),
          ...(dns ? { dns } : {}),
          ...(udpAssociate ? { udpAssociate } : {}),
          failover: {
            ...(residualMs !== undefined ? { residualMs } : {}),
            // Positions, not addresses: logs at the default level name no server.
            onEndpointFailure: (index, kind, err) => {
              log.warn({ endpoint: index + 1, kind }, 'server endpoint avoided for its residual period');
              hintDialFailureOnce(dialErrno(err), log); // e.g. an untrusted web-front certificate
            },
          },
          log,
        });
      } catch (err) {
        picked?.close();
        const dnsName = named('--dns', 'dns', flags.dns !== undefined);
        const ports: OwnPort[] = [
          [socksName, socks?.port],
          [httpName, httpAddr?.port],
          [dnsName, dns?.listen.port],
        ];
        throw listenRefusal(err, ports) ?? err;
      }

      // Handlers first, banner second: whoever reads the banner may signal us at once.
      const stopped = untilSignal({
        close: () => {
          udpAssociate?.closeAll();
          picked?.close();
          return client.close();
        },
        message: 'client stopping',
        log,
      });

      const methods = [...new Set(endpoints.map((e) => e.method))].join(', ');
      const tags = endpoints.map((e) => e.tag).filter((t): t is string => !!t);
      const shaping = shapingSummary(endpoints, shape, named('--no-shape', 'shape', fromCli('shape')));
      const dynTag = dynamicKey?.tag ? ` "${dynamicKey.tag}"` : '';
      const what =
        dynamicKey && endpoints.length === 0
          ? `dynamic key${dynTag}: refused by the server for now, fetched again until it accepts the key`
          : endpoints.length === 1
            ? `${dynamicKey ? `dynamic key${dynTag}, ` : ''}${methods} tunnel${tags[0] ? ` "${tags[0]}"` : ''}`
            : `${dynamicKey ? `dynamic key${dynTag}, ` : ''}${endpoints.length} server endpoints (failover in order${tags.length ? `: ${tags.map((t) => `"${t}"`).join(', ')}` : ''}; what gets through is remembered), ${methods}`;
      const lines = [`ladder client: ${what}${shaping ? `, ${shaping}` : ''}`];
      if (client.socksAddress) {
        const a = hostPort(client.socksAddress);
        lines.push(`  SOCKS5 proxy on ${a}    ${tryCommand(`socks5h://${a}`, !!auth)}`);
        if (udpAssociate)
          lines.push(
            `  SOCKS5 UDP   on ${a} (UDP ASSOCIATE), relayed by the server's ${endpoints[0]!.websocket ? 'web front (UDP over WebSocket)' : 'UDP relay'}${endpoints.length > 1 ? ' of the first endpoint' : ''}`,
          );
      }
      if (client.httpAddress) {
        const a = hostPort(client.httpAddress);
        lines.push(`  HTTP proxy   on ${a}    ${tryCommand(`http://${a}`, !!auth)}`);
        lines.push(`  PAC file     http://${a}/proxy.pac    (browser: automatic proxy configuration URL)`);
      }
      if (authFrom)
        lines.push(
          `  auth         applications must give the user name and password (${authFrom.source}; not shown here)`,
        );
      lines.push(`  routing      ${routingSummary(route, rules, rulesName)}`);
      if (client.dnsAddress) {
        const d = client.dnsAddress;
        const h = d.host.includes(':') ? `[${d.host}]` : d.host;
        const via =
          client.dnsMode === 'tunnel'
            ? `through the tunnel to ${dnsUpstream.host}:${dnsUpstream.port} (DNS over TCP)`
            : `plain DNS to ${dnsUpstream.host}:${dnsUpstream.port}, forged answers dropped`;
        const port = d.udpPort === d.tcpPort ? `${d.udpPort}` : `${d.udpPort} (UDP), ${d.tcpPort} (TCP)`;
        lines.push(
          `  DNS          on ${h}:${port}, ${via}    try: dig @${d.host} -p ${d.udpPort} example.com`,
        );
        if (route !== 'proxy' || rules)
          lines.push('               direct routes resolve names through it too, never the system resolver');
      }
      lines.push('  If a site gets no reply, the log says why (refused destination, key not accepted).');
      lines.push('  Ctrl-C to stop.');
      process.stdout.write(`${lines.join('\n')}\n`);
      log.info(
        {
          socks: client.socksAddress?.port,
          http: client.httpAddress?.port,
          dns: client.dnsAddress?.udpPort,
          route,
          endpoints: endpoints.length,
        },
        'client listening',
      );
      await stopped;
    });
}
