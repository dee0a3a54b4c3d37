import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createAccessKeys,
  KeyEnforcer,
  openStore,
  parseStoreLocation,
  type Store,
} from '../../src/store/index.js';
import { postgresPool } from '../../src/store/dialect.js';
import { SKIP_WITHOUT_POSTGRES, startPostgres } from '../helpers/postgres.js';
import { SecretsControl } from '../helpers/secrets-control.js';

/**
 * Issue 16: an evaluation makes one store call at a time. Each call takes a pool connection; an
 * evaluation that needed two at once (the key changes' transaction and the settings, in parallel)
 * failed on every node whose pool could not open a second connection while the database was at
 * max_connections, so those nodes never applied a 10,000-key change set. Real SQLite store; the
 * wrapper counts the store calls in flight.
 */

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The store, with the most calls it had in flight at once since `reset()`. */
function counting(store: Store): { store: Store; max: () => number; reset: () => void } {
  let inFlight = 0;
  let max = 0;
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]): unknown => {
        const r: unknown = (v as (...a: unknown[]) => unknown).apply(target, args);
        if (!(r instanceof Promise)) return r;
        max = Math.max(max, ++inFlight);
        return r.finally(() => inFlight--);
      };
    },
  });
  return { store: wrapped, max: () => max, reset: () => (max = 0) };
}

test('an evaluation (full read, then a change set of every key) makes one store call at a time', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-enf-conn-'));
  dirs.push(dir);
  const real = await openStore(parseStoreLocation(join(dir, 'store.db'), dir));
  try {
    await createAccessKeys(real, { method: 'chacha20-ietf-poly1305', count: 300 });
    const c = counting(real);
    const control = new SecretsControl();
    const enforcer = new KeyEnforcer({ store: c.store, control, intervalMs: 3_600_000 });

    await enforcer.refresh({ full: true });
    assert.equal(control.secrets.size, 300);
    assert.equal(c.max(), 1, 'a full read made store calls in parallel');

    const keys = await real.listKeys();
    for (const k of keys) await real.updateKey(k.id, { secret: `${k.secret}-all` });
    c.reset();
    await enforcer.refresh();
    assert.deepEqual(enforcer.reads, { full: 1, delta: 1 });
    assert.equal(c.max(), 1, 'a delta read made store calls in parallel');
    assert.ok(
      [...control.secrets.values()].every((s) => s.endsWith('-all')),
      'every changed key applied',
    );

    // Negative control: the wrapper does see calls that overlap.
    c.reset();
    await Promise.all([c.store.getSettings(), c.store.listKeys()]);
    assert.equal(c.max(), 2);
  } finally {
    await real.close();
  }
});

test(
  'a PostgreSQL connection handed back inside a failed transaction is closed, not pooled',
  { skip: SKIP_WITHOUT_POSTGRES },
  async () => {
    const pg = await startPostgres();
    const pool = postgresPool(pg.url, undefined);
    try {
      const c = await pool.connect();
      await c.query('begin');
      await assert.rejects(c.query('select 1/0'));
      c.release(); // a rollback that never ran (what a failed ROLLBACK leaves)
      const d = await pool.connect();
      try {
        assert.equal((await d.query<{ n: number }>('select 1 as n')).rows[0]?.n, 1);
      } finally {
        d.release();
      }
      // Negative control: the same connection, kept by hand, is still in its failed transaction.
      const e = await pool.connect();
      await e.query('begin');
      await assert.rejects(e.query('select 1/0'));
      await assert.rejects(e.query('select 1'), /current transaction is aborted/);
      await e.query('rollback');
      e.release();
    } finally {
      await pool.end();
      pg.destroy();
    }
  },
);
