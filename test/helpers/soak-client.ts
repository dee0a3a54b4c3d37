/**
 * Issue 14's measuring client, shared by the soak test and bench/soak.ts: a thread of its own
 * (so the caller's thread, which may run the management plane or the API load, cannot delay it)
 * with its own echo origin and one tunnel through the data plane. run() sends 32-byte requests,
 * 5 ms apart, and resolves with each one's round trip, and this thread's own event-loop delay over
 * the run (a stall here is the measuring side's, not the data plane's).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const CLIENT = `
const { parentPort, workerData } = require('node:worker_threads');
const { monitorEventLoopDelay } = require('node:perf_hooks');
require(workerData.tsx).register();
const net = require('node:net');
const { openTestTunnel } = require(workerData.client);
const echo = net.createServer((s) => s.pipe(s));
echo.listen(0, '127.0.0.1', () => parentPort.once('message', async (to) => {
  const t = await openTestTunnel({ port: to.port, host: '127.0.0.1', method: to.method,
    password: to.password, target: { host: '127.0.0.1', port: echo.address().port } });
  let seen = 0, stop = false;
  const once = async () => {
    const t0 = performance.now();
    t.send(Buffer.alloc(32, 7));
    seen += 32;
    await t.read(seen, 60000);
    return performance.now() - t0;
  };
  await once();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  parentPort.on('message', async (m) => {
    if (m === 'stop') { stop = true; return; }
    stop = false;
    loop.reset();
    loop.enable();
    const lat = [];
    const end = Date.now() + m.maxMs;
    while (!stop && Date.now() < end && lat.length < m.max) {
      lat.push(await once());
      await new Promise((r) => setTimeout(r, 5));
    }
    loop.disable();
    parentPort.postMessage({ lat, loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6 });
  });
  parentPort.postMessage('ready');
}));
`;

export interface SoakRun {
  /** Each request's round trip (ms). */
  readonly lat: number[];
  /** The client thread's event-loop delay over the run (ms). */
  readonly loopP99: number;
  readonly loopMax: number;
}

export interface SoakClient {
  /** Open the tunnel (once) through the data plane at `port` with this key. */
  connect(o: { port: number; method: string; password: string }): Promise<void>;
  /** Measure until `maxMs` passed, `max` requests were made, or stop() is called. */
  run(maxMs: number, max: number): Promise<SoakRun>;
  stop(): void;
  terminate(): Promise<void>;
}

/**
 * The thread starts now, at this thread's scheduling priority (a thread inherits its creator's
 * nice value on Linux: start it before the management plane lowers this thread's), and opens its
 * tunnel on connect().
 */
export function startSoakClient(): SoakClient {
  const req = createRequire(import.meta.url);
  const client = new Worker(CLIENT, {
    eval: true,
    workerData: {
      tsx: req.resolve('tsx/cjs/api'),
      client: fileURLToPath(new URL('./test-client.ts', import.meta.url)),
    },
  });
  const next = (): Promise<unknown> =>
    new Promise((resolve, reject) => {
      client.once('message', resolve);
      client.once('error', reject);
    });
  return {
    async connect(o) {
      const ready = next();
      client.postMessage(o);
      const m = await ready;
      if (m !== 'ready') throw new Error(`soak client: unexpected ${String(m)}`);
    },
    run(maxMs, max) {
      const p = next() as Promise<SoakRun>;
      client.postMessage({ maxMs, max });
      return p;
    },
    stop: () => client.postMessage('stop'),
    terminate: async () => void (await client.terminate()),
  };
}

/** The p-th percentile (nearest rank below) of `xs`. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
