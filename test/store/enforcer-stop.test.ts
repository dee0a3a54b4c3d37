/**
 * A server's stop: the enforcer is stopped and the store closed while a timed evaluation may be
 * between two store calls. That evaluation then fails on the closed store; it used to log
 * `key evaluation failed: store: already closed` at warn level on every such stop (seen on a
 * fleet node's SIGTERM), which reads as a fault. A stopped enforcer's failure is not logged; a
 * running one's still is (the control).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { KeyEnforcer, openStore, parseStoreLocation, type Store } from '../../src/store/index.js';
import { createLogger } from '../../src/shared/logger.js';
import { SecretsControl } from '../helpers/secrets-control.js';
import { waitFor } from '../helpers/wait.js';

/** The store, whose getSettings waits at a gate once armed (an evaluation caught mid-read). */
function gated(store: Store) {
  let armed = false;
  let release: () => void = () => undefined;
  let reached = false;
  const wrapped = new Proxy(store, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      if (prop !== 'getSettings') return (v as (...a: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]): Promise<unknown> => {
        if (armed) {
          armed = false;
          reached = true;
          await new Promise<void>((r) => (release = r));
        }
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: wrapped, arm: () => (armed = true), reached: () => reached, release: () => release() };
}

async function evaluationCaughtByClose(stopFirst: boolean): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ladder-enf-stop-'));
  const real = await openStore(parseStoreLocation(join(dir, 'store.db'), dir));
  const out = new PassThrough();
  let logs = '';
  out.on('data', (c: Buffer) => (logs += c.toString()));
  try {
    const g = gated(real);
    const enforcer = new KeyEnforcer({
      store: g.store,
      control: new SecretsControl(),
      intervalMs: 10,
      logger: createLogger({ level: 'info', destination: out }),
    });
    await enforcer.start();
    g.arm();
    await waitFor(() => g.reached(), { timeoutMs: 5000, message: 'a timed evaluation reached the store' });
    if (stopFirst) enforcer.stop();
    await real.close();
    g.release();
    if (!stopFirst) {
      await waitFor(() => logs.includes('key evaluation failed'), {
        timeoutMs: 5000,
        message: 'the warning',
      });
      enforcer.stop();
    }
    await new Promise((r) => setTimeout(r, 100));
    return logs;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('an evaluation cut off by the stop (enforcer stopped, then the store closed) logs nothing', async () => {
  const logs = await evaluationCaughtByClose(true);
  assert.doesNotMatch(logs, /key evaluation failed/);
});

test('control: the same failure while the enforcer runs is still a warning', async () => {
  const logs = await evaluationCaughtByClose(false);
  assert.match(logs, /"level":40.*already closed.*key evaluation failed/);
});
