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
 * With `fastOpen` (mihomo's `v2ray-http-upgrade-fast-open`, Xray's `?ed=`) the request leaves with
 * the first bytes and the 101 is checked as it arrives (FastOpenStream).
 */
import { randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { DEFAULT_CONNECT_TIMEOUT_MS, UpstreamDialError } from './dialer.js';
import { upgradeRefused } from './upgrade-refused.js';
import { pinnedTlsConnect, webTlsOptions, type WebTlsEndpoint } from './web-tls.js';

export interface HttpUpgradeEndpoint extends WebTlsEndpoint {
  /** ws://ADDRESS:PORT/PATH or wss://… (http:// and https:// too): the address dialled and the path. */
  url: string;
  /** Host header (default: the URL's host). */
  host?: string | undefined;
  /** For the whole dial: TCP, TLS, request and answer (default 10 s). */
  connectTimeoutMs?: number | undefined;
  /**
   * mihomo's `v2ray-http-upgrade-fast-open`: resolve once connected (TLS done) without waiting
   * for the 101, and send the request with the first write, in one socket write; the answer is
   * checked as it arrives (FastOpenStream). One round trip less per connection; a refusal then
   * shows as a stream that fails, not as a dial error.
   */
  fastOpen?: boolean | undefined;
}

/** The longest answer head read before giving up (the server's is ~100 bytes). */
const MAX_ANSWER_HEAD = 16 * 1024;

/** The request line and headers for `path` with Host `host` (exported for its known-answer test). */
export function httpUpgradeRequest(
  path: string,
  host: string,
  key = randomBytes(16).toString('base64'),
): string {
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
    const value = line
      .slice(colon + 1)
      .trim()
      .toLowerCase();
    if (name === 'upgrade') upgrade = value;
    else if (name === 'connection') connection = value;
  }
  if (upgrade !== 'websocket' || !connection.split(',').some((t) => t.trim() === 'upgrade'))
    return 'HTTP upgrade answered 101 without Upgrade: websocket and Connection: Upgrade';
  return undefined;
}

/** The server's answer head as it arrives: complete, checked, and what came after it. */
class AnswerHead {
  #buf: Buffer = Buffer.alloc(0);

  /** undefined while incomplete; then the stream's bytes after the head (maybe none). Throws UpstreamDialError for a refusal. */
  feed(chunk: Buffer): Buffer | undefined {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const end = this.#buf.indexOf('\r\n\r\n');
    if (end === -1) {
      if (this.#buf.length > MAX_ANSWER_HEAD)
        throw new UpstreamDialError('ERR_CONNECT', 'HTTP upgrade answer head too long');
      return undefined;
    }
    const head = this.#buf.subarray(0, end).toString('latin1');
    const problem = answerProblem(head);
    if (problem === undefined) return this.#buf.subarray(end + 4);
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
    // A status other than 101: the front (or a CDN before it) refused the upgrade (dial-hint.ts).
    if (status !== undefined && status !== '101') throw upgradeRefused('HTTP upgrade', Number(status));
    throw new UpstreamDialError('ERR_CONNECT', problem);
  }
}

/**
 * Fast-open: the connection before its 101. The request leaves with the first write (one socket
 * write: header and the Shadowsocks salt together, as Xray and mihomo send them); the answer head
 * is taken off the first bytes read and checked, a refusal destroys the stream with the reason.
 * Back-pressure, half-close (end() is the socket's FIN, its FIN our end) as the socket's own.
 */
class FastOpenStream extends Duplex {
  readonly #socket: Socket;
  #request: Buffer | undefined;
  #answer: AnswerHead | undefined = new AnswerHead();

  constructor(socket: Socket, request: string) {
    super({ allowHalfOpen: true });
    this.#socket = socket;
    this.#request = Buffer.from(request, 'latin1');
    socket.on('data', (c: Buffer) => this.#onData(c));
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => {
      this.push(null);
      if (!this.writableFinished) this.destroy();
    });
  }

