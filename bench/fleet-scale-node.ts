/**
 * One process of bench/fleet-scale.ts's simulated fleet (forked by it; not run by hand): `count`
 * fleet nodes from `first`, each what a `ladder server --node` asks of the database without a data
 * plane: its own store (pool, as `ladder server --node` opens it), startFleetNode (registration, heartbeat every 2 s, a LISTEN
 * connection, a full read after each (re)connect) and a real KeyEnforcer (2 s poll, delta reads)
 * whose control records when a marked secret arrives. With `traffic`, each node counts bytes for 5
 * of its 100 keys every 400 ms, so the store writes a usage batch every flush as a carrying node does.
 *
 * Messages from the parent: {type:'expect', marker, keys, t0} (a change is about to be made: report
 * when every one of `keys` secrets ending in marker is applied), {type:'traffic', on},
 * {type:'stop'}. To the parent: {type:'ready'}, {type:'applied', marker, node, heardMs, appliedMs}
 * (ms after t0, on the machine's clock, which every process shares), {type:'stats', reads, pool} (at stop, before the nodes close), {type:'stopped'}.
 * FLEET_BENCH_DEBUG=1: at stop, each process prints (stderr) its event-loop delay, the enforcers'
 * logged errors, the evaluations each node made since the last change began, and every node that
 * did not apply it.
 */
import { startFleetNode, type FleetNode } from '../src/fleet/node.js';
import type { KeyDelta, RuntimeKey, ServerControl } from '../src/shared/control.js';
import { silentLogger } from '../src/shared/logger.js';
import { KeyEnforcer, openStore, parseStoreLocation, type KyselyStore } from '../src/store/index.js';

const [url, firstArg, countArg] = process.argv.slice(2);
const first = Number(firstArg);
const count = Number(countArg);
const now = (): number => performance.timeOrigin + performance.now();
const send = (m: object): void => void process.send?.(m);

interface Expect {
  marker: string;
  keys: number;
  t0: number;
}

interface Sim {
  name: string;
  store: KyselyStore;
  enforcer: KeyEnforcer;
  node: FleetNode;
  expect: Expect | undefined;
  seen: number;
  heardAt: number | undefined;
  keyIds: string[];
}

/** A data plane's key set stand-in: counts the marked secrets each delta brings. */
function control(sim: () => Sim | undefined): ServerControl {
  const onKeys = (keys: readonly RuntimeKey[]): void => {
    const s = sim();
    const e = s?.expect;
    if (!s || !e) return;
    for (const k of keys) if (k.secret.endsWith(e.marker)) s.seen++;
    if (s.seen >= e.keys) {
      send({
        type: 'applied',
        marker: e.marker,
        node: s.name,
        heardMs: s.heardAt === undefined ? null : s.heardAt - e.t0,
        appliedMs: now() - e.t0,
      });
      s.expect = undefined;
    }
  };
  return {
    setKeys: onKeys,
    applyKeyDelta: (d: KeyDelta) => onKeys(d.upsert),
    closeKeyConnections: () => 0,
    openConnections: () => new Map(),
  };
}

const sims: Sim[] = [];
const dbgErr = new Map<string, number>();
let dbgReads: { full: number; delta: number }[] = [];
const eld = (await import('node:perf_hooks')).monitorEventLoopDelay({ resolution: 20 });
eld.enable();
let traffic: NodeJS.Timeout | undefined;
// FLEET_BENCH_DEBUG: this process's pools every 10 s (open, busy, callers waiting, and counters).
if (process.env.FLEET_BENCH_DEBUG)
  setInterval(() => {
    const t = { open: 0, busy: 0, waiting: 0, waits: 0, timeouts: 0, refused: 0, waitMsMax: 0 };
    for (const x of sims) {
      const p = x.store.poolStats();
      if (!p) continue;
      for (const k of ['open', 'busy', 'waiting', 'waits', 'timeouts', 'refused'] as const) t[k] += p[k];
      t.waitMsMax = Math.max(t.waitMsMax, p.waitMsMax);
    }
    const pending = sims.filter((x) => x.expect).length;
    console.error('DEBUG pools proc', first, JSON.stringify(t), 'nodes still expecting', pending);
  }, 10_000).unref();

