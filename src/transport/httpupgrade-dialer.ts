/**
 * The client side of HTTPUpgrade (Xray's and sing-box's "httpupgrade" transport, mihomo's
 * v2ray-plugin `v2ray-http-upgrade`): an HTTP/1.1 GET with `Connection: Upgrade` and `Upgrade:
 * websocket`, the server's `101 Switching Protocols`, and from then on the connection itself is
 * the byte stream (no WebSocket frames). A CDN or reverse proxy that passes WebSockets passes it,
 * since what it sees is an ordinary WebSocket handshake.
 *
 * The request is the one Ladder's WebSocket client sends (the same header order, a fresh
 * Sec-WebSocket-Key and version 13, as Xray sends since 2024: some CDNs refuse an upgrade
 * without them); sing-box's own server refuses a request with a key (it takes it for a real
 * WebSocket), so a Ladder key cannot point at a sing-box httpupgrade inbound. The answer's
 * Sec-WebSocket-Accept is not checked (Xray's and mihomo's servers send one, sing-box's none).
 * TLS (server name apart from the dialled address, a CA or a pin) is web-tls.ts, as for WebSocket.
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { DEFAULT_CONNECT_TIMEOUT_MS, UpstreamDialError } from './dialer.js';
import { webTlsOptions, type WebTlsEndpoint } from './web-tls.js';

export interface HttpUpgradeEndpoint extends WebTlsEndpoint {
  /** ws://ADDRESS:PORT/PATH or wss://… (http:// and https:// too): the address dialled and the path. */
  url: string;
  /** Host header (default: the URL's host). */
  host?: string | undefined;
  /** For the whole dial: TCP, TLS, request and answer (default 10 s). */
  connectTimeoutMs?: number | undefined;
}

/** The longest answer head read before giving up (the server's is ~100 bytes). */
const MAX_ANSWER_HEAD = 16 * 1024;

/** The request line and headers for `path` with Host `host` (exported for its known-answer test). */
export function httpUpgradeRequest(path: string, host: string, key = randomBytes(16).toString('base64')): string {
  return (
    `GET ${path} HTTP/1.1\r\n` +
    'Sec-WebSocket-Version: 13\r\n' +
    `Sec-WebSocket-Key: ${key}\r\n` +
    'Connection: Upgrade\r\n' +
    'Upgrade: websocket\r\n' +
    `Host: ${host}\r\n\r\n`
  );
}

/**
 * Why an answer head is not a switch to the raw stream, or undefined when it is: status 101,
 * `Upgrade: websocket`, `Connection` naming `upgrade` (Xray's and mihomo's checks).
 */
export function answerProblem(head: string): string | undefined {
  const lines = head.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!status) return 'HTTP upgrade answered with something other than HTTP/1.1';
  if (status[1] !== '101') return `HTTP upgrade refused (HTTP ${status[1]})`;
  let upgrade = '';
  let connection = '';
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === 'upgrade') upgrade = value;
    else if (name === 'connection') connection = value;
  }
  if (upgrade !== 'websocket' || !connection.split(',').some((t) => t.trim() === 'upgrade'))
    return 'HTTP upgrade answered 101 without Upgrade: websocket and Connection: Upgrade';
  return undefined;
}

/**
 * Dial `ep`, send the upgrade request, and resolve with the connection (a net.Socket or
 * TLSSocket, half-open allowed, Nagle off) once the server answered 101; bytes that came after
 * the answer are put back to be read first. Errors never name the host (they may reach logs).
 */
export function dialHttpUpgrade(ep: HttpUpgradeEndpoint, signal?: AbortSignal): Promise<Socket> {
  const url = new URL(ep.url);
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  if (!secure && url.protocol !== 'ws:' && url.protocol !== 'http:')
    throw new Error('HTTPUpgrade URL must be ws://, wss://, http:// or https://');
  const host = ep.host ?? url.host;
  const port = Number(url.port || (secure ? 443 : 80));
  const address = url.hostname.replace(/^\[|\]$/g, '');
  const timeoutMs = ep.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const request = httpUpgradeRequest(`${url.pathname}${url.search}`, host);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new UpstreamDialError('ERR_ABORTED', 'dial aborted'));
      return;
    }
    // allowHalfOpen: a FIN from the server must not end our side (relay.ts forwards it); a
    // TLSSocket over it inherits the setting.
    const raw = netConnect({ host: address, port, allowHalfOpen: true });
    raw.setNoDelay(true);
    let socket: Socket = raw;
    if (secure) {
      const t = webTlsOptions(ep, host);
      const { createConnection, ...options } = t;
      socket = (createConnection ?? tlsConnect)({ socket: raw, ...options, ALPNProtocols: ['http/1.1'] });
    }
    let head: Buffer = Buffer.alloc(0);
    let settled = false;
    const cleanup = (): void => {
      settled = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', onError);
      raw.off('error', onError);
      socket.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: UpstreamDialError): void => {
      if (settled) return;
      cleanup();
      socket.on('error', () => {});
      raw.on('error', () => {});
      socket.destroy();
      raw.destroy();
      reject(err);
    };
    // Read in paused mode ('readable'), so that once the listener is gone the socket is as a
    // fresh one: nothing read until its new owner listens for 'data' or resumes it.
    const onReadable = (): void => {
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) {
          if (head.length > MAX_ANSWER_HEAD) fail(new UpstreamDialError('ERR_CONNECT', 'HTTP upgrade answer head too long'));
          continue;
        }
        const problem = answerProblem(head.subarray(0, end).toString('latin1'));
        if (problem !== undefined) {
          fail(new UpstreamDialError('ERR_CONNECT', problem));
          return;
        }
        cleanup();
        const rest = head.subarray(end + 4);
        if (rest.length > 0) socket.unshift(rest);
        socket.on('error', () => {}); // until the tunnel attaches its own (as connectTcp does)
        resolve(socket);
        return;
      }
    };
    const onError = (err: NodeJS.ErrnoException): void =>
      fail(
        new UpstreamDialError('ERR_CONNECT', `HTTP upgrade connect failed: ${err.code ?? err.message}`, {
          cause: err,
        }),
      );
    const onClose = (): void => fail(new UpstreamDialError('ERR_CONNECT', 'HTTP upgrade: server closed before answering'));
    const onAbort = (): void => fail(new UpstreamDialError('ERR_ABORTED', 'dial aborted'));
    const timer = setTimeout(
      () => fail(new UpstreamDialError('ERR_CONNECT_TIMEOUT', `HTTP upgrade timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
    socket.on('readable', onReadable);
    socket.once('error', onError);
    if (socket !== raw) raw.once('error', onError);
    socket.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    // Written at once: a net.Socket queues it until connected, a TLSSocket until the handshake.
    socket.write(request);
  });
}
