/**
 * A stand-in for the web front (issue 12): a plain node:http server whose 'upgrade' event hands
 * requests to createWebSocketEndpoints, in front of an in-process Ladder data plane allowed to
 * reach loopback destinations. Anything not taken gets a bare 404. Counts upgrades so tests can
 * tell how many WebSockets a client opened.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ServerHooks } from '../../src/server/events.js';
import { startDataPlane, type DataPlane } from '../../src/server/index.js';
import { createWebSocketEndpoints } from '../../src/server/web/websocket.js';
import type { RuntimeKey } from '../../src/shared/control.js';

export interface WsTestServer {
  readonly plane: DataPlane;
  readonly webPort: number;
  readonly secretPath: string;
  /** WebSocket upgrades accepted so far. */
  readonly upgrades: number;
  close(): Promise<void>;
}

export async function startWsTestServer(opts: {
  keys: readonly RuntimeKey[];
  secretPath?: string;
  idleMs?: number;
  hooks?: ServerHooks;
}): Promise<WsTestServer> {
  const secretPath = opts.secretPath ?? '/secret-path';
  const plane = await startDataPlane({
    keys: opts.keys,
    port: 0,
    host: '127.0.0.1',
    allowPrivateDestinations: true,
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
    ...(opts.idleMs !== undefined ? { timeouts: { idleMs: opts.idleMs } } : {}),
  });
  const endpoints = createWebSocketEndpoints(plane.server, { secretPath, udp: { keys: () => opts.keys } });
  let upgrades = 0;
  const web = http.createServer((_req, res) => {
    res.writeHead(404).end();
  });
  web.on('upgrade', (req: http.IncomingMessage, socket, head: Buffer) => {
    if (endpoints.onUpgrade(req, socket, head, (socket as Socket).remoteAddress)) upgrades++;
    else socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
  });
  web.listen(0, '127.0.0.1');
  await once(web, 'listening');
  return {
    plane,
    webPort: (web.address() as AddressInfo).port,
    secretPath,
    get upgrades() {
      return upgrades;
    },
    close: async () => {
      endpoints.close();
      web.closeAllConnections();
      await new Promise((r) => web.close(r));
      await plane.close();
    },
  };
}
