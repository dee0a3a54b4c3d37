/**
 * What starting the data-plane workers at the first connection costs that connection: the
 * unmanaged server (`node bin/ladder.js server --password …`) is started and observed listening
 * (/proc/net/tcp*, no connection made), then one tunnel opens and echoes a few bytes (cold: the
 * workers start now) and a second one does the same (warm). Each run is repeated with
 * LADDER_EAGER_WORKERS=1 (workers started at boot) as the comparison. Times are from the
 * tunnel's connect to its echo, in ms; medians of --runs (default 5). Loopback only.
 *
 *   node --import tsx bench/first-connection.ts [--runs 5] [--workers N]
 */
import { spawn } from 'node:child_process';
import { freePort, startEcho, waitListening } from '../test/helpers/net.js';
import { openTestTunnel } from '../test/helpers/test-client.js';
import { ladderServerArgv } from '../test/helpers/peers.js';
import { opt, posInt } from './args.js';
import { median } from './stats.js';
import { cleanEnv } from '../test/helpers/clean-env.js';

const RUNS = posInt('--runs', 5);
const WORKERS = opt('--workers', '');
const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'first-connection-bench-password';

async function once(eager: boolean, echoPort: number): Promise<{ cold: number; warm: number }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    ladderServerArgv({
      port,
      method: METHOD,
      password: PASSWORD,
      extra: ['--allow-private', ...(WORKERS ? ['--workers', WORKERS] : [])],
    }),
    { stdio: 'ignore', env: cleanEnv({ LADDER_EAGER_WORKERS: eager ? '1' : '0' }) },
  );
  try {
    await waitListening(child, port);
    // Eager: the workers say nothing when ready, so give them the time a start takes.
    if (eager) await new Promise((r) => setTimeout(r, 1000));
    const time = async (): Promise<number> => {
      const t0 = performance.now();
      const t = await openTestTunnel({
        port,
        method: METHOD,
        password: PASSWORD,
        target: { host: '127.0.0.1', port: echoPort },
        initial: Buffer.from('ping'),
      });
      await t.read(4, 10_000);
      const ms = performance.now() - t0;
      t.destroy();
      return ms;
    };
    const cold = await time();
    const warm = await time();
    return { cold, warm };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

const echo = await startEcho();
const rows: Record<string, { cold: number[]; warm: number[] }> = {
  'on demand': { cold: [], warm: [] },
  'at boot': { cold: [], warm: [] },
};
for (let i = 0; i < RUNS; i++) {
  for (const [name, eager] of [
    ['on demand', false],
    ['at boot', true],
  ] as const) {
    const r = await once(eager, echo.port);
    rows[name]!.cold.push(r.cold);
    rows[name]!.warm.push(r.warm);
  }
}
await echo.close();
const f = (xs: number[]): string =>
  `${median(xs).toFixed(1).padStart(7)} (${xs.map((x) => x.toFixed(0)).join(' ')})`;
console.log(`first tunnel's connect-to-echo (ms), median (runs) of ${RUNS}; node ${process.version}`);
for (const [name, r] of Object.entries(rows))
  console.log(`${name.padEnd(10)} first ${f(r.cold)}   second ${f(r.warm)}`);
