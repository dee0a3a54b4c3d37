/**
 * What the SOCKS5 front's addon tunnels share (native-socks.ts #plan and lean-tunnel.ts, which is
 * loaded only at the first CONNECT): tunnelConnect's signature and arguments, its onFail
 * reasons, the relay's close reasons that matter to answer-watch, and the switches of the
 * addon's tunnels (each read once when a front is made).
 */
import { envSwitch } from '../shared/env.js';
import type { NativeAnswer } from '../transport/native-dial.js';
import type { NativeRelay } from '../transport/native-sockets.js';

/** The lean tunnel is on unless LADDER_CLIENT_LEAN=0. */
export function leanTunnelFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_CLIENT_LEAN', env);
}

/** native/client_tunnel.cc. */
export interface NativeTunnelConnect {
  tunnelConnect(
    ip: string,
    port: number,
    timeoutMs: number,
    relayPair: NativeRelay['relayPair'],
    args: TunnelArgs,
    onFail: (errno: number, why: number) => void,
    atOnce?: boolean,
  ): object;
  tunnelConnectCancel(tunnel: object): void;
}

/** relayPair's arguments as tunnelConnect takes them; [9] is the relay once it started. */
export type TunnelArgs = [
  number,
  number,
  Uint8Array | null,
  object,
  [undefined, Buffer, undefined],
  number,
  ...unknown[],
] & {
  9?: object;
};

/** onFail's `why`: 0 the connect failed (errno), 1 it timed out, 2 relayPair threw. */
export const FAIL_TIMEOUT = 1;
export const FAIL_RELAY = 2;

/** relayCounts' out for an answer asked: [up, down, answered]. */
const COUNTS = new Float64Array(3);
const REASON_CIPHER = 4;
const REASON_PAYLOAD_SIZE = 5;
/** The relay's close reason for a socket error (`side` says whose). */
export const REASON_ERROR = 2;

/**
 * What a tunnel's relay saw so far (answer-watch asks when it judges): its counts once it
 * relays, "still connecting" before (`relay` undefined).
 */
export function relayAnswer(fns: Pick<NativeRelay, 'relayCounts'>, relay: object | undefined): NativeAnswer {
  if (!relay) return { answered: false, bytesIn: 0, failed: false, connecting: true };
  fns.relayCounts(relay, COUNTS);
  return { answered: COUNTS[2] === 1, bytesIn: COUNTS[0]!, failed: false };
}

/**
 * What a tunnel's relay saw when it closed: answered when it opened a payload; failed when it
 * did not and the server's bytes would not open (cipher) or named an impossible size.
 */
export function closedAnswer(reason: number, up: number, opened: boolean | undefined): NativeAnswer {
  const answered = opened === true;
  const failed = !answered && (reason === REASON_CIPHER || reason === REASON_PAYLOAD_SIZE);
  return { answered, bytesIn: up, failed };
}

/**
 * Raw SIP004 tunnels set up in the addon with no JS call between the SOCKS5 request and the
 * server's first answer (native/client_tunnel.cc) unless LADDER_NATIVE_TUNNEL=0 (then dial() and
 * the addon's connect, as before).
 */
export function nativeTunnelFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_TUNNEL', env);
}

/**
 * A tunnel whose connect(2) returned connected (loopback) relays inside tunnelConnect: the first
 * write leaves with the connect, with no wait for writability, unless LADDER_TUNNEL_AT_ONCE=0.
 */
export function tunnelAtOnceFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_TUNNEL_AT_ONCE', env);
}

/** With atOnce, the application's socket stays in the epoll set from the front to the relay
 * (socks5_front.cc handoff, thread_poll.h PollPark: no epoll_ctl DEL + ADD) unless LADDER_FRONT_HANDOFF=0. */
export function frontHandoffFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_FRONT_HANDOFF', env);
}

/**
 * The SOCKS5 request's address bytes are sent as the tunnel's request header (DialHints.header)
 * instead of encoding the decoded address again, unless LADDER_RAW_HEADER=0.
 */
export function rawHeaderFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_RAW_HEADER', env);
}

/**
 * A tunnel set up in the addon reads the server's salt and opens its answer in the relay (no JS
 * call for the first answer; answer-watch asks the relay when it judges) unless LADDER_NATIVE_SALT=0
 * (then the relay's onFirst opens it in JS, as before).
 */
export function nativeSaltFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_SALT', env);
}

/**
 * The application's side of a tunnel JS carries on the addon's descriptor calls
 * (native-app-socket.ts) unless LADDER_NATIVE_APP=0 (then a net.Socket, as before).
 */
export function nativeAppSocketsFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_NATIVE_APP', env);
}

/**
 * The front accepts one connection per wake-up (native/socks5_front.cc `lean`: the accept4 that
 * would fail with EAGAIN is not made), unless LADDER_FRONT_LEAN=0.
 */
export function leanFrontFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return envSwitch('LADDER_FRONT_LEAN', env);
}