  #onData(chunk: Buffer): void {
    let c = chunk;
    if (this.#answer) {
      let rest: Buffer | undefined;
      try {
        rest = this.#answer.feed(c);
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
      if (rest === undefined) return;
      this.#answer = undefined;
      if (rest.length === 0) return;
      c = rest;
    }
    if (!this.push(c)) this.#socket.pause();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const req = this.#request;
    this.#request = undefined;
    this.#socket.write(req ? Buffer.concat([req, chunk]) : chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#socket.end();
    cb();
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#socket.destroy();
    cb(err);
  }
}

/**
 * Dial `ep`, send the upgrade request, and resolve with the connection (a net.Socket or
 * TLSSocket, half-open allowed, Nagle off) once the server answered 101; bytes that came after
 * the answer are put back to be read first. With `fastOpen`, a FastOpenStream once connected.
 * Errors never name the host (they may reach logs).
 */
export function dialHttpUpgrade(ep: HttpUpgradeEndpoint, signal?: AbortSignal): Promise<Duplex> {
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
      const { pin, ...options } = webTlsOptions(ep, host);
      // `host`: the name the certificate is checked against when no SNI is sent (an address as
      // the Host: RFC 6066 has none), the dialled address as the WebSocket dialer checks it;
      // without it Node checked 'localhost', and a front's certificate for its IP failed.
      socket = pinnedTlsConnect({ socket: raw, host: address, ...options, ALPNProtocols: ['http/1.1'] }, pin);
    }
    const answer = new AnswerHead();
    let settled = false;
    const cleanup = (): void => {
      settled = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off(secure ? 'secureConnect' : 'connect', onConnected);
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
    const done = (stream: Duplex): void => {
      cleanup();
      if (raw !== socket) raw.on('error', () => {}); // the TLSSocket reports what happens under it
      stream.on('error', () => {}); // until the tunnel attaches its own (as connectTcp does)
      resolve(stream);
    };
    // Read in paused mode ('readable'), so that once the listener is gone the socket is as a
    // fresh one: nothing read until its new owner listens for 'data' or resumes it.
    const onReadable = (): void => {
      for (
        let chunk = socket.read() as Buffer | null;
        chunk !== null;
        chunk = socket.read() as Buffer | null
      ) {
        let rest: Buffer | undefined;
        try {
          rest = answer.feed(chunk);
        } catch (err) {
          fail(err as UpstreamDialError);
          return;
        }
        if (rest === undefined) continue;
        socket.off('readable', onReadable);
        if (rest.length > 0) socket.unshift(rest);
        done(socket);
        return;
      }
    };
    const onConnected = (): void => {
      // A pin mismatch destroys the socket in an earlier 'secureConnect' listener (web-tls.ts);
      // its error then rejects the dial.
      if (!socket.destroyed) done(new FastOpenStream(socket, request));
    };
    const onError = (err: NodeJS.ErrnoException): void =>
      fail(
        new UpstreamDialError('ERR_CONNECT', `HTTP upgrade connect failed: ${err.code ?? err.message}`, {
          cause: err,
        }),
      );
    const onClose = (): void =>
      fail(new UpstreamDialError('ERR_CONNECT', 'HTTP upgrade: server closed before answering'));
    const onAbort = (): void => fail(new UpstreamDialError('ERR_ABORTED', 'dial aborted'));
    const timer = setTimeout(
      () =>
        fail(new UpstreamDialError('ERR_CONNECT_TIMEOUT', `HTTP upgrade timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
    socket.once('error', onError);
    if (socket !== raw) raw.once('error', onError);
    socket.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (ep.fastOpen) {
      socket.once(secure ? 'secureConnect' : 'connect', onConnected);
      return;
    }
    socket.on('readable', onReadable);
    // Written at once: a net.Socket queues it until connected, a TLSSocket until the handshake.
    socket.write(request);
  });
}
