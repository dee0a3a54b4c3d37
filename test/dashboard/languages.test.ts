/**
 * Each language of the dashboard renders (English, 简体中文, فارسی right to left, Русский), with
 * counts in the language's plural forms, is chosen from the browser's language and switchable with the choice kept; axe-core finds no
 * serious or critical accessibility violation on any page; no page logs an error.
 * LADDER_SCREENSHOTS=docs writes docs/dashboard-<lang>.png (the keys page) for the docs;
 * otherwise the screenshots go to a temporary folder.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { tempDir } from '../api/helpers.js';
import { api } from '../api/managed-helpers.js';
import { REPO_ROOT } from '../helpers/peers.js';
import { chromiumPresent, launch, openPage, startDashboardServer } from './browser.js';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const LANGS = [
  {
    code: 'en',
    locale: 'en-US',
    tag: 'en',
    dir: 'ltr',
    keys: 'Keys',
    settings: 'Settings',
    four: '(4 keys)',
  },
  {
    code: 'zh',
    locale: 'zh-CN',
    tag: 'zh-CN',
    dir: 'ltr',
    keys: '密钥',
    settings: '设置',
    four: '(4 个密钥)',
  },
  {
    code: 'fa',
    locale: 'fa-IR',
    tag: 'fa',
    dir: 'rtl',
    keys: 'کلیدها',
    settings: 'تنظیمات',
    four: '(۴ کلید)',
  },
  {
    code: 'ru',
    locale: 'ru-RU',
    tag: 'ru',
    dir: 'ltr',
    keys: 'Ключи',
    settings: 'Настройки',
    four: '(4 ключа)',
  },
] as const;

interface AxeResult {
  violations: { id: string; impact: string | null; help: string; nodes: unknown[] }[];
}

/** axe-core run inside the page (evaluated by the driver, so the page's CSP does not apply). */
async function seriousViolations(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  const r = await page.evaluate<AxeResult>('axe.run(document, { resultTypes: ["violations"] })');
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} x${v.nodes.length}`);
}

/** The part of a DOM Range the layout check uses (this file has no DOM types). */
interface PageRange {
  setStart(node: unknown, offset: number): void;
  setEnd(node: unknown, offset: number): void;
  getBoundingClientRect(): { x: number };
}

test(
  'dashboard languages, right to left, switcher, accessibility (axe-core), screenshots',
  { skip: chromiumPresent(), timeout: 120_000 },
  async (t) => {
    const { cfg } = await startDashboardServer(t, tempDir(t));
    // With the key the first start made: 4 keys, a count Russian writes "4 ключа" (few), not "ключей".
    // 5 GiB: the docs screenshots show "5.00 GiB", the unit the dashboard and `ladder keys` print.
    for (const [i, name] of ['Amina', 'Wei', 'Olga'].entries()) {
      const r = await api(cfg, 'POST', '/access-keys', {
        name,
        ...(i === 1 ? { limit: { bytes: 5 * 2 ** 30 }, dataLimitPeriod: 'monthly' } : {}),
      });
      assert.equal(r.status, 201);
    }
    const ids = (
      JSON.parse((await api(cfg, 'GET', '/access-keys')).body) as { accessKeys: { id: string }[] }
    ).accessKeys.map((k) => k.id);
    assert.equal((await api(cfg, 'PUT', `/access-keys/${ids[3]}/enabled`, { enabled: false })).status, 204);
    const shots =
      process.env.LADDER_SCREENSHOTS === 'docs'
        ? join(REPO_ROOT, 'docs')
        : mkdtempSync(join(tmpdir(), 'ladder-shots-'));
    if (process.env.LADDER_SCREENSHOTS !== 'docs')
      t.after(() => rmSync(shots, { recursive: true, force: true }));
    const browser = await launch(t);

    for (const lang of LANGS) {
      const { page, context, problems } = await openPage(browser, lang.locale);
      await page.goto(`${cfg.apiUrl}/#/keys`);
      await page.locator('tbody tr').first().waitFor();
      assert.equal(
        await page.getAttribute('html', 'lang'),
        lang.tag,
        `${lang.code}: chosen from the browser's language`,
      );
      assert.equal(await page.getAttribute('html', 'dir'), lang.dir, `${lang.code}: direction`);
      // The count in the language's plural form (Russian: 4 ключа, not 4 ключей).
      assert.equal(await page.locator('main h1 small').textContent(), lang.four, `${lang.code}: key count`);
      assert.equal(await page.getByRole('link', { name: lang.keys }).getAttribute('aria-current'), 'page');
      if (lang.dir === 'rtl') {
        const nav = await page.locator('nav a').first().boundingBox();
        const brand = await page.locator('.brand').boundingBox();
        assert.ok(nav && brand && brand.x > nav.x, 'right to left: the brand is at the right');
        // "used / limit" reads from the right: the used amount (0 B) right of the limit (5.00 GiB),
        // each amount whole (the Latin unit beside its number, not reordered across the slash).
        const [used, limit] = await page
          .locator('tr', { hasText: 'Wei' })
          .locator('.usage-text .amount')
          .all();
        const [u, l] = [await used?.boundingBox(), await limit?.boundingBox()];
        assert.ok(u && l && u.x > l.x + l.width - 1, `${lang.code}: used amount right of the limit`);
        assert.match((await limit!.innerText()).trim(), /GiB$/, `${lang.code}: the limit's unit with it`);
        // Within an amount, the page's reading order: the number first (at the right), its unit after.
        // (The page's globals through globalThis: this file is type-checked as Node code. No named
        // function inside: tsx would wrap it in a helper the page does not have.)
        const [digitX = 0, unitX = 0] = await limit!.evaluate((el) =>
          [0, (el.textContent ?? '').length - 1].map((i) => {
            const page = globalThis as unknown as { document: { createRange(): PageRange } };
            const r = page.document.createRange();
            r.setStart(el.firstChild, i);
            r.setEnd(el.firstChild, i + 1);
            return r.getBoundingClientRect().x;
          }),
        );
        assert.ok(digitX > unitX, `${lang.code}: the number right of its unit (${digitX} / ${unitX})`);
      }
      await page.screenshot({ path: join(shots, `dashboard-${lang.code}.png`) });
      // Every page in English and in Persian (right to left); the keys page in the others (the
      // pages share their parts, and each axe-core run takes seconds on this machine).
      const pages =
        lang.code === 'en' || lang.code === 'fa'
          ? ['#/', '#/keys', `#/keys/${ids[1]}`, '#/settings']
          : ['#/keys'];
      for (const hash of pages) {
        await page.goto(`${cfg.apiUrl}/${hash}`);
        await page.locator('main h1').first().waitFor();
        assert.deepEqual(await seriousViolations(page), [], `${lang.code} ${hash}: axe-core`);
      }
      const seen = [...problems];
      await context.close();
      assert.deepEqual(seen, [], `${lang.code}: no console error or failed request`);
    }

    // The switcher: English browser, Persian chosen, kept after a reload.
    const { page, context, problems } = await openPage(browser, 'en-US');
    await page.goto(`${cfg.apiUrl}/#/settings`);
    await page.getByRole('combobox', { name: 'Language' }).selectOption('fa');
    await page.getByRole('link', { name: 'تنظیمات' }).waitFor();
    assert.equal(await page.getAttribute('html', 'dir'), 'rtl');
    await page.reload();
    await page.getByRole('link', { name: 'تنظیمات' }).waitFor();
    assert.equal(await page.getAttribute('html', 'lang'), 'fa', 'the choice is kept');
    await page.getByRole('combobox', { name: 'زبان' }).selectOption('en');
    await page.getByRole('link', { name: 'Settings' }).waitFor();
    assert.equal(await page.getAttribute('html', 'dir'), 'ltr');
    // Negative control: a button without a name is a critical violation axe-core reports.
    await page.evaluate("document.querySelector('main').append(document.createElement('button'))");
    assert.match((await seriousViolations(page)).join('\n'), /button-name \(critical\)/);
    const seen = [...problems];
    await context.close();
    assert.deepEqual(seen, []);
  },
);
