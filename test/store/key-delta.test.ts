import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/shared/clock.js';
import type { KeyDelta, RuntimeKey, ServerControl } from '../../src/shared/control.js';
import {
  DAY_MS,
  evaluateKeys,
  KeyEnforcer,
  openStore,
  parseStoreLocation,
  type KeyRecord,
  type StoreLocation,
  type StoreOptions,
} from '../../src/store/index.js';
import {
  createDatabase,
  HAVE_POSTGRES,
  SKIP_WITHOUT_POSTGRES,
  startPostgres,
  type PgCluster,
} from '../helpers/postgres.js';

/**
 * Key changes applied as deltas (issues 14 and 16): an enforcer that reads only the keys changed
 * since the version it applied (Store.keyChanges) and recomputes only changed keys, keys whose usage
 * moved and keys whose expiry passed must serve exactly the keys a full evaluation finds usable, at
 * every step of a random run with two writers, on SQLite and on PostgreSQL. Negative control: the
 * same run with the delta's deletions ignored must be caught.
 */

let pg: PgCluster | undefined;
const dirs: string[] = [];
before(async () => {
  if (HAVE_POSTGRES) pg = await startPostgres();
});
after(() => {
  pg?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A data plane's key set, changed only through deltas (what the enforcer hands a real one). */
class DeltaControl implements ServerControl {
  readonly keys = new Map<string, RuntimeKey>();
  setKeys(keys: readonly RuntimeKey[]): void {
    this.keys.clear();
    for (const k of keys) this.keys.set(k.id, k);
  }
  applyKeyDelta(d: KeyDelta): void {
    for (const id of d.remove) this.keys.delete(id);
    for (const k of d.upsert) this.keys.set(k.id, k);
  }
  closeKeyConnections(): number {
    return 0;
  }
  openConnections(): ReadonlyMap<string, number> {
    return new Map();
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const quiet: StoreOptions = { flushIntervalMs: 3_600_000 };
const PERIODS = ['rolling30d', 'daily', 'weekly', 'monthly'] as const;
const STEPS = 160;

async function freshPostgres(name: string): Promise<StoreLocation> {
  return parseStoreLocation(await createDatabase(pg!.url, name), '.');
}

function freshSqlite(): StoreLocation {
  const d = mkdtempSync(join(tmpdir(), 'ladder-key-delta-'));
  dirs.push(d);
  return parseStoreLocation(undefined, d);
}

/**
 * One random run; returns the first step at which the enforcer's served set (or its statuses)
 * differs from a full evaluation, or undefined when they agreed throughout.
 */
async function run(
  loc: StoreLocation,
  seed: number,
  ignoreDeletes: boolean,
): Promise<{
  mismatch: string | undefined;
  deletes: number;
  seen: Set<string>;
  deltaReads: number;
  fullReads: number;
}> {
  const clock = new ManualClock(Date.UTC(2026, 11, 6, 20, 0));
  const a = await openStore(loc, { ...quiet, clock, writerId: 'a' });
  const b = await openStore(loc, { ...quiet, clock, writerId: 'b' });
  // The reference re-reads every usage row at every evaluation.
  const full = await openStore(loc, { ...quiet, clock, usageCacheTtlMs: 0, writerId: 'full' });
  const control = new DeltaControl();
  const enforcer = new KeyEnforcer({
    store: a,
    control,
    clock,
    intervalMs: 3_600_000,
    fullReadMs: 1e12, // only the first read is full: every later step is a delta
    testing: { ignoreDeletes },
  });
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  let deletes = 0;
  const seen = new Set<string>();
  const outcome = () => ({ deletes, seen, deltaReads: enforcer.reads.delta, fullReads: enforcer.reads.full });
  try {
    await enforcer.start();
    for (let step = 0; step < STEPS; step++) {
      const w = pick([a, b]);
      const keys: KeyRecord[] = await w.listKeys();
      const id = keys.length > 0 ? pick(keys).id : undefined;
      const op = r();
      const what = (() => {
        if (op < 0.18 || id === undefined) return 'create';
        if (op < 0.26) return 'delete';
        if (op < 0.34) return 'secret';
        if (op < 0.42) return 'enable';
        if (op < 0.52) return 'limit';
        if (op < 0.6) return 'expire';
        if (op < 0.64) return 'period';
        if (op < 0.8) return 'usage';
        if (op < 0.84) return 'default';
        if (op < 0.96) return 'time';
        return 'recreate';
      })();
      const now = clock.now();
      switch (what) {
        case 'create':
          await w.createKey({
            method: 'chacha20-ietf-poly1305',
            secret: `s${step}`,
            port: 4000,
            limitPeriod: pick(PERIODS),
            ...(r() < 0.4 ? { dataLimitBytes: Math.floor(r() * 5000) } : {}),
            ...(r() < 0.3 ? { expiresAt: now + Math.floor(r() * 3 * 3_600_000) } : {}),
          });
          break;
        case 'delete':
          await w.deleteKey(id!);
          deletes++;
          break;
        case 'recreate': // deleted and created again under the same id, by the other writer
          await w.deleteKey(id!);
          deletes++;
          await (w === a ? b : a).createKey({
            id: id!,
            method: 'chacha20-ietf-poly1305',
            secret: `r${step}`,
            port: 4000,
          });
          break;
        case 'secret':
          await w.updateKey(id!, { secret: `u${step}` });
          break;
        case 'enable':
          await w.updateKey(id!, { enabled: r() < 0.5 });
          break;
        case 'limit':
          await w.updateKey(id!, { dataLimitBytes: r() < 0.3 ? null : Math.floor(r() * 5000) });
          break;
        case 'expire':
          await w.updateKey(id!, {
            expiresAt: r() < 0.3 ? null : now + Math.floor((r() - 0.2) * 2 * 3_600_000),
          });
          break;
        case 'period':
          await w.updateKey(id!, { limitPeriod: pick(PERIODS) });
          break;
        case 'usage': {
          // SQLite's usage totals follow only their own process's writes (one server per file; the
          // CLI writes keys, not usage): there the server's store counts the bytes.
          const u = loc.kind === 'sqlite' ? a : w;
          u.addBytes(id!, Math.floor(r() * 1500), Math.floor(r() * 1500));
          await u.flush();
          break;
        }
        case 'default':
          await w.updateSettings({ accessKeyDataLimitBytes: r() < 0.5 ? null : Math.floor(r() * 6000) });
          break;
        case 'time': // minutes to a day: expiry passes, daily windows reset
          clock.advance(r() < 0.8 ? Math.floor(r() * 40 * 60_000) : DAY_MS);
          break;
      }
      await a.flush();
      await b.flush();
      await enforcer.refresh();
      const ref = await evaluateKeys(full, clock.now());
      for (const s of ref) seen.add(s.state);
      const want = ref
        .filter((s) => s.state === 'active')
        .map((s) => `${s.key.id}:${s.key.secret}`)
        .sort();
      const have = [...control.keys.values()].map((k) => `${k.id}:${k.secret}`).sort();
      const refStates = ref.map((s) => `${s.key.id}:${s.state}:${s.usedBytes}:${s.limitBytes}`).sort();
      const ourStates = enforcer.statuses
        .map((s) => `${s.key.id}:${s.state}:${s.usedBytes}:${s.limitBytes}`)
        .sort();
      const mismatch =
        have.join() !== want.join()
          ? `step ${step} (${what}): served ${have.join()} but usable ${want.join()}`
          : ourStates.join() !== refStates.join()
            ? `step ${step} (${what}): statuses ${ourStates.join()} vs ${refStates.join()}`
            : undefined;
      if (mismatch !== undefined) return { mismatch, ...outcome() };
    }
    return { mismatch: undefined, ...outcome() };
  } finally {
    enforcer.stop();
    await a.close();
    await b.close();
    await full.close();
  }
}

async function equivalence(
  t: { diagnostic(msg: string): void },
  loc: () => Promise<StoreLocation> | StoreLocation,
): Promise<void> {
  const good = await run(await loc(), 7, false);
  assert.equal(good.mismatch, undefined);
  assert.ok(good.deletes > 5, `the run deleted keys (${good.deletes})`);
  assert.deepEqual(
    [...good.seen].sort(),
    ['active', 'disabled', 'expired', 'over_limit'],
    'every state was reached',
  );
  assert.equal(good.fullReads, 1, 'one full read (the first); every later step read only changes');
  assert.ok(good.deltaReads >= STEPS, `delta reads: ${good.deltaReads}`);
  // Negative control: the same run with deletions ignored serves a key that no longer exists.
  const broken = await run(await loc(), 7, true);
  assert.ok(broken.mismatch !== undefined, 'a delta that ignores deletes is caught');
  t.diagnostic(`negative control caught at ${broken.mismatch}`);
}

test('delta key reads equal a full evaluation at every step, two writers (SQLite; negative control: deletes ignored)', async (t) => {
  await equivalence(t, freshSqlite);
});

let dbs = 0;
test(
  'delta key reads equal a full evaluation at every step, two writers (PostgreSQL; negative control: deletes ignored)',
  { skip: SKIP_WITHOUT_POSTGRES },
  async (t) => {
    await equivalence(t, () => freshPostgres(`delta${dbs++}`));
  },
);
