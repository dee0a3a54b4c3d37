import { DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_PER_ADDRESS } from '../../server/pending-limits.js';
import type { Command } from 'commander';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { QRCode } from '../qr.js';
import { printable } from '../terminal.js';
import type { ServerConfig } from '../../config/server.js';
import { isProtocolError } from '../../protocol/errors.js';
import { checkKey, checkMethod } from '../../protocol/shadowsocks/key-material.js';
import { formatSsUrl } from '../../protocol/sip002/index.js';
import type { DataPlane } from '../../server/index.js';
import { nameCacheMsFromEnv } from '../../server/name-cache-env.js';
// The pool only, not the server barrel: the main thread of an unmanaged server relays nothing
// (its workers do), so the Shadowsocks server's own modules load only in them (idle RSS).
import { startWorkerPlane, workersAtBootFromEnv, type WorkerPlane } from '../../server/workers/pool.js';
import type { RuntimeKey } from '../../shared/control.js';
import { createLogger } from '../../shared/logger.js';
import {
  DEFAULT_CONNECT_SECONDS,
  DEFAULT_IDLE_SECONDS,
  DEFAULT_METHOD,
  DEFAULT_REPLAY_CAPACITY,
  DEFAULT_SERVER_PORT,
} from '../../config/defaults.js';
import { bindErrorCode, explainBindError } from '../../shared/listen.js';
import { formatHostPort } from '../../shared/parse.js';
import { parseFlags, serverFlagsSchema } from '../../config/flags.js';
import { LOG_LEVELS } from '../../shared/logger.js';
import { logLevelFrom } from '../log-level.js';
import { oneLineCommand, UsageError } from '../errors.js';
import { stopForFatal, untilSignal } from '../shutdown.js';
import { addManagedOptions, checkPublicHost, type ManagedFlags } from '../managed-options.js';
import { storeTarget } from './store-command.js';
import { chooseMode } from '../server-mode.js';
import { privatePolicyLine, tryItHeading } from '../banner-text.js';
import { checkOwnPortsDistinct } from '../own-ports.js';
import { ladderCommand } from '../../shared/invocation.js';
import { StartupLog } from '../startup-log.js';
import { registerAccessConfig } from './server-access-config.js';
import { registerRotateCert } from './server-rotate-cert.js';
import { loopbackFrontNote } from '../web-loose.js';
import {
  addWebOptions,
  planWeb,
  derivedSecretPath,
  startWeb,
  webEndpointOf,
  webKeyUrl,
  grpcKeyUrl,
  httpUpgradeKeyUrlFor,
  GRPC_CLIENTS,
  HTTP_UPGRADE_CLIENTS,
  webStatusLine,
  type RunningWeb,
  type WebFlags,
} from '../web.js';
import { webSocketClients } from '../../protocol/sip002/plugin-opts.js';
import {
  addShadowTlsOptions,
  derivedShadowTlsPassword,
  planShadowTls,
  shadowTlsKeyLines,
  shadowTlsStatusLine,
  startShadowTls,
  type RunningShadowTls,
  type ShadowTlsFlags,
} from '../shadowtls.js';

interface ServerFlags extends WebFlags, ShadowTlsFlags {
  config?: string;
  port?: string;
  host?: string;
  method?: string;
  password?: string;
  allowPrivate?: boolean;
  udp?: boolean;
  idleTimeout?: string;
  publicHost?: string;
  showUrls?: boolean;
  replayState?: string;
  workers?: string;
  maxPendingPerIp?: string;
  maxPending?: string;
  logLevel?: string;
}

/**
 * The host to put in printed access URLs: --public-host, else the listen address when it is a
 * specific one, else a guess from this machine's interfaces (first global IPv4, then IPv6).
 */
export function urlHost(
  listenHost: string | undefined,
  publicHost: string | undefined,
): { host: string; guessed: boolean } {
  if (publicHost) return { host: publicHost, guessed: false };
  if (listenHost && listenHost !== '0.0.0.0' && listenHost !== '::')
    return { host: listenHost, guessed: false };
  const addrs = Object.values(networkInterfaces()).flatMap((l) => l ?? []);
  const v4 = addrs.find((a) => a.family === 'IPv4' && !a.internal);
  if (v4) return { host: v4.address, guessed: true };
  const v6 = addrs.find(
    (a) => a.family === 'IPv6' && !a.internal && !a.address.toLowerCase().startsWith('fe80'),
  );
  if (v6) return { host: v6.address, guessed: true };
  return { host: '127.0.0.1', guessed: true };
}

