/**
 * What a Connection is told about its stream, and how a decoding failure becomes a connection
 * status (the one mapping, shared by every stage of connection.ts).
 */
import type { Duplex } from 'node:stream';
import type { PreTrial } from './accept-trial.js';
import type { ConnectOnce } from './destination.js';
import { isProtocolError } from '../protocol/errors.js';
import { CONNECTION_STATUSES, type ConnectionStatus } from './events.js';
import type { AnyKeyEntry } from './keys.js';

/** What the server tracks of a connection it serves (connection.ts Connection, lean-path.ts LeanConnection). */
export interface ServedConnection {
  /** The key, once one authenticated the connection. */
  readonly key: AnyKeyEntry | undefined;
  /** Close now (operator action: revoked key, shutdown); the close is reported as usual. */
  abort(status: ConnectionStatus): void;
  /** Move byte counts not yet reported into the server's pending usage. */
  collectUsage(): void;
  /** Wire bytes both ways so far (device-limits.ts: whether the connection is still in use). */
  activity(): number;
}

/** What the server knows about a byte stream it is handed, besides the bytes. */
export interface StreamInfo {
  /**
   * The client's address, used to try the keys it used recently first and to count it against
   * its key's device limit (device-limits.ts; never logged). A TCP listener passes the socket's
   * peer; a web front can pass the address a trusted proxy forwarded.
   */
  remoteAddress?: string | undefined;
  /** A socket from the TCP listener: its relay may move to the native relay (native-relay.ts). */
  tcp?: boolean;
  /** How to connect to the destination (web/native-dest.ts for WebSocket streams); default net.Socket. */
  connect?: ConnectOnce<Duplex> | undefined;
  /**
   * The caller calls Connection.delivered() once the stream's first delivery is done (a natively
   * accepted stream: its first bytes, its end, or nothing): the pre-relay idle timer is armed then,
   * and only if the connection still needs it (not when it is already dialling or relaying).
   */
  idleAfterFirst?: boolean;
  /** The SIP004 trial the addon made at the accept (accept-trial.ts): asked instead of each key. */
  trial?: PreTrial | undefined;
  /**
   * Called once when a key authenticates the stream, or verifies and the request is then refused
   * (a replay, a 2022 header's timestamp): a Mux.Cool carrier counts its sessions still
   * authenticating, and a refused one keeps its uniform reaction (held) without a slot.
   */
  onAuthenticated?: (() => void) | undefined;
  /**
   * The lean path refused the stream's key for its device limit (lean-path.ts): the connection
   * gets the reaction of a key that is not usable, whatever its first bytes.
   */
  deviceRefused?: boolean;
}

/**
 * What was being read when a decoder threw: the 2022 fixed header of a matched key, the 2022
 * variable header (target address, padding), or a sealed chunk of either edition's stream.
 */
export type FailureStage = 'fixed-header' | 'request-header' | 'stream';

const FAILURE_CODES = new Set<string>(CONNECTION_STATUSES);

/** The one mapping from a decoding error to the status it is counted as. */
export function failureStatus(err: unknown, stage: FailureStage): ConnectionStatus {
  const code = isProtocolError(err) ? err.code : '';
  switch (stage) {
    case 'fixed-header':
      return code === 'ERR_REPLAY'
        ? 'ERR_REPLAY_CLIENT'
        : code === 'ERR_TIMESTAMP'
          ? 'ERR_TIMESTAMP'
          : 'ERR_HEADER';
    case 'request-header':
      return code === 'ERR_HEADER' || code === 'ERR_ADDRESS' ? 'ERR_ADDRESS' : 'ERR_CIPHER';
    case 'stream':
      return FAILURE_CODES.has(code) ? (code as ConnectionStatus) : 'ERR_CIPHER';
  }
}

/**
 * What a Connection uses of its client's byte stream before relaying: any Duplex, or a
 * connection the addon accepted (native-stream.ts NativeStream, which never writes).
 */
export interface ClientStream {
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', fn: () => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  off(event: 'data', fn: (chunk: Buffer) => void): unknown;
  off(event: 'end', fn: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
  end(cb?: () => void): unknown;
  destroy(): unknown;
}
