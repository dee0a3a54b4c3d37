/**
 * What the dashboard tests share: the dashboard built once into a temporary folder (so a test
 * always sees the current web/src), a managed server serving it, and Debian's Chromium driven by
 * playwright-core, with every console error, failed request and HTTP error of a page recorded.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startManaged, type ManagedServer } from '../../src/cli/managed.js';
import { silentLogger } from '../../src/shared/logger.js';
import { flags } from '../api/managed-helpers.js';
import { REPO_ROOT } from '../helpers/peers.js';
import { prerequisiteMissing } from '../helpers/prereq.js';

export const CHROMIUM = '/usr/bin/chromium';
/** Headless Chromium as the tests and bench/dashboard.ts run it (playwright-core adds a fresh --user-data-dir). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

let built: string | undefined;
/** The dashboard built from web/src into a temporary folder (once per test process). */
export function buildDashboard(): string {
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), 'ladder-web-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-web.mjs'), join(dir, 'dist')], {
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 60_000,
  });
  built = join(dir, 'dist');
  return built;
}

/** True when Chromium is there; otherwise skips loudly (a failure under CI=true). */
export function chromiumPresent(): string | false {
  return existsSync(CHROMIUM)
    ? false
    : prerequisiteMissing(`${CHROMIUM} is missing (apt-get install chromium)`);
}

export interface Dashboard {
  m: ManagedServer;
  cfg: { apiUrl: string; certSha256: string };
  dir: string;
}

export async function startDashboardServer(t: TestContext, dataDir: string): Promise<Dashboard> {
  const dir = buildDashboard();
  const m = await startManaged(flags(dataDir), silentLogger, {
    usageFlushMs: 200,
    enforceIntervalMs: 300,
    drawQr: false,
    dashboardDir: dir,
  });
  t.after(() => m.close());
  const line = m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'))!;
  return { m, cfg: JSON.parse(line) as Dashboard['cfg'], dir };
}

export async function launch(t: TestContext): Promise<Browser> {
  // playwright-core starts Chromium with a fresh temporary --user-data-dir of its own.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: CHROMIUM_ARGS,
  });
  t.after(() => browser.close());
  return browser;
}

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Console errors, failed requests and HTTP error responses seen so far. */
  problems: string[];
}

/** A page in a context of its own (language `locale`), recording everything that went wrong. */
export async function openPage(browser: Browser, locale = 'en-US'): Promise<WatchedPage> {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    locale,
    viewport: { width: 1280, height: 800 },
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) =>
    problems.push(
      `failed: ${req.method()} ${new URL(req.url()).pathname.replace(/^\/[^/]+/, '/PREFIX')}: ${req.failure()?.errorText}`,
    ),
  );
  page.on('response', (res) => {
    if (res.status() >= 400)
      problems.push(`HTTP ${res.status()}: ${new URL(res.url()).pathname.replace(/^\/[^/]+/, '/PREFIX')}`);
  });
  return { page, context, problems };
}
