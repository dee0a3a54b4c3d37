/**
 * Shared by the first-packet shaping lab tests (defence-shaping*.test.ts, defence-key-prefix.test.ts):
 * a bounded worker pool, one tunnelled echo through a Dialer, a deterministic C6 world with a
 * Shadowsocks data plane and an echo server behind the censor, and a tap on each flow's first
 * chunk as the censor was handed it.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { LabWorld } from '../../src/lab/world.js';
import { profile } from '../../src/lab/profiles.js';
import type { TcpFlow } from '../../src/lab/censor.js';
import type { Decision } from '../../src/lab/decision-log.js';
import { startDataPlane } from '../../src/server/index.js';
import type { Dialer } from '../../src/transport/dialer.js';
import { startEcho } from '../helpers/net.js';

/** Run fn(0..n-1) with at most `width` at once. */
export async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

/** One tunnelled echo: dial with 64..600 random bytes of first data, wait for the echo (or give up). */
export async function echoOnce(dialer: Dialer, echoPort: number, waitMs: number): Promise<boolean> {
  const data = randomBytes(randomInt(64, 601));
  const conn = await dialer.dial({ type: 'ipv4', host: '127.0.0.1', port: echoPort }, data);
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const done = (ok: boolean): void => {
      clearTimeout(t);
      conn.socket.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), waitMs);
    conn.socket.on('error', () => done(false));
    conn.socket.on('data', (c: Buffer) => {
      const out = conn.decode ? conn.decode(c) : c;
      const parts = out === undefined ? [] : Array.isArray(out) ? out : [out];
      got = Buffer.concat([got, ...parts]);
      if (got.length >= data.length) done(got.subarray(0, data.length).equals(data));
    });
  });
}

export interface ShapingWorld {
  readonly world: LabWorld;
  /** The data plane's front through the censor (logical port 8388). */
  readonly front: { host: string; port: number };
  readonly echoPort: number;
  /** Each flow's first chunk as the censor saw it, in flow order (clear() between arms). */
  readonly firstChunks: Map<number, Buffer>;
  /** C6 decisions logged since `from` (a world.log.records index). */
  c6Since(from: number): Decision[];
  close(): Promise<void>;
}

/** gfw-2021-2023-fet with C6 deterministic (p_block 1, no residual) and no prober, one key. */
export async function startShapingWorld(
  key: { method: string; secret: string },
  seed: number,
): Promise<ShapingWorld> {
  const world = await LabWorld.start({
    config: profile('gfw-2021-2023-fet', { c6: { pBlock: 1, residualMs: 0 }, c7: { enabled: false } }),
    seed,
    clockRate: 100,
    prober: false,
  });
  const plane = await startDataPlane({
    port: 0,
    host: '127.0.0.1',
    keys: [{ id: 'lab', method: key.method, secret: key.secret }],
    allowPrivateDestinations: true,
  });
  const echo = await startEcho();
  const firstChunks = new Map<number, Buffer>();
  const orig = world.censor.onClientData.bind(world.censor);
  world.censor.onClientData = (flow: TcpFlow, chunk: Buffer) => {
    if (!flow.firstChunkSeen) firstChunks.set(flow.id, Buffer.from(chunk));
    return orig(flow, chunk);
  };
  const front = await world.addRemoteHost(
    { host: '127.0.0.1', port: plane.address.port },
    { logicalPort: 8388 },
  );
  return {
    world,
    front: front.tcp,
    echoPort: echo.port,
    firstChunks,
    c6Since: (from) => world.log.records.slice(from).filter((d) => d.behaviour === 'C6'),
    async close() {
      await echo.close();
      await plane.close();
      await world.stop();
    },
  };
}
