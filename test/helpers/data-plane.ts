/**
 * The set-up integration tests repeat: a Ladder data plane (ShadowsocksServer) on an ephemeral
 * 127.0.0.1 port with the given keys, allowed to reach loopback destinations, plus the echo
 * destination the tests dial through it (TCP, or UDP for a server with `udp`). Given a test
 * context, both are closed in its `after`; otherwise call close().
 */
import type { TestContext } from 'node:test';
import { startDataPlane, type DataPlane, type DataPlaneOptions } from '../../src/server/index.js';
import type { RuntimeKey, UsageSink } from '../../src/shared/control.js';
import { startUdpEcho } from '../../src/transport/udp-socks5.js';
import { startEcho } from './net.js';

export interface TestServerOptions extends Omit<
  DataPlaneOptions,
  'keys' | 'port' | 'host' | 'allowPrivateDestinations'
> {
  keys: readonly RuntimeKey[];
  /** Let the server reach private destinations such as the loopback echo (default true). */
  allowPrivate?: boolean;
  /** The echo destination's transport (default: 'udp' when the server relays UDP, else 'tcp'). */
  echo?: 'tcp' | 'udp';
}

export interface TestDataPlane {
  readonly plane: DataPlane;
  /** The data plane's port on 127.0.0.1. */
  readonly port: number;
  /** The echo destination on 127.0.0.1. */
  readonly echo: { readonly host: string; readonly port: number };
  /** Close the data plane, then the echo. */
  close(): Promise<void>;
}

export async function startTestServer(
  opts: TestServerOptions,
  t?: Pick<TestContext, 'after'>,
): Promise<TestDataPlane> {
  const { allowPrivate = true, echo: kind = opts.udp ? 'udp' : 'tcp', ...rest } = opts;
  const echo = kind === 'udp' ? await startUdpEcho() : await startEcho();
  let plane: DataPlane;
  try {
    plane = await startDataPlane({
      ...rest,
      port: 0,
      host: '127.0.0.1',
      allowPrivateDestinations: allowPrivate,
    });
  } catch (err) {
    await echo.close();
    throw err;
  }
  const close = async (): Promise<void> => {
    await plane.close();
    await echo.close();
  };
  t?.after(close);
  return { plane, port: plane.address.port, echo: { host: '127.0.0.1', port: echo.port }, close };
}

/** A UsageSink that adds up what it is given, per key (`usage`: the totals so far). */
export function usageTotals(): { sink: UsageSink; usage: Map<string, { up: number; down: number }> } {
  const usage = new Map<string, { up: number; down: number }>();
  const sink: UsageSink = {
    addBytes(id, up, down) {
      const u = usage.get(id) ?? { up: 0, down: 0 };
      u.up += up;
      u.down += down;
      usage.set(id, u);
    },
  };
  return { sink, usage };
}
