/** Start/stop the client+server stacks the SIP022 and UDP benchmarks compare. */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { freePort } from '../test/helpers/net.js';
import {
  REPO_ROOT,
  spawnPeer,
  startSsLocal,
  startSsServer,
  type Method,
  type Peer,
} from '../test/helpers/peers.js';

export type StackKind = 'ladder' | 'libev' | 'libev-local+ladder-server';

export interface Stack {
  label: string;
  kind: StackKind;
  method: string;
  client: Peer & { socksPort: number };
  server: Peer & { port: number };
}

const NODE_SCRIPT = join(REPO_ROOT, 'bench', 'sip022-node.ts');

function passwordFor(method: string): string {
  if (method.startsWith('2022-')) return randomBytes(method.includes('128') ? 16 : 32).toString('base64');
  return `bench-${randomBytes(8).toString('hex')}`;
}

async function ladderServer(
  method: string,
  password: string,
  udp: boolean,
): Promise<Peer & { port: number }> {
  const port = await freePort();
  const args = [
    '--import',
    'tsx',
    NODE_SCRIPT,
    'server',
    '--port',
    String(port),
    '--method',
    method,
    '--password',
    password,
  ];
  if (udp) args.push('--udp');
  const p = await spawnPeer('ladder server', process.execPath, args, {
    waitPort: port,
    waitTimeoutMs: 60_000,
  });
  return Object.assign(p, { port });
}

async function ladderClient(
  method: string,
  password: string,
  serverPort: number,
): Promise<Peer & { socksPort: number }> {
  const socksPort = await freePort();
  const args = [
    '--import',
    'tsx',
    NODE_SCRIPT,
    'client',
    '--server-port',
    String(serverPort),
    '--method',
    method,
    '--password',
    password,
    '--socks-port',
    String(socksPort),
  ];
  const p = await spawnPeer('ladder client', process.execPath, args, {
    waitPort: socksPort,
    waitTimeoutMs: 60_000,
  });
  return Object.assign(p, { socksPort });
}

export async function startStack(kind: StackKind, method: string, udp: boolean): Promise<Stack> {
  const password = passwordFor(method);
  const extra = udp ? ['-u'] : [];
  let server: Peer & { port: number };
  let client: Peer & { socksPort: number };
  if (kind === 'libev') {
    server = await startSsServer({ method: method as Method, password, timeout: 600, extraArgs: [...extra] });
    client = await startSsLocal({
      method: method as Method,
      password,
      serverPort: server.port,
      timeout: 600,
      extraArgs: [...extra],
    });
  } else if (kind === 'libev-local+ladder-server') {
    server = await ladderServer(method, password, udp);
    client = await startSsLocal({
      method: method as Method,
      password,
      serverPort: server.port,
      timeout: 600,
      extraArgs: [...extra],
    });
  } else {
    server = await ladderServer(method, password, udp);
    client = await ladderClient(method, password, server.port);
  }
  const label =
    kind === 'ladder'
      ? `ladder ${method}`
      : kind === 'libev'
        ? `libev ${method}`
        : `ss-local -> ladder server ${method}`;
  return { label, kind, method, client, server };
}

export async function stopStack(s: Stack): Promise<void> {
  await Promise.all([s.client.stop(5000), s.server.stop(5000)]);
}
