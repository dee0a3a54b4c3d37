/**
 * The client's native SOCKS5 front (client/native-socks.ts) over answer-watch and one raw SIP004
 * key, on loopback, with what it logs kept: the setup of the tests of the addon's tunnels
 * (native-salt, lean-tunnel). And the server side: an echo and a Ladder server that may reach it.
 */
import net from 'node:net';
import { PassThrough } from 'node:stream';
import assert from 'node:assert/strict';
import { AnswerWatchDialer } from '../../src/client/answer-watch.js';
import { createTunnelDialer } from '../../src/client/index.js';
import { NativeSocks } from '../../src/client/native-socks.js';
import { encodeFirstWrite } from '../../src/protocol/shadowsocks/shaping.js';
import { ShadowsocksDialer } from '../../src/transport/shadowsocks-dialer.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { createLogger } from '../../src/shared/logger.js';
import { serve, type TestServer } from './net.js';

export interface TunnelFront {
  port: number;
  /** Every line logged, parsed. */
  lines: () => Record<string, unknown>[];
  front: NativeSocks;
  close: () => void;
}

export interface TunnelFrontOptions {
  serverPort: number;
  method: string;
  password: string;
  noAnswerMs: number;
  /** The addon's functions as the front gets them (default: nativeSocksFront()). */
  fns: unknown;
  /** NativeSocks's `lean` argument (default: from the environment). */
  lean?: boolean;
  /** NativeSocks's `bare` argument (the addon's bare tunnels; default: from the environment). */
  bare?: boolean;
  /** The tunnel's connect budget (default: the dialer's). */
  connectTimeoutMs?: number;
  /** Shaped salts from this (seeded) factory instead of the client's (a ShadowsocksDialer as the client shapes). */
  saltFactory?: (n: number) => Uint8Array;
  /** The tunnels' idle timeout (default 60 s). */
  idleTimeoutMs?: number;
}

export async function startTunnelFront(o: TunnelFrontOptions): Promise<TunnelFront> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const log = createLogger({ level: process.env.DBG ? 'debug' : 'info', destination: out });
  if (process.env.DBG) out.on('data', (d: Buffer) => process.stderr.write(d));
  const ep = {
    host: '127.0.0.1',
    port: o.serverPort,
    method: o.method,
    password: o.password,
    ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}),
  };
  const inner = o.saltFactory
    ? new ShadowsocksDialer({
        ...ep,
        saltFactory: o.saltFactory,
        freshSalts: true,
        firstWrite: encodeFirstWrite,
      })
    : createTunnelDialer(ep);
  const dialer = new AnswerWatchDialer(inner, { log, noAnswerMs: o.noAnswerMs });
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const front = new NativeSocks(
    o.fns as never,
    {
      dialer,
      firstDataWaitMs: 5000, // the first data goes with the request even on a loaded machine
      idleTimeoutMs: o.idleTimeoutMs ?? 60_000,
      log,
      track: () => {},
      host: '127.0.0.1',
      port,
    } as never,
    true,
    o.lean,
    o.bare,
  );
  assert.ok(front.adopt(srv));
  await front.leanReady(); // loaded at the first CONNECT otherwise: every connection takes the same path
  return {
    port,
    lines: () =>
      text
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    front,
    close: () => {
      dialer.close();
      front.close();
    },
  };
}

/** An echo, and a Ladder server with one key that may reach it (a private address). */
export async function startEchoServer(
  method: string,
  password: string,
): Promise<{ echo: TestServer; ssPort: number; close: () => Promise<void> }> {
  const echo = await serve((s) => s.pipe(s));
  const server = new ShadowsocksServer({
    keys: [{ id: 'k', method, secret: password }],
    allowPrivateDestinations: true,
  });
  const ssPort = (await server.listen({ port: 0, host: '127.0.0.1' })).port;
  return {
    echo,
    ssPort,
    close: async () => {
      await server.close();
      await echo.close();
    },
  };
}
