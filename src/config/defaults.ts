/**
 * Defaults that more than one place relies on: the CLI's flags and help, the config file
 * schemas, the API and the client. One place so the help text, the schema and the code agree.
 */
import { AEAD_METHODS, type AeadMethodName } from '../protocol/shadowsocks/methods.js';
import { AEAD_2022_METHODS } from '../protocol/shadowsocks/methods2022.js';
import { MAX_SECONDS } from '../shared/parse.js';

/** The cipher for generated and new keys (Outline's default too). */
export const DEFAULT_METHOD: AeadMethodName = 'chacha20-ietf-poly1305';

/**
 * Every method ladder speaks, from the protocol's method tables (the default first, then the
 * other SIP004 methods, then the 2022 edition): the one list help texts and errors show.
 */
export const ALL_METHODS: readonly string[] = Object.freeze([
  DEFAULT_METHOD,
  ...Object.keys(AEAD_METHODS).filter((m) => m !== DEFAULT_METHOD),
  ...Object.keys(AEAD_2022_METHODS),
]);

/** The longest timeout anything accepts (--idle-timeout, timeouts.idleSeconds): one week. */
export const MAX_TIMEOUT_SECONDS = MAX_SECONDS;

// ---- server ---------------------------------------------------------------------------------
export const DEFAULT_SERVER_PORT = 8388;
export const DEFAULT_IDLE_SECONDS = 300;
export const DEFAULT_CONNECT_SECONDS = 10;
export const MAX_CONNECT_SECONDS = 600;
export const DEFAULT_REPLAY_CAPACITY = 20_000;
export const MAX_REPLAY_CAPACITY = 10_000_000;
/** Data-plane worker threads: the default is the number of cores (os.availableParallelism()). */
export const MAX_WORKERS = 256;

// ---- managed server -------------------------------------------------------------------------
export const DEFAULT_DATA_DIR = '.ladder';
export const DEFAULT_METRICS_PORT = 9091;
export const DEFAULT_METRICS_HOST = '127.0.0.1';

// ---- client ---------------------------------------------------------------------------------
export const DEFAULT_SOCKS_PORT = 1080;
export const DEFAULT_SOCKS_LISTEN = `127.0.0.1:${DEFAULT_SOCKS_PORT}`;
/** The HTTP proxy is off unless asked for; this is the port the help suggests. */
export const SUGGESTED_HTTP_PORT = 8118;
/** Where a listen address given as a bare port listens. */
export const DEFAULT_LISTEN_HOST = '127.0.0.1';
export const DEFAULT_DNS_UPSTREAM: { readonly host: string; readonly port: number } = Object.freeze({
  host: '1.1.1.1',
  port: 53,
});
export const DEFAULT_FIRST_DATA_WAIT_MS = 50;
export const MAX_FIRST_DATA_WAIT_MS = 10_000;
export const DEFAULT_RESIDUAL_SECONDS = 180;
/** --idle-timeout and --residual: at most a day on the client. */
export const MAX_CLIENT_SECONDS = 86_400;

/** The largest cap on pending connections (--max-pending-per-ip, --max-pending; 0 is no cap). */
export const MAX_PENDING_CAP = 10_000_000;
