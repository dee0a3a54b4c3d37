import type { Command } from 'commander';
import type { AddressInfo } from 'node:net';
import { endpointFromKey, parseListenAddress, startClient, type ListenAddress } from '../../client/index.js';
import { createLogger } from '../../shared/logger.js';
import { UsageError } from '../errors.js';

interface ClientFlags {
  key?: string;
  socks: string | false;
  http?: string;
  auth?: string;
  firstDataWait: string;
  shape?: boolean;
  idleTimeout: string;
  logLevel?: string;
}

function hostPort(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

function intFlag(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max)
    throw new UsageError(`${name} must be an integer in ${min}..${max}, got "${value}"`);
  return n;
}

/** `ladder client`: the local proxy (SOCKS5 and optional HTTP in, Shadowsocks tunnel out). */
export function registerClient(program: Command): void {
  program
    .command('client')
    .description('run the local proxy: SOCKS5 (and optionally HTTP) in, Shadowsocks AEAD tunnel out')
    .option(
      '--key <ss-url>',
      'access key (ss://...); or set LADDER_KEY to keep it out of ps and shell history',
    )
    .option('--socks <addr>', 'SOCKS5 listen address (host:port, [v6]:port or port)', '127.0.0.1:1080')
    .option('--no-socks', 'do not start the SOCKS5 proxy')
    .option(
      '--http <addr>',
      'also start an HTTP proxy (CONNECT and http:// URLs) on this address, e.g. 127.0.0.1:8118',
    )
    .option(
      '--auth <user:password>',
      'require these credentials from applications (SOCKS5 RFC 1929, HTTP Basic)',
    )
    .option(
      '--first-data-wait <ms>',
      "wait this long for the application's first bytes to send them with the header",
      '50',
    )
    .option(
      '--shape',
      'first-packet shaping: per-connection printable/TLS-like salt prefix, first write off the prober length trigger',
    )
    .option('--idle-timeout <s>', 'close tunnels idle for this many seconds', '300')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace (debug logs destinations)')
    .addHelpText(
      'after',
      '\nExample:\n  ladder client --key ss://... --socks 127.0.0.1:1080 --http 127.0.0.1:8118\n  curl --proxy socks5h://127.0.0.1:1080 https://example.com\n',
    )
    .action(async (flags: ClientFlags) => {
      const key = flags.key ?? process.env.LADDER_KEY;
      if (!key) throw new UsageError('--key is required (an ss:// access key), or set LADDER_KEY');
      let endpoint;
      try {
        endpoint = endpointFromKey(key);
      } catch (err) {
        throw new UsageError(`--key: ${(err as Error).message}`);
      }
      let socks: ListenAddress | undefined;
      let httpAddr: ListenAddress | undefined;
      try {
        if (flags.socks !== false) socks = parseListenAddress(flags.socks, '--socks');
        if (flags.http !== undefined) httpAddr = parseListenAddress(flags.http, '--http');
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      if (!socks && !httpAddr) throw new UsageError('nothing to do: --no-socks given and no --http address');
      let auth;
      if (flags.auth !== undefined) {
        const colon = flags.auth.indexOf(':');
        if (colon <= 0) throw new UsageError('--auth must be user:password');
        auth = { username: flags.auth.slice(0, colon), password: flags.auth.slice(colon + 1) };
      }
      const firstDataWaitMs = intFlag('--first-data-wait', flags.firstDataWait, 0, 10_000);
      const idleTimeoutMs = intFlag('--idle-timeout', flags.idleTimeout, 1, 86_400) * 1000;
      if (flags.shape && endpoint.method.startsWith('2022-')) {
        throw new UsageError('--shape is for SIP004 keys; 2022-blake3-* methods pad their own headers');
      }
      if (flags.shape && endpoint.prefix)
        throw new UsageError('--shape cannot be combined with a key that has a prefix');
      const log = createLogger(flags.logLevel ? { level: flags.logLevel } : {});

      let client;
      try {
        client = await startClient({
          key: endpoint,
          socks,
          http: httpAddr,
          auth,
          firstDataWaitMs,
          idleTimeoutMs,
          shape: flags.shape === true,
          log,
        });
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
        if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
          throw new UsageError(
            `cannot listen: ${e.code} (${e.syscall ?? 'listen'} ${e.address ?? ''}:${e.port ?? ''})`,
          );
        }
        throw err;
      }

      // Handlers first, banner second: whoever reads the banner may signal us at once.
      const stopped = new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals): void => {
          if (stopping) {
            process.exit(130); // second signal: give up on a graceful stop
          }
          stopping = true;
          log.info({ signal }, 'client stopping');
          void client.close().then(() => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });

      const lines = [
        `ladder client: ${endpoint.method} tunnel${endpoint.tag ? ` "${endpoint.tag}"` : ''}${flags.shape ? ', first-packet shaping on' : ''}`,
      ];
      if (client.socksAddress) {
        const a = hostPort(client.socksAddress);
        lines.push(`  SOCKS5 proxy on ${a}    try: curl --proxy socks5h://${a} https://example.com`);
      }
      if (client.httpAddress) {
        const a = hostPort(client.httpAddress);
        lines.push(`  HTTP proxy   on ${a}    try: curl --proxy http://${a} https://example.com`);
      }
      lines.push('  Ctrl-C to stop.');
      process.stdout.write(`${lines.join('\n')}\n`);
      log.info({ socks: client.socksAddress?.port, http: client.httpAddress?.port }, 'client listening');
      await stopped;
    });
}
