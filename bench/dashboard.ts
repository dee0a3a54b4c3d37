/**
 * The dashboard's weight and speed (issue 17; a bench, not a test): a managed server serving a
 * fresh build of web/, driven by Debian's Chromium (playwright-core).
 *
 *   1. First load of the keys page (#/keys, empty cache) with the server's initial key plus 20:
 *      bytes on the wire for every response (compressed bodies + headers, as Chromium reports
 *      them), split into the app (HTML, script, style) and the API's JSON. Target < 300 KB.
 *   2. 5,000 keys: time from navigation to the first table row (TLS, app, API and render), from
 *      the API's answers to that row (the browser's own work on 5,000 keys), and to filter them
 *      (a search typed, until the table shows the one match), median of --runs. Target < 1 s.
 *
 *   node --import tsx bench/dashboard.ts [--runs 5] [--json FILE]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { startManaged } from '../src/cli/managed.js';
import { silentLogger } from '../src/shared/logger.js';
import { api, flags } from '../test/api/managed-helpers.js';
import { buildDashboard, CHROMIUM, CHROMIUM_ARGS } from '../test/dashboard/browser.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const runs = Number(arg('runs', '5'));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dataDir = mkdtempSync(join(tmpdir(), 'ladder-bench-dash-'));
const m = await startManaged(flags(dataDir), silentLogger, { drawQr: false, dashboardDir: buildDashboard() });
const cfg = JSON.parse(m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'))!) as {
  apiUrl: string;
  certSha256: string;
};
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: CHROMIUM_ARGS,
});

async function freshPage(): Promise<Page> {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
  });
  return context.newPage();
}

async function firstLoad(): Promise<{ app: number; api: number; files: number }> {
  const page = await freshPage();
  const sizes: Promise<{ path: string; bytes: number }>[] = [];
  page.on('requestfinished', (req) => {
    sizes.push(
      req.sizes().then((s) => ({
        path: new URL(req.url()).pathname,
        bytes: s.responseBodySize + s.responseHeadersSize,
      })),
    );
  });
  await page.goto(`${cfg.apiUrl}/#/keys`);
  await page.locator('tbody tr').first().waitFor();
  await page.waitForLoadState('networkidle');
  const all = await Promise.all(sizes);
  await page.context().close();
  const isApp = (p: string): boolean => p.endsWith('/') || p.includes('/assets/');
  return {
    app: all.filter((s) => isApp(s.path)).reduce((n, s) => n + s.bytes, 0),
    api: all.filter((s) => !isApp(s.path)).reduce((n, s) => n + s.bytes, 0),
    files: all.length,
  };
}

async function bigTable(): Promise<{ renderMs: number; afterDataMs: number; filterMs: number }> {
  const page = await freshPage();
  const t0 = performance.now();
  let dataAt = 0; // when the last API answer the table waits for arrived
  page.on('requestfinished', (r) => {
    if (/\/(access-keys|server)$/.test(new URL(r.url()).pathname))
      dataAt = Math.max(dataAt, performance.now());
  });
  await page.goto(`${cfg.apiUrl}/#/keys`);
  await page.locator('tbody tr').first().waitFor({ timeout: 30_000 });
  const renderMs = performance.now() - t0;
  const afterDataMs = performance.now() - dataAt;
  const t1 = performance.now();
  await page.getByRole('searchbox').fill('4321'); // the one key whose id holds 4321 (bulk names repeat per batch);
  // A function, not a string: the page's CSP forbids eval.
  const oneRow = (): boolean =>
    (
      globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }
    ).document.querySelectorAll('tbody tr').length === 1;
  await page.waitForFunction(oneRow, undefined, { polling: 'raf' });
  const filterMs = performance.now() - t1;
  await page.context().close();
  return { renderMs, afterDataMs, filterMs };
}

try {
  const created = await api(cfg, 'POST', '/access-keys/bulk', { count: 20, name: 'small' });
  if (created.status !== 201) throw new Error(`bulk create: ${created.status}`);
  const light = await firstLoad();
  for (let i = 0; i < 5; i++) await api(cfg, 'POST', '/access-keys/bulk', { count: 1000, name: 'bulk' });
  const heavy = await firstLoad();
  const render: number[] = [];
  const filter: number[] = [];
  const afterData: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await bigTable();
    render.push(r.renderMs);
    afterData.push(r.afterDataMs);
    filter.push(r.filterMs);
  }
  const result = {
    firstLoad21Keys: {
      appBytes: light.app,
      apiBytes: light.api,
      totalBytes: light.app + light.api,
      responses: light.files,
    },
    firstLoad5021Keys: { appBytes: heavy.app, apiBytes: heavy.api, totalBytes: heavy.app + heavy.api },
    keys5021: {
      navigationToRowsMsMedian: Math.round(median(render)),
      dataToRowsMsMedian: Math.round(median(afterData)),
      filterMsMedian: Math.round(median(filter)),
      render: render.map(Math.round),
      afterData: afterData.map(Math.round),
      filter: filter.map(Math.round),
    },
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
  };
  console.log(JSON.stringify(result, null, 2));
  const out = arg('json', '');
  if (out) writeFileSync(out, `${JSON.stringify(result)}\n`);
} finally {
  await browser.close();
  await m.close();
  rmSync(dataDir, { recursive: true, force: true });
}