interface Plan {
  config: ServerConfig;
  /**
   * Keys whose URL is printed: with --show-urls all; with --password its key when stdout is a
   * terminal (a service's output goes to a log, which would keep the password); none otherwise.
   */
  printKeys: readonly RuntimeKey[];
  source: string;
  /** allowPrivateDestinations came from --allow-private (the banner names what allowed it). */
  allowPrivateByFlag: boolean;
}

/** The unmanaged server's keys: a config file, or one key from --password / LADDER_PASSWORD. */
async function plan(flags: ServerFlags): Promise<Plan> {
  let config: ServerConfig;
  let source: string;
  if (flags.config !== undefined) {
    const { loadServerConfigFile } = await import('../../config/server.js'); // zod: only with a file
    config = await loadServerConfigFile(flags.config); // a ConfigError is a usage error (exit 2)
    source = flags.config;
  } else {
    const fromEnv = flags.password === undefined;
    const password = flags.password ?? process.env.LADDER_PASSWORD ?? '';
    const what = fromEnv ? 'LADDER_PASSWORD' : '--password';
    const method = flags.method ?? DEFAULT_METHOD;
    try {
      checkMethod(method);
    } catch (err) {
      throw new UsageError(`--method: ${isProtocolError(err) ? err.message : String(err)}`);
    }
    if (password === '') throw new UsageError(`${what} must not be empty`);
    try {
      checkKey(method, password);
    } catch (err) {
      throw new UsageError(`${what}: ${isProtocolError(err) ? err.message : String(err)}`);
    }
    config = {
      port: DEFAULT_SERVER_PORT,
      host: undefined,
      keys: [{ id: 'default', method, secret: password }],
      idleMs: DEFAULT_IDLE_SECONDS * 1000,
      connectMs: DEFAULT_CONNECT_SECONDS * 1000,
      allowPrivateDestinations: false,
      replayCapacity: DEFAULT_REPLAY_CAPACITY,
      replayStateFile: undefined,
      udp: false,
      workers: undefined,
    };
    source = what;
  }
  const parsed = parseFlags(serverFlagsSchema, flags);
  const overrides: Partial<{ -readonly [K in keyof ServerConfig]: ServerConfig[K] }> = {};
  if (parsed.port !== undefined) overrides.port = parsed.port;
  if (flags.host !== undefined) {
    if (flags.host === '') throw new UsageError('--host must not be empty');
    overrides.host = flags.host;
  }
  if (flags.allowPrivate) overrides.allowPrivateDestinations = true;
  if (flags.udp !== undefined) overrides.udp = flags.udp; // --no-udp turns off a config file's "udp": true
  if (flags.replayState !== undefined) {
    if (flags.replayState === '') throw new UsageError('--replay-state must be a file path');
    overrides.replayStateFile = flags.replayState;
  }
  if (parsed.idleTimeout !== undefined) overrides.idleMs = Math.round(parsed.idleTimeout * 1000);
  if (parsed.workers !== undefined) overrides.workers = parsed.workers;
  if (parsed.maxPendingPerIp !== undefined || parsed.maxPending !== undefined)
    overrides.pending = {
      perAddress: parsed.maxPendingPerIp ?? config.pending?.perAddress,
      total: parsed.maxPending ?? config.pending?.total,
    };
  config = { ...config, ...overrides };
  const printKeys =
    flags.showUrls || (flags.config === undefined && process.stdout.isTTY === true) ? config.keys : [];
  return { config, printKeys, source, allowPrivateByFlag: flags.allowPrivate === true };
}

