/** The options of a ShadowsocksServer (server.ts), kept apart so the class's file stays readable. */
import type { Clock } from '../shared/clock.js';
import type { RuntimeKey, UsageSink } from '../shared/control.js';
import type { Logger } from '../shared/logger.js';
import type { Lookup } from './destination.js';
import type { SharedDevices } from './workers/shared-devices.js';
import type { NameCacheOptions } from './names.js';
import type { ServerHooks } from './events.js';
import type { PendingCaps, PendingLimits } from './pending-limits.js';
import type { ReplayFilters, ReplayStore } from './replay-state.js';
import type { UdpRelayOptions } from './udp-relay.js';

export interface ServerTimeouts {
  /**
   * Close a connection after this long without a byte in either direction. Also the only way a
   * failed (probe) connection is closed by us, so keep it long (D6: not under ~5 minutes) in
   * production; tests shorten it.
   */
  idleMs?: number;
  /** Budget for resolving and connecting to a destination. */
  connectMs?: number;
}

export interface ServerOptions {
  keys?: readonly RuntimeKey[];
  usage?: UsageSink;
  logger?: Logger;
  clock?: Clock;
  timeouts?: ServerTimeouts;
  /** Allow destinations on loopback/private/link-local networks (default false). */
  allowPrivateDestinations?: boolean;
  /** Salts per replay-filter generation; memory holds at most twice this many (default 20,000). */
  replayCapacity?: number;
  hooks?: ServerHooks;
  /** How often accumulated byte counts go to the UsageSink (default 5 s; also flushed on close). */
  usageFlushMs?: number;
  /**
   * Keep both salt filters in this file across restarts (loaded by listen(), saved every
   * `replaySaveMs` and by close()), so a replay of a connection from before a restart is still
   * refused. Without it, a restart forgets every salt (SIP004 has no timestamps).
   */
  replayStateFile?: string;
  /** Like `replayStateFile` but any store, e.g. memoryReplayStore() in tests (wins over the file). */
  replayStore?: ReplayStore;
  /** How often the replay state is saved when it changed (default 60 s). */
  replaySaveMs?: number;
  /** Replay filters shared with other threads (a data-plane worker's; see workers/). */
  replayFilters?: ReplayFilters;
  /** Name resolution override (tests). */
  lookup?: Lookup;
  /**
   * Names' addresses kept `ttlMs` (default LADDER_DNS_CACHE_MS, else 10 s; 0: not kept), and a
   * name destination of a natively accepted connection dialled in the addon as an IP is
   * (names.ts). Default on unless LADDER_NAME_DIAL=0; false: names resolved per connection.
   */
  nameCache?: boolean | Omit<NameCacheOptions, 'clock' | 'lookup'>;
  /**
   * The process's name-lookup counters (name-cache-env.ts lookupGateBuffer), shared by its
   * data-plane workers, and this worker's row in them; default: this server's own.
   */
  lookupGate?: { memory: SharedArrayBuffer; row: number };
  /** The process's device-limit table (workers/shared-devices.ts); default this thread's. */
  devices?: SharedDevices | undefined;
  /**
   * Relay UDP too (both editions), on a UDP socket with the TCP port's number. Off by default,
   * like ss-server without -u. `true` or options (NAT idle expiry, table size).
   */
  udp?: boolean | UdpRelayOptions;
  /**
   * Serve sing's UDP-over-TCP (mihomo's and sing-box's `udp-over-tcp`): a stream to
   * `sp.v2.udp-over-tcp.arpa` or `sp.udp-over-tcp.arpa` carries datagrams (uot.ts). It relays UDP,
   * so by default it is on exactly when `udp` is (a data-plane worker without the UDP socket, or
   * the web front's listener-less server, is told explicitly).
   */
  udpOverTcp?: boolean;
  /**
   * How often refusals reach the log at info: the same reason and key at most once per
   * `repeatMs` (default 10 s), connections that matched no key as one count at most once per
   * `unauthenticatedMs` (default 60 s). Tests shorten them. False: no refusal lines (a data-plane
   * worker: the main thread reports the refusals of every worker together, from their events).
   */
  refusalLog?: { repeatMs?: number; unauthenticatedMs?: number } | false;
  /**
   * Relay established raw TCP (SIP004) connections in the native addon (native-relay.ts); default
   * on unless LADDER_NATIVE_RELAY=0. Only on the system clock, and where the addon has the relay.
   */
  nativeRelay?: boolean;
  /**
   * Accept and read raw TCP connections in the native addon until the hand-off to the native
   * relay (transport/native-stream.ts): no net.Socket per connection. Only with the native relay
   * in use; default on unless LADDER_NATIVE_ACCEPT=0.
   */
  nativeAccept?: boolean;
  /**
   * With the native accept: the addon waits for a connection's first bytes (up to the idle
   * timeout) before JS hears of it, and the dial and relay start of an IP destination run in the
   * addon, so a short connection enters JS twice. Default on unless LADDER_NATIVE_HANDSHAKE=0.
   */
  nativeHandshake?: boolean;
  /**
   * Test a SIP004 key and build its decoder in one addon call (one subkey derivation per
   * connection instead of two). Default on unless LADDER_NATIVE_TRIAL=0; without the addon (or
   * with LADDER_NATIVE=0) the node:crypto test runs either way.
   */
  nativeTrial?: boolean;
  /**
   * With the native accept and trial: the addon tries a SIP004-only key set on each connection's
   * first read before JS hears of it (accept-trial.ts). Default on unless LADDER_ACCEPT_TRIAL=0.
   */
  acceptTrial?: boolean;
  /**
   * With the native handshake: when the destination's connect(2) returns connected (loopback),
   * relay at once rather than on its writable event (one wake-up and 4 system calls less per
   * connection). Default on unless LADDER_CONNECT_AT_ONCE=0.
   */
  connectAtOnce?: boolean;
  /**
   * With the native handshake: the relay derives the response encoder from the key and salt in
   * the addon (no JS codec per connection). Default on unless LADDER_NATIVE_ENCODER=0.
   */
  nativeEncoder?: boolean;
  /**
   * With the native encoder and shared replay filters (data-plane workers): the addon draws the
   * response salt and adds it to the server-salt filter. Default on unless LADDER_NATIVE_SALT=0.
   */
  nativeSalt?: boolean;
  /**
   * Per-connection trims of the native path (issue 15, session 12): a native relay's end closes the
   * client stream without a 'close' tick (LADDER_LEAN_END=0 turns it off), and a natively accepted
   * connection arms its pre-relay idle timer only if still needed after its first bytes
   * (LADDER_LAZY_IDLE=0). Default on.
   */
  leanEnd?: boolean;
  lazyIdle?: boolean;
  /**
   * With the trial at the accept and the native dial: a connection whose key, IP target and salts
   * the first read settles starts its relay with no NativeStream or Connection (lean-path.ts).
   * Default on unless LADDER_LEAN_PATH=0.
   */
  leanPath?: boolean;
  /** The addon makes the lean path's checks with shared filters (default: LADDER_NATIVE_CHECKS, on). */
  nativeChecks?: boolean;
  /**
   * Caps on TCP connections not yet authenticated (pending-limits.ts); default: the default caps;
   * a PendingLimits shares one; false: none. Streams without `tcp` (the web front's) do not count.
   */
  pending?: PendingLimits | PendingCaps | false;
}
