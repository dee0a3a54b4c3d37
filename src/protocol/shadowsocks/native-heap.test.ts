// tuneHeap (native/common.cc) and tuneHeapForRelay (native.ts): the malloc thresholds a relay
// process runs with. That they pay off is a bench figure (docs/benchmarks.md); here: they apply on
// glibc, arguments are checked, and nothing happens when the addon is switched off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  nativeAddon,
  nativeAvailable,
  nativeLoadError,
  setNativeEnabled,
  tuneHeapForRelay,
} from './native.js';
import { requireOrSkip } from '../../../test/helpers/prereq.js';

const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header
  ?.glibcVersionRuntime;

test('tuneHeapForRelay applies the thresholds on glibc, and is a no-op with the addon off', (t) => {
  if (!requireOrSkip(t, nativeAvailable(), `native addon unavailable (${nativeLoadError() ?? 'unknown'})`))
    return;
  assert.equal(typeof nativeAddon()!.tuneHeap, 'function', 'a stale addon without tuneHeap: rebuild it');
  assert.equal(tuneHeapForRelay(), glibc !== undefined);
  setNativeEnabled(false);
  try {
    assert.equal(tuneHeapForRelay(), false);
  } finally {
    setNativeEnabled(true);
  }
});

test('tuneHeap refuses thresholds that are not positive int32', (t) => {
  if (!requireOrSkip(t, nativeAvailable(), 'native addon unavailable')) return;
  const tune = nativeAddon()!.tuneHeap!.bind(nativeAddon());
  for (const bad of [
    [0, 1024],
    [1024, -1],
    [2 ** 31, 1024],
    [Number.NaN, 1024],
  ] as const) {
    assert.throws(() => tune(bad[0], bad[1]), /positive int32/, `tuneHeap(${bad.join(', ')})`);
  }
  assert.throws(() => (tune as unknown as (a?: number) => boolean)(1024), /tuneHeap\(trimBytes, mmapBytes\)/);
});
