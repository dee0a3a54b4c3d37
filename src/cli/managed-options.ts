/**
 * The flags of managed mode (`ladder server` with a store): their type, the options they add to
 * the command and the --public-host check. Apart from managed.ts so the unmanaged server, which
 * registers the same command, does not load the managed server to parse its flags.
 */
import { Option, type Command } from 'commander';
import { isHostName } from '../shared/parse.js';
import { DEFAULT_DATA_DIR, DEFAULT_METRICS_PORT } from '../config/defaults.js';
import { UsageError } from './errors.js';
import type { WebFlags } from './web.js';
import type { ShadowTlsFlags } from './shadowtls.js';

export interface ManagedFlags extends WebFlags, ShadowTlsFlags {
  dataDir?: string;
  store?: string;
  /** The store came from LADDER_STORE, not --store (the banner's commands then leave it out). */
  storeFromEnv?: boolean;
  /** The method of the key a first start creates (default DEFAULT_METHOD). */
  method?: string;
  port?: string;
  host?: string;
  publicHost?: string;
  apiPort?: string;
  apiHost?: string;
  metricsPort?: string;
  metricsHost?: string;
  metrics?: boolean;
  dynamicListen?: string;
  dynamicUrl?: string;
  allowPrivate?: boolean;
  /** Relay UDP too (default in managed mode, like Outline's server); --no-udp turns it off. */
  udp?: boolean;
  idleTimeout?: string;
  replayState?: string;
  /** Data-plane worker threads (default one per core). */
  workers?: string;
  maxPendingPerIp?: string;
  maxPending?: string;
  logLevel?: string;
  /** Fleet node name (PostgreSQL store): register, heartbeat, key changes by LISTEN/NOTIFY; the
   *  node's usage-writer id. */
  node?: string;
  /** Re-read the keys this often, seconds (default 2): the fallback bound for lost notifications. */
  keyPoll?: string;
}

/** Options managed mode adds to `ladder server` (the others it shares: --port, --host, --public-host, ...). */
export function addManagedOptions(cmd: Command): Command {
  return cmd
    .option(
      '--data-dir <dir>',
      `managed mode: where the key store, API certificate and settings live (default ./${DEFAULT_DATA_DIR})`,
    )
    .addOption(
      new Option(
        '--store <spec>',
        'managed mode: sqlite:PATH (default: ladder.db in --data-dir) or postgres://...; a URL with a password belongs in LADDER_STORE (out of ps)',
      ).env('LADDER_STORE'),
    )
    .option(
      '--api-port <port>',
      'managed mode: management API port (default: chosen at first start, then kept)',
    )
    .option('--api-host <addr>', 'managed mode: management API listen address (default all interfaces)')
    .option(
      '--metrics-port <port>',
      `managed mode: Prometheus /metrics port (default ${DEFAULT_METRICS_PORT}, loopback)`,
    )
    .option('--metrics-host <addr>', 'managed mode: Prometheus listen address (default 127.0.0.1)')
    .option('--no-metrics', 'managed mode: do not serve Prometheus metrics')
    .option(
      '--dynamic-listen <addr>',
      'managed mode: also serve dynamic keys (/access/…) over plain HTTP on host:port, for a TLS proxy or CDN in front',
    )
    .option(
      '--dynamic-url <url>',
      'managed mode: https:// base URL clients use for ssconf:// keys (kept in the store; "none" resets)',
    )
    .option(
      '--node <name>',
      'managed mode, PostgreSQL store: run as this fleet node (registered with --public-host; keys list the active nodes; docs/fleet.md)',
    )
    .option(
      '--key-poll <s>',
      'managed mode: re-read the keys this often (default 2; with --node the fallback if a change notification is lost)',
    );
}

/** --public-host: what clients put in their access URLs, so an IP address or a DNS name. */
export function checkPublicHost(publicHost: string | undefined): void {
  if (publicHost !== undefined && !isHostName(publicHost))
    throw new UsageError('--public-host must be an IP address or a DNS name');
}
