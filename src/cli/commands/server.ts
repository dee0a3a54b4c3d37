import type { Command, CommanderError } from 'commander';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { QRCode } from '../qr.js';
import { loadServerConfigFile, serverFlagsSchema, type ServerConfig } from '../../config/server.js';
import { isProtocolError } from '../../protocol/errors.js';
import { checkKey, checkMethod, generateSecret } from '../../protocol/shadowsocks/key-material.js';
import { formatSsUrl } from '../../protocol/sip002/index.js';
import { startDataPlane, type DataPlane } from '../../server/index.js';
import type { RuntimeKey } from '../../shared/control.js';
import { createLogger } from '../../shared/logger.js';
import {
  DEFAULT_CONNECT_SECONDS,
  DEFAULT_IDLE_SECONDS,
  DEFAULT_METHOD,
  DEFAULT_REPLAY_CAPACITY,
  DEFAULT_SERVER_PORT,
} from '../../config/defaults.js';
import { bindErrorCode } from '../../shared/listen.js';
import { formatHostPort } from '../../shared/parse.js';
import { parseFlags } from '../../config/flags.js';
import { UsageError } from '../errors.js';
import { untilSignal } from '../shutdown.js';
import {
  addManagedOptions,
  checkPublicHost,
  runManaged,
  wantsManaged,
  type ManagedFlags,
} from '../managed.js';

interface ServerFlags {
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
  logLevel?: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

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
  /** Keys whose URL is printed (the single --password / generated key, or all with --show-urls). */
  printKeys: readonly RuntimeKey[];
  generated: boolean;
  source: string;
}

async function plan(flags: ServerFlags): Promise<Plan> {
  const password = flags.password ?? process.env.LADDER_PASSWORD;
  let config: ServerConfig;
  let generated = false;
  let source: string;
  if (flags.config !== undefined) {
    if (password !== undefined || flags.method !== undefined) {
      throw new UsageError(
        '--password/--method cannot be combined with --config; put the keys in the config file',
      );
    }
    config = await loadServerConfigFile(flags.config); // a ConfigError is a usage error (exit 2)
    source = flags.config;
  } else {
    const method = flags.method ?? DEFAULT_METHOD;
    try {
      checkMethod(method);
    } catch (err) {
      throw new UsageError(`--method: ${isProtocolError(err) ? err.message : String(err)}`);
    }
    if (password === '') throw new UsageError('--password must not be empty');
    if (password !== undefined) {
      try {
        checkKey(method, password);
      } catch (err) {
        throw new UsageError(`--password: ${isProtocolError(err) ? err.message : String(err)}`);
      }
    }
    generated = password === undefined;
    config = {
      port: DEFAULT_SERVER_PORT,
      host: undefined,
      keys: [{ id: 'default', method, secret: password ?? generateSecret(method) }],
      idleMs: DEFAULT_IDLE_SECONDS * 1000,
      connectMs: DEFAULT_CONNECT_SECONDS * 1000,
      allowPrivateDestinations: false,
      replayCapacity: DEFAULT_REPLAY_CAPACITY,
      replayStateFile: undefined,
      udp: false,
    };
    source = generated ? 'generated key' : '--password';
  }
  const parsed = parseFlags(serverFlagsSchema, flags);
  const overrides: Partial<{ -readonly [K in keyof ServerConfig]: ServerConfig[K] }> = {};
  if (parsed.port !== undefined) overrides.port = parsed.port;
  if (flags.host !== undefined) {
    if (flags.host === '') throw new UsageError('--host must not be empty');
    overrides.host = flags.host;
  }
  if (flags.allowPrivate) overrides.allowPrivateDestinations = true;
  if (flags.udp) overrides.udp = true;
  if (flags.replayState !== undefined) {
    if (flags.replayState === '') throw new UsageError('--replay-state must be a file path');
    overrides.replayStateFile = flags.replayState;
  }
  if (parsed.idleTimeout !== undefined) overrides.idleMs = Math.round(parsed.idleTimeout * 1000);
  config = { ...config, ...overrides };
  const printKeys = flags.config === undefined || flags.showUrls ? config.keys : [];
  return { config, printKeys, generated, source };
}

async function banner(p: Plan, plane: DataPlane, publicHost: string | undefined): Promise<string> {
  const a: AddressInfo = plane.address;
  const { config } = p;
  const listen =
    config.host === undefined ? `all interfaces, port ${a.port}` : formatHostPort(a.address, a.port);
  const out: string[] = [];
  out.push(`Ladder server listening on ${listen} (${config.udp ? 'TCP and UDP' : 'TCP'})`);
  const methods = [...new Set(config.keys.map((k) => k.method))].join(', ');
  out.push(`  ${config.keys.length} key${config.keys.length === 1 ? '' : 's'} from ${p.source}; ${methods}`);
  if (config.allowPrivateDestinations) out.push('  private/loopback destinations ALLOWED (--allow-private)');
  if (p.printKeys.length === 0) {
    out.push('  access URLs are not printed for config files (add --show-urls to print them)');
  } else {
    const { host, guessed } = urlHost(config.host, publicHost);
    for (const k of p.printKeys) {
      const url = formatSsUrl({
        method: k.method,
        password: k.secret,
        host,
        port: a.port,
        tag: k.id === 'default' ? 'ladder' : k.id,
      });
      out.push('');
      out.push(
        `Access key${p.printKeys.length > 1 ? ` "${k.id}"` : ''} (a secret: give it only to the people who should connect):`,
      );
      out.push(`  ${url}`);
      const qr = await QRCode.toString(url, { type: 'terminal', small: true });
      out.push(qr.trimEnd());
      if (k === p.printKeys[0]) {
        out.push('');
        out.push('Try it (on the client machine):');
        out.push(`  ladder client --key '${url}'`);
        out.push('  curl --proxy socks5h://127.0.0.1:1080 https://example.com/');
      }
    }
    if (guessed) {
      out.push('');
      out.push(
        `The URL uses ${host}, guessed from this machine's interfaces. If clients reach this server by another`,
      );
      out.push('address or name (NAT, cloud VM, DNS name), restart with --public-host NAME.');
    }
    if (p.generated) {
      out.push('');
      out.push(`This key was generated for this run. To keep it across restarts, pass it back:`);
      out.push(
        `  ladder server --port ${a.port} --method ${config.keys[0]!.method} --password '${config.keys[0]!.secret}'`,
      );
    }
  }
  out.push('');
  out.push('Ctrl-C to stop.');
  return `${out.join('\n')}\n`;
}

