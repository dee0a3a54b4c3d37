import net, { type AddressInfo, type Socket } from 'node:net';
import { isProtocolError } from '../protocol/errors.js';
import type { SocksAddress } from '../protocol/socks5/address.js';
import {
  AUTH_NO_ACCEPTABLE,
  AUTH_NONE,
  AUTH_USERPASS,
  CMD_CONNECT,
  CMD_UDP_ASSOCIATE,
  encodeMethodSelection,
  encodeReply,
  encodeUserPassReply,
  parseGreeting,
  parseRequest,
  parseUserPassAuth,
  REP,
} from '../protocol/socks5/socks5.js';
import { listen } from '../shared/listen.js';
import { safeEqual } from '../shared/safe-equal.js';
import { endWith, runTunnel, type TunnelContext } from './tunnel.js';

export interface SocksCredentials {
  username: string;
  password: string;
}

/** What a UDP ASSOCIATE handler gets (added by the UDP work; absent means "not supported"). */
export interface UdpAssociateRequest {
  socket: Socket;
  /** The client's stated source address (often 0.0.0.0:0). */
  address: SocksAddress;
  /** Bytes received after the request (normally none). */
  rest: Buffer;
}

export interface Socks5InboundOptions extends TunnelContext {
  host: string;
  port: number;
  /** Require RFC 1929 username/password; no-auth is refused when set. */
  auth?: SocksCredentials | undefined;
  /** Close connections that have not finished the handshake within this time (default 10 s). */
  handshakeTimeoutMs?: number;
  udpAssociate?: ((req: UdpAssociateRequest) => void) | undefined;
  /** Called for every accepted socket (for shutdown tracking). */
  onSocket?: (socket: Socket) => void;
  /** The rules block this destination: reply 2 (not allowed by ruleset) at once, dial nothing. */
  blocked?: ((dest: SocksAddress) => boolean) | undefined;
}

export interface Socks5Inbound {
  readonly server: net.Server;
  readonly address: AddressInfo;
}

const enum Stage {
  Greeting,
  Auth,
  Request,
  Done,
}

/**
 * Handle one SOCKS5 client: greeting (skipped when `greeted`), optional RFC 1929 auth, request. A
 * CONNECT to a destination the rules block gets NOT_ALLOWED (2); any other CONNECT gets SUCCEEDED at
 * once (the tunnel's first write waits for the application's first bytes, see tunnel.ts); UDP
 * ASSOCIATE goes to the hook or gets COMMAND_NOT_SUPPORTED; anything malformed closes the
 * connection after the reply RFC 1928 prescribes, if any.
 */
export function handleSocks5(socket: Socket, opts: Socks5InboundOptions, greeted = false): void {
  // greeted: the native front (native-socks.ts) already answered a no-auth greeting.
  let stage = greeted ? Stage.Request : Stage.Greeting;
  let buf: Buffer = Buffer.alloc(0);
  const log = opts.log;
  const timer = setTimeout(() => {
    log.debug('socks5 handshake timed out');
    socket.destroy();
  }, opts.handshakeTimeoutMs ?? 10_000);
  timer.unref();

  // The application hung up before its request was complete: nothing to wait for (allowHalfOpen
  // keeps the socket open, which held the descriptor until the handshake timeout).
  const onEnd = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  const finish = (): void => {
    stage = Stage.Done;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.pause();
  };
  const refuse = (reply?: Buffer): void => {
    finish();
    if (reply) endWith(socket, reply);
    else socket.destroy();
  };

  const step = (): void => {
    for (;;) {
      switch (stage) {
        case Stage.Greeting: {
          const g = parseGreeting(buf);
          if (!g) return;
          buf = buf.subarray(g.length);
          const want = opts.auth ? AUTH_USERPASS : AUTH_NONE;
          if (!g.methods.includes(want)) {
            log.debug('socks5 client offered no acceptable method');
            refuse(encodeMethodSelection(AUTH_NO_ACCEPTABLE));
            return;
          }
          socket.write(encodeMethodSelection(want));
          stage = opts.auth ? Stage.Auth : Stage.Request;
          break;
        }
        case Stage.Auth: {
          const a = parseUserPassAuth(buf);
          if (!a) return;
          buf = buf.subarray(a.length);
          const cred = opts.auth!;
          // Evaluate both comparisons so timing does not say which field was wrong.
          const okUser = safeEqual(a.username, cred.username);
          const okPass = safeEqual(a.password, cred.password);
          if (!(okUser && okPass)) {
            log.info('socks5 authentication failed');
            refuse(encodeUserPassReply(false));
            return;
          }
          socket.write(encodeUserPassReply(true));
          stage = Stage.Request;
          break;
        }
        case Stage.Request: {
          let r;
          try {
            r = parseRequest(buf);
          } catch (err) {
            if (isProtocolError(err) && err.code === 'ERR_ADDRESS') {
              refuse(encodeReply(REP.ADDRESS_TYPE_NOT_SUPPORTED));
              return;
            }
            throw err;
          }
          if (!r) return;
          const rest = buf.subarray(r.length);
          buf = Buffer.alloc(0);
          finish();
          if (r.command === CMD_CONNECT && opts.blocked?.(r.address)) {
            refuse(encodeReply(REP.NOT_ALLOWED));
          } else if (r.command === CMD_CONNECT) {
            // SUCCEEDED now: the application's first bytes are what we wait for (tunnel.ts).
            socket.write(encodeReply(REP.SUCCEEDED));
            void runTunnel(socket, r.address, rest.length > 0 ? Buffer.from(rest) : undefined, opts);
          } else if (r.command === CMD_UDP_ASSOCIATE && opts.udpAssociate) {
            opts.udpAssociate({ socket, address: r.address, rest: Buffer.from(rest) });
          } else {
            log.debug({ command: r.command }, 'socks5 command not supported');
            refuse(encodeReply(REP.COMMAND_NOT_SUPPORTED));
          }
          return;
        }
        case Stage.Done:
          return;
      }
    }
  };

  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    try {
      step();
    } catch (err) {
      // Garbage: a SOCKS5 violation gets no reply we could frame; just close.
      log.debug({ code: isProtocolError(err) ? err.code : 'ERR_UNKNOWN' }, 'socks5 protocol error');
      refuse();
    }
  };
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', () => clearTimeout(timer));
}

/** Listen for SOCKS5 clients on host:port (port 0 picks a free one). */
export async function startSocks5Inbound(opts: Socks5InboundOptions): Promise<Socks5Inbound> {
  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    opts.onSocket?.(socket);
    handleSocks5(socket, opts);
  });
  const address = await listen(server, { port: opts.port, host: opts.host });
  server.on('error', (err) =>
    opts.log.error({ code: (err as NodeJS.ErrnoException).code }, 'socks5 listener error'),
  );
  return { server, address };
}
