/** Which mode `ladder server` runs in, decided from its flags before anything is opened. */
import { UsageError } from './errors.js';
import { ladderCommand } from '../shared/invocation.js';

/** Flags that name the keys to serve: any of them runs the unmanaged server (no store). */
const KEY_SOURCES = [
  ['config', '--config'],
  ['password', '--password'],
] as const;
/** Flags only the managed server understands (the store and what serves it). */
const MANAGED_ONLY = [
  ['dataDir', '--data-dir'],
  ['store', '--store'],
  ['apiPort', '--api-port'],
  ['apiHost', '--api-host'],
  ['metricsPort', '--metrics-port'],
  ['metricsHost', '--metrics-host'],
  ['dynamicListen', '--dynamic-listen'],
  ['dynamicUrl', '--dynamic-url'],
  ['node', '--node'],
  ['keyPoll', '--key-poll'],
] as const;

export type ServerMode = 'managed' | 'unmanaged';

/**
 * Which mode `ladder server` runs in. The managed server (store, API, metrics) is the default and
 * stays managed whatever data-plane flags come with it (--port, --host, --allow-private, --udp,
 * --idle-timeout, --replay-state; --method sets the method of the key it creates). The unmanaged
 * server (the given keys, no store) runs only when a key source is named: --config, --password or
 * LADDER_PASSWORD. A flag that means nothing in the chosen mode is refused with one line.
 */
export function chooseMode(flags: Record<string, unknown>): ServerMode {
  const sources: string[] = KEY_SOURCES.filter(([k]) => flags[k] !== undefined).map(([, f]) => f);
  if (flags.password === undefined && process.env.LADDER_PASSWORD !== undefined)
    sources.push('LADDER_PASSWORD');
  const managedOnly: string[] = MANAGED_ONLY.filter(([k]) => flags[k] !== undefined).map(([, f]) => f);
  if (flags.metrics === false) managedOnly.push('--no-metrics');
  if (sources.length > 1) {
    throw new UsageError(
      `${sources[1]} cannot be combined with ${sources[0]}: both name the keys to serve (put the keys in the config file)`,
    );
  }
  if (sources.length === 1) {
    if (managedOnly.length > 0) {
      throw new UsageError(
        `${managedOnly[0]} is for the managed server (keys in a store), but ${sources[0]} runs the given keys without a store: drop one of them`,
      );
    }
    if (flags.config !== undefined && flags.method !== undefined)
      throw new UsageError(
        '--method cannot be combined with --config; each key in the file names its method',
      );
    return 'unmanaged';
  }
  if (flags.showUrls !== undefined) {
    throw new UsageError(
      `--show-urls is for the unmanaged server (--password, --config); the managed server prints its first key (all keys: ${ladderCommand()} server access-config)`,
    );
  }
  return 'managed';
}