/** `ladder server`: the Shadowsocks AEAD server (data plane). */
export function registerServer(program: Command): void {
  addManagedOptions(program.command('server'))
    .description(
      'run the Shadowsocks AEAD server; alone (or with --data-dir/--store) the managed server: key store, Outline-compatible API, metrics',
    )
    .option(
      '--config <file>',
      'JSON config with one or more keys (format below); --port/--host/--idle-timeout/--allow-private override it',
    )
    .option('--port <port>', `TCP port to listen on (default ${DEFAULT_SERVER_PORT}; 0 picks a free port)`)
    .option('--host <addr>', 'address to listen on (default: all interfaces)')
    .option('--method <method>', `cipher for --password or the generated key (default ${DEFAULT_METHOD})`)
    .option(
      '--password <pw>',
      'use this password instead of generating one; or set LADDER_PASSWORD to keep it out of ps',
    )
    .option('--allow-private', 'allow relaying to loopback/private/link-local destinations (off by default)')
    .option(
      '--udp',
      'also relay UDP on the same port number (like ss-server -u; managed mode does by default)',
    )
    .option('--no-udp', 'managed mode: do not relay UDP')
    .option(
      '--idle-timeout <s>',
      'close connections idle this many seconds; also how long failed probes are held (default 300)',
    )
    .option(
      '--public-host <name>',
      'host name or IP clients use to reach this server (put in the printed URL)',
    )
    .option(
      '--replay-state <file>',
      'keep the replay filter in this file so replays are refused across restarts',
    )
    .option('--show-urls', "with --config: print every key's ss:// URL and QR code")
    .option('--log-level <level>', `${LOG_LEVELS.join('|')} (logs go to stderr; default info)`)
    // Bad flags are usage errors like bad values: one line, exit 2 (commander alone prints two
    // lines and exits 1). Help and version output pass through untouched.
    .configureOutput({ outputError: () => {} })
    .showHelpAfterError(false)
    .exitOverride((err: CommanderError) => {
      if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.help')
        throw err;
      throw new UsageError(`server: ${err.message.replace(/^error: /, '')}`);
    })
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  ladder server                                  # managed: store in ./.ladder, API, metrics; prints URL + QR',
        '  ladder server --port 0 --host 127.0.0.1        # data-plane flags only: one generated key for this run',
        "  ladder server --port 443 --password 'long random text'",
        '  ladder server --config server.json',
        '',
        'Config file (JSON; unknown fields are refused):',
        '  { "port": 8388, "host": "0.0.0.0",',
        '    "keys": [{ "id": "alice", "method": "chacha20-ietf-poly1305", "password": "..." }],',
        '    "timeouts": { "idleSeconds": 300, "connectSeconds": 10 },',
        '    "allowPrivateDestinations": false, "replayCapacity": 20000, "replayStateFile": "replay.bin" }',
        '',
      ].join('\n'),
    )
    .action(async (flags: ServerFlags & ManagedFlags) => {
      const level = flags.logLevel ?? (process.env.LADDER_LOG_LEVEL || 'info');
      if (!LOG_LEVELS.includes(level)) {
        const from = flags.logLevel !== undefined ? '--log-level' : 'LADDER_LOG_LEVEL';
        throw new UsageError(`${from} must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`);
      }
      // Managed mode (store + API + metrics): `ladder server` alone, or with --data-dir/--store.
      if (wantsManaged(flags as Record<string, unknown>)) return runManaged({ ...flags, logLevel: level });
      checkPublicHost(flags.publicHost);
      const p = await plan(flags);
      const log = createLogger({ level });
      let plane: DataPlane;
      try {
        plane = await startDataPlane({
          keys: p.config.keys,
          port: p.config.port,
          host: p.config.host,
          logger: log,
          timeouts: { idleMs: p.config.idleMs, connectMs: p.config.connectMs },
          allowPrivateDestinations: p.config.allowPrivateDestinations,
          replayCapacity: p.config.replayCapacity,
          ...(p.config.replayStateFile !== undefined ? { replayStateFile: p.config.replayStateFile } : {}),
          udp: p.config.udp,
        });
      } catch (err) {
        const code = bindErrorCode(err);
        if (code) {
          const where =
            p.config.host === undefined
              ? `port ${p.config.port}`
              : formatHostPort(p.config.host, p.config.port);
          throw new UsageError(`cannot listen on ${where}: ${code}`);
        }
        throw err;
      }
      process.stdout.write(await banner(p, plane, flags.publicHost));

      await untilSignal({ close: () => plane.close(), message: 'server stopping', log });
    });
}