async function main(): Promise<void> {
  for (let i = first; i < first + count; i++) {
    const name = `sim-${i}`;
    // The pool as `ladder server --node` opens it (FLEET_BENCH_POOL / FLEET_BENCH_ACQUIRE_MS: other
    // sizes, e.g. 10 and 30000 for the pool before issue 16's fix).
    const store = await openStore(parseStoreLocation(url, '.'), {
      writerId: name,
      ...(process.env.FLEET_BENCH_POOL ? { poolSize: Number(process.env.FLEET_BENCH_POOL) } : {}),
      ...(process.env.FLEET_BENCH_ACQUIRE_MS
        ? { acquireTimeoutMs: Number(process.env.FLEET_BENCH_ACQUIRE_MS) }
        : {}),
    });
    const ref: { sim?: Sim } = {};
    const enforcer = new KeyEnforcer({
      store,
      control: control(() => ref.sim),
      intervalMs: 2000,
      ...(process.env.FLEET_BENCH_DEBUG
        ? {
            logger: {
              ...silentLogger,
              warn: (o: { err?: string }) => {
                const k = String(o.err).slice(0, 80);
                dbgErr.set(k, (dbgErr.get(k) ?? 0) + 1);
              },
            } as typeof silentLogger,
          }
        : {}),
    });
    await enforcer.start();
    const node = await startFleetNode({
      registry: store.nodes(),
      url: url!,
      info: { name, addresses: [`198.51.100.${i % 250}`], port: 443, transports: [], version: 'bench' },
      // A notification calls refresh() with no options: that is when the node heard of a change.
      enforcer: {
        refresh: (opts) => {
          const s = ref.sim;
          if (opts === undefined && s?.expect && s.heardAt === undefined) s.heardAt = now();
          return enforcer.refresh(opts);
        },
      },
      log: silentLogger,
    });
    // Each node carries traffic for 100 keys of its own (node i: the i-th hundred, wrapping), as a
    // fleet whose users are spread over its nodes; every node on the same keys makes every usage
    // flush wait for the others' row locks (a hot spot no fleet has; FLEET_BENCH_SHARED_KEYS=1).
    const all = await store.listKeys();
    const from = process.env.FLEET_BENCH_SHARED_KEYS ? 0 : (i * 100) % Math.max(1, all.length);
    const keyIds = all.slice(from, from + 100).map((k) => k.id);
    const self: Sim = { name, store, enforcer, node, expect: undefined, seen: 0, heardAt: undefined, keyIds };
    ref.sim = self;
    sims.push(self);
  }
  send({ type: 'ready' });
}

process.on('message', (m: { type: string; marker?: string; keys?: number; t0?: number; on?: boolean }) => {
  if (m.type === 'expect') {
    if (process.env.FLEET_BENCH_DEBUG) {
      dbgReads = sims.map((x) => ({ ...x.enforcer.reads }));
      eld.reset();
    }
    for (const s of sims) {
      s.expect = { marker: m.marker!, keys: m.keys!, t0: m.t0! };
      s.seen = 0;
      s.heardAt = undefined;
    }
  } else if (m.type === 'traffic') {
    if (traffic) clearInterval(traffic);
    traffic = undefined;
    if (m.on === true)
      traffic = setInterval(() => {
        for (const s of sims)
          for (let j = 0; j < 5; j++) {
            const id = s.keyIds[Math.floor(Math.random() * s.keyIds.length)];
            if (id !== undefined) s.store.addBytes(id, 1000, 20_000);
          }
      }, 400);
  } else if (m.type === 'stop') {
    void stop();
  }
});
process.on('disconnect', () => void stop());

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  if (traffic) clearInterval(traffic);
  // The figures first (closing 10 nodes takes seconds under load; the parent waits only so long).
  const reads = { full: 0, delta: 0 };
  const pool = { waits: 0, timeouts: 0, refused: 0, waitMsMax: 0, checkouts: 0, maxOpen: 0 };
  for (const s of sims) {
    reads.full += s.enforcer.reads.full;
    reads.delta += s.enforcer.reads.delta;
    const p = s.store.poolStats();
    if (!p) continue;
    pool.waits += p.waits;
    pool.timeouts += p.timeouts;
    pool.refused += p.refused;
    pool.checkouts += p.checkouts;
    pool.waitMsMax = Math.max(pool.waitMsMax, p.waitMsMax);
    pool.maxOpen = Math.max(pool.maxOpen, p.max);
  }
  send({ type: 'stats', reads, pool });
  if (process.env.FLEET_BENCH_DEBUG)
    console.error(
      'DEBUG proc',
      first,
      'loop delay max ms',
      (eld.max / 1e6).toFixed(0),
      'p99',
      (eld.percentile(99) / 1e6).toFixed(0),
      'errors',
      JSON.stringify([...dbgErr]),
      'reads since expect',
      JSON.stringify(
        sims.map((x, i) => [
          x.enforcer.reads.full - (dbgReads[i]?.full ?? 0),
          x.enforcer.reads.delta - (dbgReads[i]?.delta ?? 0),
          x.node.status().notifications,
        ]),
      ),
    );
  for (const s of sims) {
    if (s.expect && process.env.FLEET_BENCH_DEBUG)
      console.error(
        'DEBUG',
        s.name,
        'seen',
        s.seen,
        'of',
        s.expect.keys,
        'heard',
        s.heardAt !== undefined,
        'reads',
        JSON.stringify(s.enforcer.reads),
        'book marked',
        s.enforcer.statuses.filter((x) => x.key.secret.endsWith(s.expect!.marker)).length,
        'pool',
        JSON.stringify(s.store.poolStats()),
        'states',
        JSON.stringify(
          s.enforcer.statuses.reduce(
            (m: Record<string, number>, x) => ((m[x.state] = (m[x.state] ?? 0) + 1), m),
            {},
          ),
        ),
      );
    s.enforcer.stop();
    await s.node.close().catch(() => undefined);
    await s.store.close().catch(() => undefined);
  }
  // Exit once the parent has what was sent (a send is asynchronous).
  const exit = (): never => process.exit(0);
  if (process.send) process.send({ type: 'stopped' }, () => exit());
  else exit();
}

// Bounded: a child the parent forgot stops by itself.
setTimeout(() => void stop(), 30 * 60_000).unref();
await main();