async function banner(
  p: Plan,
  plane: { readonly address: AddressInfo; readonly workers?: number },
  web: RunningWeb | undefined,
  webGenerated: boolean,
  publicHost: string | undefined,
  tty: boolean,
  stls?: RunningShadowTls,
): Promise<string> {
  const a: AddressInfo = plane.address;
  const { config } = p;
  const listen =
    config.host === undefined ? `all interfaces, port ${a.port}` : formatHostPort(a.address, a.port);
  const out: string[] = [];
  out.push(`Ladder server listening on ${listen} (${config.udp ? 'TCP and UDP' : 'TCP'})`);
  if (plane.workers !== undefined)
    out.push(`  data plane: ${plane.workers} worker thread${plane.workers === 1 ? '' : 's'}`);
  const methods = [...new Set(config.keys.map((k) => k.method))].join(', ');
  out.push(
    `  unmanaged mode: ${config.keys.length} key${config.keys.length === 1 ? '' : 's'} from ${p.source} (${methods}); no store, no management API`,
  );
  if (web) out.push(`  ${webStatusLine(web)}`);
  if (stls) out.push(`  ${shadowTlsStatusLine(stls)}`);
  out.push(`  ${privatePolicyLine(config.allowPrivateDestinations, p.allowPrivateByFlag)}`);
  const ladder = ladderCommand();
  if (web && webGenerated)
    out.push(
      '  web path derived from the first key (the same at every start while it comes first; --web-path or "path" in the web object sets one)',
    );
  if (p.printKeys.length === 0) {
    out.push(
      p.source === '--password' || p.source === 'LADDER_PASSWORD'
        ? '  access URL not printed: the output is not a terminal, and a log would keep the password (add --show-urls to print it)'
        : '  access URLs are not printed for config files (add --show-urls to print them)',
    );
  } else {
    const { host, guessed } = urlHost(config.host, publicHost);
    for (const k of p.printKeys) {
      const tag = k.id === 'default' ? 'ladder' : k.id;
      // --advertise web: the web front's URL alone; the raw host:port is the origin a CDN hides.
      const url = web?.webOnly
        ? webKeyUrl(k, host, web, tag)
        : formatSsUrl({ method: k.method, password: k.secret, host, port: a.port, tag });
      out.push('');
      out.push(
        `Access key${p.printKeys.length > 1 ? ` "${printable(k.id)}"` : ''} (a secret: give it only to the people who should connect):`,
      );
      out.push(`  ${url}`);
      if (tty) out.push((await QRCode.toString(url, { type: 'terminal', small: true })).trimEnd());
      else out.push('  (QR code not drawn: output is not a terminal)');
      if (web && !web.webOnly) {
        out.push(`  over the web front (${webSocketClients(k.method)}):`);
        out.push(`  ${webKeyUrl(k, host, web, k.id === 'default' ? 'ladder-web' : `${k.id}-web`)}`);
        out.push(`  over HTTPUpgrade (${HTTP_UPGRADE_CLIENTS}):`);
        out.push(
          `  ${httpUpgradeKeyUrlFor(k, webEndpointOf(web, host), k.id === 'default' ? 'ladder-httpupgrade' : `${k.id}-httpupgrade`)}`,
        );
        const grpc = grpcKeyUrl(k, host, web, k.id === 'default' ? 'ladder-grpc' : `${k.id}-grpc`);
        if (grpc) out.push(`  over gRPC (${GRPC_CLIENTS}):`, `  ${grpc}`);
        const note = loopbackFrontNote(web.settings.host, web.publicUrl, host);
        if (note) out.push(note);
      }
      if (stls)
        out.push(
          ...shadowTlsKeyLines(k, host, stls, k.id === 'default' ? 'ladder-shadowtls' : `${k.id}-shadowtls`),
        );
      if (k === p.printKeys[0]) {
        out.push('');
        out.push(tryItHeading(ladder, config.allowPrivateDestinations));
        out.push(`  ${ladder} client --key '${url}'`);
        out.push('  curl --proxy socks5h://127.0.0.1:1080 https://example.com/');
      }
    }
    // --advertise web prints only the front's URL: the guess matters only where that URL uses it
    // (no --web-public-url, no ACME domain).
    if (guessed && (!web?.webOnly || webEndpointOf(web, host).host === host)) {
      out.push('');
      out.push(
        `The URL uses ${host}, guessed from this machine's interfaces. If clients reach this server by another`,
      );
      out.push('address or name (NAT, cloud VM, DNS name), restart with --public-host NAME.');
    }
  }
  out.push('');
  out.push('Ctrl-C to stop.');
  return `${out.join('\n')}\n`;
}

