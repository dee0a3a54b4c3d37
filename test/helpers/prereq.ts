/**
 * The one rule for a prerequisite a test cannot provide itself (shadowsocks-libev peers, openssl,
 * curl, PostgreSQL, python3 with `cryptography`, the native addon): on a laptop a missing one is
 * reported loudly and the test skips; under CI=true it is a failure, so CI can never pass by
 * skipping. See docs/testing.md.
 *
 * Three ways in, one rule:
 *   - `{ skip: skipUnless(ok, what) }` on a describe/test, decided when the file loads;
 *   - `if (!requireOrSkip(t, ok, what)) return;` inside a test;
 *   - `prerequisiteMissing(what, instead)` when the test carries on in a reduced form.
 */
import type { TestContext } from 'node:test';
import { nativeLoadError } from '../../src/protocol/shadowsocks/native.js';

/** True when the environment says this is CI (CI=true), where nothing may be skipped. */
export function underCi(): boolean {
  return process.env.CI === 'true';
}

/**
 * Report a missing prerequisite: throws under CI=true; otherwise prints a loud banner (saying what
 * happens instead, `skipping` by default) and returns the skip reason.
 */
export function prerequisiteMissing(what: string, instead = 'skipping'): string {
  // Say why the addon did not load (not built, wrong version, a load error), so a failure in CI
  // names the cause rather than only the missing prerequisite.
  const why = /native addon/.test(what) ? nativeLoadError() : undefined;
  if (why) what = `${what} [addon: ${why}]`;
  if (underCi()) throw new Error(`${what}; CI=true, so this is a failure, not a skip`);
  console.error(`\n!!! ${instead.toUpperCase()}: ${what}\n`);
  return `SKIPPED: ${what}`;
}

/** For `{ skip: skipUnless(ok, what) }`: false when `ok`, else the (loud) reason or a CI failure. */
export function skipUnless(ok: boolean, what: string): string | false {
  return ok ? false : prerequisiteMissing(what);
}

/** Inside a test: true when `ok`; otherwise skips `t` loudly (returns false) or fails under CI. */
export function requireOrSkip(t: TestContext, ok: boolean, what: string): boolean {
  if (ok) return true;
  t.skip(prerequisiteMissing(what));
  return false;
}
