/**
 * Issue 14's listing load: a managed server (`node ROOT/bin/ladder.js server`, a process of its
 * own) with a --keys-key store takes --concurrent simultaneous full GET /access-keys; the server's
 * peak RSS (VmHWM, reset just before the burst through /proc/PID/clear_refs, and VmRSS sampled
 * every 50 ms), each listing's time to its last byte and the burst's total are printed. --root
 * runs another checkout's server (e.g. /work/main, the one before streaming) on the same store
 * layout, for a before/after on one machine. Memory is the figure that matters on a loaded
 * machine; times there are noise.
 *
 *   node --import tsx bench/key-listing.ts [--root DIR] [--keys 5000] [--concurrent 200]
 *     [--rounds 1]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openStore, parseStoreLocation, createAccessKeys } from '../src/store/index.js';
import { REPO_ROOT } from '../test/helpers/peers.js';
import { flagOf, procKib, spawnManagedServer } from './managed-server.js';
import { median } from './stats.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: string): string => flagOf(args, name, dflt);
const ROOT = resolve(flag('root', REPO_ROOT));
const KEYS = Number(flag('keys', '5000'));
const CONCURRENT = Number(flag('concurrent', '200'));
const ROUNDS = Number(flag('rounds', '1'));

const kib = procKib;
const mib = (k: number): string => (k / 1024).toFixed(0);

function get(url: string, agent: Agent): Promise<{ status: number; bytes: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((ok, fail) => {
    const req = httpsRequest(url, { agent, rejectUnauthorized: false, timeout: 300_000 }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => ok({ status: res.statusCode ?? 0, bytes, ms: performance.now() - t0 }));
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
    req.end();
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-bench-listing-'));
  try {
    const store = await openStore(parseStoreLocation(undefined, dir));
    await createAccessKeys(store, { count: KEYS, method: 'chacha20-ietf-poly1305', name: 'bench' });
    const prefix = (await store.getSettings()).apiPrefix;
    await store.close();
    const server = await spawnManagedServer(ROOT, dir, { extra: ['--workers', '1'] });
    // A restart prints no secrets: the API's port from the banner, the prefix from the store.
    const apiUrl = `https://127.0.0.1:${server.apiPort}/${prefix}`;
    const pid = server.pid;
    const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
    const once = await get(`${apiUrl}/access-keys`, agent); // warm: code paths compiled, store open
    console.log(`root ${ROOT}: ${KEYS} keys, one listing ${once.bytes} bytes in ${once.ms.toFixed(0)} ms`);
    for (let round = 1; round <= ROUNDS; round++) {
      const before = kib(pid, 'VmRSS');
      writeFileSync(`/proc/${pid}/clear_refs`, '5'); // VmHWM := VmRSS
      let sampled = before;
      const sampler = setInterval(() => (sampled = Math.max(sampled, kib(pid, 'VmRSS'))), 50);
      const t0 = performance.now();
      const results = await Promise.all(
        Array.from({ length: CONCURRENT }, () => get(`${apiUrl}/access-keys`, agent)),
      );
      const total = performance.now() - t0;
      clearInterval(sampler);
      const hwm = kib(pid, 'VmHWM');
      const bad = results.filter((r) => r.status !== 200 || r.bytes !== once.bytes).length;
      const ms = results.map((r) => r.ms).sort((a, b) => a - b);
      console.log(
        `round ${round}: ${CONCURRENT} listings in ${total.toFixed(0)} ms (each: median ` +
          `${median(ms).toFixed(0)}, max ${ms.at(-1)!.toFixed(0)} ms), ${bad} wrong; RSS ` +
          `${mib(before)} -> peak ${mib(Math.max(hwm, sampled))} MiB (VmHWM ${mib(hwm)}, ` +
          `sampled ${mib(sampled)}), after ${mib(kib(pid, 'VmRSS'))} MiB`,
      );
    }
    agent.destroy();
    await server.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
