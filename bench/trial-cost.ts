/**
 * What a probe costs a server with many SIP004 keys (every key is tried on its first bytes), with
 * the key trial at the accept (native/tcp_accept.cc acceptKeys) and without it
 * (LADDER_ACCEPT_TRIAL=0), the two alternating: server CPU (user + sys of the whole process, from
 * /proc; 10 ms ticks, so use many probes) per connection that sends --bytes random bytes and
 * closes. The server is dist/cli/main.js with a --config file of --keys keys.
 *
 *   node --import tsx bench/trial-cost.ts [--keys 100] [--n 1000] [--bytes 100] [--rounds 3] [--no-build]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../test/helpers/net.js';
import { spawnPeer } from '../test/helpers/peers.js';
import { opt, posInt } from './args.js';
import { currentDist } from './dist.js';

const keys = posInt('--keys', 100);
const n = posInt('--n', 1000);
const bytes = posInt('--bytes', 100);
const rounds = posInt('--rounds', 3);
const entry = opt('--entry', '');

/** User + system CPU ms of a process so far (/proc/PID/stat; 10 ms ticks). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

function probe(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(randomBytes(bytes));
      setTimeout(() => s.destroy(), 3);
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve());
  });
}

async function run(main: string, dir: string, on: boolean): Promise<number> {
  const port = await freePort();
  const config = join(dir, 'server.json');
  const list = Array.from({ length: keys }, (_, i) => ({
    id: `k${i}`,
    method: 'aes-256-gcm',
    password: `trial-cost-${i}-${randomBytes(4).toString('hex')}`,
  }));
  writeFileSync(config, JSON.stringify({ port, host: '127.0.0.1', keys: list }));
  const server = await spawnPeer(
    'ladder server',
    process.execPath,
    [main, 'server', '--config', config, '--workers', '1'],
    { waitPort: port, env: { LADDER_ACCEPT_TRIAL: on ? '1' : '0' } },
  );
  try {
    for (let i = 0; i < 50; i++) await probe(port);
    const t0 = cpuMs(server.pid);
    for (let i = 0; i < n; i++) await probe(port);
    return ((cpuMs(server.pid) - t0) * 1000) / n;
  } finally {
    await server.stop();
  }
}

const main =
  entry || currentDist(!process.argv.includes('--no-build'), (m) => process.stderr.write(`${m}\n`));
const dir = mkdtempSync(join(tmpdir(), 'ladder-trial-cost-'));
try {
  for (let r = 0; r < rounds; r++) {
    const at = await run(main, dir, true);
    const js = await run(main, dir, false);
    console.log(
      `${keys} keys, ${bytes}-byte probes: server CPU µs per probe, trial at the accept ${at.toFixed(0)}, in JS ${js.toFixed(0)} (ratio ${(at / js).toFixed(2)})`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
