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
 *   3. Where that time goes (one load, profile5021Keys): each API request's time to first byte,
 *      download and bytes; main-thread script/layout/style time (CDP); JSON.parse of the listing.
 *
 *   node --import tsx bench/dashboard.ts [--runs 5] [--json FILE]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type CDPSession, type Page } from 'playwright-core';
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

/** Chromium's own counters (CDP Performance.getMetrics): seconds of main-thread work by kind. */
const WORK = ['ScriptDuration', 'TaskDuration', 'LayoutDuration', 'RecalcStyleDuration'] as const;
type Work = Record<(typeof WORK)[number], number>;
async function work(cdp: CDPSession): Promise<Work> {
  const { metrics } = (await cdp.send('Performance.getMetrics')) as {
    metrics: { name: string; value: number }[];
  };
  const out = {} as Work;
  for (const w of WORK) out[w] = Math.round((metrics.find((x) => x.name === w)?.value ?? 0) * 1000);
  return out;
}
const minus = (a: Work, b: Work): Work => Object.fromEntries(WORK.map((w) => [w, a[w] - b[w]])) as Work;

/**
 * Where the time goes with 5,000 keys (one load): per API request the page made, the server's
 * time to first byte and the download (Resource Timing) and its bytes on the wire and decoded;
 * the main thread's script, layout and style time to the first row and for the filter (CDP); and
 * JSON.parse of the listing alone, timed in the page.
 */
async function profile(): Promise<unknown> {
  const page = await freshPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.goto(`${cfg.apiUrl}/#/keys`);
  await page.locator('tbody tr').first().waitFor({ timeout: 30_000 });
  const toRows = await work(cdp);
  await page.getByRole('searchbox').fill('4321');
  const oneRow = (): boolean =>
    (
      globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }
    ).document.querySelectorAll('tbody tr').length === 1;
  await page.waitForFunction(oneRow, undefined, { polling: 'raf' });
  const filter = minus(await work(cdp), toRows);
  type Entry = {
    name: string;
    requestStart: number;
    responseStart: number;
    responseEnd: number;
    transferSize: number;
    decodedBodySize: number;
  };
  const entries = await page.evaluate(() =>
    (globalThis as unknown as { performance: { getEntriesByType(t: string): Entry[] } }).performance
      .getEntriesByType('resource')
      .map((e) => ({
        name: e.name,
        requestStart: e.requestStart,
        responseStart: e.responseStart,
        responseEnd: e.responseEnd,
        transferSize: e.transferSize,
        decodedBodySize: e.decodedBodySize,
      })),
  );
  const requests = entries
    .filter((e) => !e.name.includes('/assets/'))
    .map((e) => ({
      path: new URL(e.name).pathname.replace(/^\/[^/]+/, '') + new URL(e.name).search,
      ttfbMs: Math.round(e.responseStart - e.requestStart),
      downloadMs: Math.round(e.responseEnd - e.responseStart),
      wireBytes: e.transferSize,
      bytes: e.decodedBodySize,
    }));
  const listing = requests.find((r) => r.path.startsWith('/access-keys'))?.path ?? '/access-keys';
  const parseMs = await page.evaluate(async (path) => {
    const text = await (await fetch(`.${path}`)).text();
    const t = performance.now();
    JSON.parse(text);
    return Math.round(performance.now() - t);
  }, listing);
  await page.context().close();
  return { requests, jsonParseMs: parseMs, mainThreadToRowsMs: toRows, mainThreadFilterMs: filter };
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
  const where = await profile();
  const result = {
    profile5021Keys: where,
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