/** LADDER_DNS_CACHE_MS (server/names.ts) as a usage error when it is not whole milliseconds. */
function checkNameCacheEnv(): void {
  try {
    nameCacheMsFromEnv();
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** `ladder server`: the Shadowsocks server, managed or unmanaged; `ladder server access-config`. */
export function registerServer(program: Command): void {
  const server = program.command('server');
  registerAccessConfig(server);
  registerRotateCert(server);
  // Bad flags are usage errors like bad values: one line, exit 2 (commander alone prints two
  // lines and exits 1).
  addShadowTlsOptions(addWebOptions(addManagedOptions(oneLineCommand(server, 'server'))))
    .description(
      'run the Shadowsocks server: managed (key store, Outline-compatible API, metrics) unless --password or --config names the keys',
    )
    .option(
      '--config <file>',
      'unmanaged: serve the keys in this JSON file, no store (format below); --port/--host/--idle-timeout/--allow-private override it',
    )
    .option('--port <port>', `TCP port to listen on (default ${DEFAULT_SERVER_PORT}; 0 picks a free port)`)
    .option('--host <addr>', 'address to listen on (default: all interfaces)')
    .option(
      '--method <method>',
      `cipher of the --password key, or of the key a managed first start creates (default ${DEFAULT_METHOD})`,
    )
    .option(
      '--password <pw>',
      'unmanaged: serve this one key, no store; or set LADDER_PASSWORD to keep it out of ps',
    )
    .option('--allow-private', 'allow relaying to loopback/private/link-local destinations (off by default)')
    .option(
      '--udp',
      'also relay UDP on the same port number (like ss-server -u; managed mode does by default)',
    )
    .option('--no-udp', 'do not relay UDP (managed mode; or a config file\'s "udp": true)')
    .option(
      '--idle-timeout <s>',
      'close connections idle this many seconds; also how long failed probes are held from the accept (default 300)',
    )
    .option(
      '--public-host <name>',
      'host name or IP clients use to reach this server (put in the printed URL)',
    )
    .option(
      '--replay-state <file>',
      'keep the replay filter in this file so replays are refused across restarts',
    )
    .option(
      '--max-pending-per-ip <n>',
      `connections not yet authenticated from one address (an IPv6 /64) before its oldest is closed (default ${DEFAULT_MAX_PENDING_PER_ADDRESS}; 0: no cap; per worker; off behind --trust-proxy on the web port unless given)`,
    )
    .option(
      '--max-pending <n>',
      `connections not yet authenticated in all before the oldest is closed (default ${DEFAULT_MAX_PENDING}; 0: no cap; per worker)`,
    )
    .option(
      '--workers <n>',
      'data-plane worker threads (default: one per core); the API and store stay on the main thread',
    )
    .option(
      '--show-urls',
      "print every key's ss:// URL (and QR code on a terminal) even when the output is not a terminal (a log keeps them)",
    )
    .option('--log-level <level>', `${LOG_LEVELS.join('|')} (logs go to stderr; default info)`)
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  ladder server                                  # managed: store in ./.ladder, API, metrics; prints URL + QR',
        '  ladder server --allow-private --port 8388      # still managed (same store, same keys); a local test',
        "  ladder server --port 443 --password 'long random text'   # unmanaged: this one key, no store",
        '  ladder server --config server.json             # unmanaged: the keys in the file, no store',
        '  ladder server access-config                    # reprint the Outline Manager config and every key',
        '  ladder server --web-port 443 --acme your.name  # also Shadowsocks over WebSocket+TLS, a decoy site for others',
        '  ladder server --shadowtls-port 443 --shadowtls-handshake www.example.com  # also ShadowTLS v3 (no domain needed)',
        '',
        'Modes: the managed server is the default and stays managed with any data-plane flag',
        '(--port, --host, --allow-private, --udp/--no-udp, --idle-timeout, --replay-state, --method);',
        'naming the keys (--password, LADDER_PASSWORD or --config) runs the unmanaged server.',
        'Flags of the other mode are refused.',
        '',
        'Web front (both modes; --web-port turns it on): WebSocket endpoints at a secret path',
        '(--web-path; printed only inside the key URL) for v2ray-plugin, v2rayNG, Clash/mihomo and',
        'sing-box clients; a decoy website for everyone else; TLS from --tls-cert/--tls-key or --acme,',
        'or plain HTTP behind nginx or a CDN (--trust-proxy for their client-address headers).',
        '',
        'Config file (JSON; unknown fields are refused):',
        '  { "port": 8388, "host": "0.0.0.0",',
        '    "keys": [{ "id": "alice", "method": "chacha20-ietf-poly1305", "password": "..." }],',
        '    "timeouts": { "idleSeconds": 300, "connectSeconds": 10 },',
        '    "allowPrivateDestinations": false, "replayCapacity": 20000, "replayStateFile": "replay.bin", "workers": 2,',
        '    "web": { "port": 443, "path": "/SECRET", "decoy": "builtin", "tlsCert": "cert.pem", "tlsKey": "key.pem",',
        '             "trustProxy": ["10.0.0.0/8"] },   (or "acme": "your.name" with "dataDir"; paths relative to the file)',
        '    "shadowtls": { "port": 8443, "handshake": "www.example.com:443", "sni": "www.example.com", "password": "..." } }',
        '',
      ].join('\n'),
    )
    .action(async (flags: ServerFlags & ManagedFlags, cmd: Command) => {
      const level = logLevelFrom(flags.logLevel);
      checkNameCacheEnv(); // here, not in a data-plane worker at the first connection
      // Managed (store + API + metrics) unless a key source is named; see chooseMode. A store
      // named by LADDER_STORE (not --store) does not stop the unmanaged server, which has none.
      const storeFromEnv = cmd.getOptionValueSource('store') === 'env';
      const asked = storeFromEnv ? { ...flags, store: undefined } : flags;
      if (chooseMode(asked as Record<string, unknown>) === 'managed') {
        const { runManaged } = await import('../managed.js'); // not loaded by the unmanaged server
        return runManaged({ ...storeTarget(cmd, flags), logLevel: level });
      }
      checkPublicHost(flags.publicHost);
      const p = await plan(flags);
      const webPlan = await planWeb(
        flags,
        p.config.web && { web: p.config.web, source: p.source },
        undefined,
      );
      const stlsPlan = planShadowTls(
        flags,
        p.config.shadowtls && { shadowtls: p.config.shadowtls, source: p.source },
      );
      // A port from the config file is named by its field there.
      const named = (given: string | undefined, option: string, field: string): string =>
        given === undefined && flags.config !== undefined ? `${flags.config}: ${field}` : option;
      checkOwnPortsDistinct([
        [named(flags.port, '--port', 'port'), p.config.port, p.config.host],
        [named(flags.webPort, '--web-port', 'web.port'), webPlan?.port, webPlan?.host],
        [named(flags.shadowtlsPort, '--shadowtls-port', 'shadowtls.port'), stlsPlan?.port, stlsPlan?.host],
      ]);
      // Start-up info lines wait until the banner is out (warnings and errors do not).
      const startupLog = new StartupLog();
      const log = createLogger({ level, destination: startupLog });
      // The data plane runs in worker threads (--workers, default one per core); with the web
      // front it stays on this thread, where the front's WebSocket endpoints hand it streams.
      const common = {
        keys: p.config.keys,
        port: p.config.port,
        host: p.config.host,
        logger: log,
        timeouts: { idleMs: p.config.idleMs, connectMs: p.config.connectMs },
        allowPrivateDestinations: p.config.allowPrivateDestinations,
        replayCapacity: p.config.replayCapacity,
        ...(p.config.pending ? { pending: p.config.pending } : {}),
        ...(p.config.replayStateFile !== undefined ? { replayStateFile: p.config.replayStateFile } : {}),
        udp: p.config.udp,
      };
      let plane: DataPlane | WorkerPlane;
      try {
        plane =
          webPlan || stlsPlan
            ? await (await import('../../server/data-plane.js')).startDataPlane(common) // the web front's streams relay on this thread
            : await startWorkerPlane({
                ...common,
                logLevel: level,
                ...(p.config.workers !== undefined ? { workers: p.config.workers } : {}),
                startAtBoot: workersAtBootFromEnv(),
                onGiveUp: () => void stopForFatal(), // the pool logged why
              });
      } catch (err) {
        startupLog.release();
        const code = bindErrorCode(err);
        if (code) {
          const where =
            p.config.host === undefined
              ? `port ${p.config.port}`
              : formatHostPort(p.config.host, p.config.port);
          throw new UsageError(`cannot listen on ${where}: ${explainBindError(code, p.config.port)}`);
        }
        throw err;
      }
      let web: RunningWeb | undefined;
      if (webPlan && 'server' in plane) {
        const inProcess = plane;
        try {
          const first = p.config.keys[0];
          const plan =
            webPlan.secretPath === undefined && first
              ? { ...webPlan, secretPath: derivedSecretPath(first) }
              : webPlan;
          web = await startWeb(plan, inProcess.server, p.config.udp === true, log, p.config.pending);
        } catch (err) {
          startupLog.release();
          await plane.close();
          throw err;
        }
      }
      let stls: RunningShadowTls | undefined;
      if (stlsPlan && 'server' in plane) {
        const first = p.config.keys[0]!;
        try {
          stls = await startShadowTls(
            { ...stlsPlan, password: stlsPlan.password ?? derivedShadowTlsPassword(first) },
            plane.server,
            p.config.idleMs,
            log,
            p.config.pending,
          );
        } catch (err) {
          startupLog.release();
          await web?.close();
          await plane.close();
          throw err;
        }
      }
      const running = web;
      const runningStls = stls;
      const stopped = untilSignal({
        close: async () => {
          await runningStls?.close();
          await running?.close();
          await plane.close();
        },
        message: 'server stopping',
        log,
      });
      process.stdout.write(
        await banner(
          p,
          plane,
          web,
          webPlan?.secretPath === undefined,
          flags.publicHost,
          process.stdout.isTTY === true,
          stls,
        ),
      );
      startupLog.release();
      await stopped;
    });
}
