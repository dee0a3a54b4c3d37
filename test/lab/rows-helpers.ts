/** Picking `lab run` rows by name and reading them from a survival report (web-rows, shadowtls-rows). */
import assert from 'node:assert/strict';
import type { ContenderReport, SurvivalReport } from '../../src/lab/survival.js';
import { labContenders } from '../../src/cli/commands/lab.js';

/** `lab run`'s contenders with these exact names. */
export const pick = (...names: string[]) => labContenders().filter((c) => names.includes(c.name));

/** The row of that name; it must have run without an error. */
export function row(r: SurvivalReport, name: string): ContenderReport {
  const c = r.contenders.find((x) => x.name === name);
  assert.ok(c, `row ${name}`);
  assert.equal(c.error, undefined, `${name}: ${c.error}`);
  return c;
}

/** "ok/total" of a row's requests. */
export const ok = (c: ContenderReport) => `${c.requests.ok}/${c.requests.total}`;
