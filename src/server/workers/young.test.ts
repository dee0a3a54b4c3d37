import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { workerResourceLimits, WORKER_YOUNG_GENERATION_MB } from './young.js';

/** A worker that churns ~200 MiB of short-lived objects, then reports its new space's size. */
function newSpaceAfterChurn(resourceLimits: ResourceLimits | undefined): Promise<number> {
  const src = `
    const { parentPort } = require('node:worker_threads');
    const { getHeapSpaceStatistics } = require('node:v8');
    let keep = [];
    for (let i = 0; i < 2_000_000; i++) {
      keep.push({ i, s: 'x' + i, a: [i, i + 1, i + 2] });
      if (keep.length > 5_000) keep = [];
    }
    const ns = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    parentPort.postMessage(ns.space_size);
  `;
  return new Promise((resolve, reject) => {
    const w = new Worker(src, { eval: true, ...(resourceLimits ? { resourceLimits } : {}) });
    w.once('message', (n: number) => {
      resolve(n);
      void w.terminate();
    });
    w.once('error', reject);
  });
}

describe('data-plane worker young generation', () => {
  it('is capped unless LADDER_YOUNG=0', () => {
    assert.deepEqual(workerResourceLimits({}), { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB });
    assert.deepEqual(workerResourceLimits({ LADDER_YOUNG: '1' }), {
      maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB,
    });
    assert.equal(workerResourceLimits({ LADDER_YOUNG: '0' }), undefined);
  });

  it('keeps a churning worker at 1 MiB semi-spaces, where V8 defaults grow them', async () => {
    const capped = await newSpaceAfterChurn(workerResourceLimits({}));
    const grown = await newSpaceAfterChurn(undefined); // control: V8's default growth
    assert.ok(capped <= 2 * 1024 * 1024, `new space ${capped} bytes with the cap`);
    assert.ok(grown > 2 * capped, `new space ${grown} bytes without it (capped: ${capped})`);
  });
});
