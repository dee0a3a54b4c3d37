/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core) against a real
 * managed server: a key created in the UI carries traffic through `ladder client` to an echo
 * server; its usage shows in the table and the charts; a limit set in the UI below the usage
 * turns the badge to "limited" and the server refuses the key; three keys are disabled in bulk
 * (and only those); the copy and QR controls give exactly the API's URLs; no page logs an error
 * or has a failed request.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import QRCode from 'qrcode';
import { startClient } from '../../src/client/index.js';
import { tempDir } from '../api/helpers.js';
import { api, echoServer } from '../api/managed-helpers.js';
import { socks5Connect } from '../helpers/socks5.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';
import { chromiumPresent, launch, openPage, startDashboardServer } from './browser.js';

interface Key {
  id: string;
  name: string;
  method: string;
  password: string;
  port: number;
  enabled: boolean;
  accessUrl: string;
  dynamicAccessUrl: string;
  subscriptionUrl: string;
  state: string;
  dataUsed?: { bytes: number };
}

test(
  'dashboard: create a key, use it, see its usage, limit it, bulk-disable, copy and QR match the API',
  { skip: chromiumPresent(), timeout: 120_000 },
  async (t) => {
    const { cfg } = await startDashboardServer(t, tempDir(t));
    const echoPort = await echoServer(t);
    const keys = async (): Promise<Key[]> =>
      (JSON.parse((await api(cfg, 'GET', '/access-keys')).body) as { accessKeys: Key[] }).accessKeys;
    const browser = await launch(t);
    const { page, context, problems } = await openPage(browser);
    t.after(() => {
      if (problems.length) t.diagnostic(problems.join('\n'));
    });

    // <apiUrl> without the slash is sent to <apiUrl>/, the overview.
    const doc = await page.goto(cfg.apiUrl);
    assert.equal(new URL(page.url()).pathname, `${new URL(cfg.apiUrl).pathname}/`);
    assert.match((await doc!.allHeaders())['content-security-policy'] ?? '', /script-src 'self'/);
    await page.getByRole('heading', { name: 'Traffic, last 30 days' }).waitFor();

    // Create a key in the UI.
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('button', { name: 'Create keys' }).click();
    const create = page.getByRole('dialog');
    await create.getByLabel('Name').fill('ui-key');
    await create.getByRole('button', { name: 'Create' }).click();
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'ui-key' }) });
    await row.waitFor();
    const made = (await keys()).find((k) => k.name === 'ui-key');
    assert.ok(made, 'the key exists in the API');

    // Copy controls give the API's URLs; the QR code encodes the API's subscription URL.
    const copied = async (kind: string): Promise<string> => {
      await page.evaluate("navigator.clipboard.writeText('')");
      await row.locator(`[data-copy="${kind}"]`).click();
      return waitFor(() => page.evaluate<string>('navigator.clipboard.readText()'), {
        message: `clipboard after copying ${kind}`,
      });
    };
    assert.equal(await copied('ss'), made.accessUrl);
    assert.equal(await copied('dynamic'), made.dynamicAccessUrl);
    assert.equal(await copied('sub'), made.subscriptionUrl);
    const qrOf = async (text: string): Promise<string> =>
      QRCode.toString(text, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    await row.locator('[data-qr="sub"]').click();
    const img = page.getByRole('dialog').locator('img.qr');
    const src = (await img.getAttribute('src', { timeout: 10_000 }))!;
    const shown = decodeURIComponent(src.replace(/^data:image\/svg\+xml;charset=utf-8,/, ''));
    assert.equal(shown, await qrOf(made.subscriptionUrl), 'the QR code is the subscription URL');
    assert.notEqual(shown, await qrOf(made.accessUrl), 'control: another URL draws another code');
    await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();

    // Traffic through the real client with the copied ss:// key, to an echo server on loopback.
    const ssUrl = await copied('ss');
    const client = await startClient({ key: ssUrl, socks: '127.0.0.1:0' });
    t.after(() => client.close());
    const payload = Buffer.alloc(300_000, 7);
    const s = await socks5Connect({
      proxyPort: client.socksAddress!.port,
      host: '127.0.0.1',
      port: echoPort,
    });
    s.resume(); // socks5Connect hands the socket over paused
    let got = 0;
    await new Promise<void>((resolve, reject) => {
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= payload.length) resolve();
      });
      s.on('error', reject);
      s.write(payload);
    });
    s.destroy();
    assert.equal(got, payload.length, 'echoed through the key made in the UI');

    // Its usage appears in the table (after a refresh) and in the charts.
    await waitFor(
      async () => ((await keys()).find((k) => k.id === made.id)?.dataUsed?.bytes ?? 0) >= 2 * payload.length,
      {
        timeoutMs: 10_000,
        intervalMs: 100,
        message: 'usage counted',
      },
    );
    await page.getByRole('button', { name: 'Refresh' }).click();
    await waitFor(async () => /\b[56]\d\d\.\d\d KiB\b/.test(await row.locator('.usage-text').innerText()), {
      timeoutMs: 10_000,
      message: 'usage in the row',
    });
    await page.getByRole('link', { name: 'Overview' }).click();
    const todayBar = page.locator('.chart-bar').last();
    assert.ok(
      Number(await todayBar.getAttribute('data-bytes')) >= 2 * payload.length,
      'today in the overview chart',
    );
    assert.equal(await page.locator('.chart-bar').count(), 30);
    await page.getByRole('link', { name: 'Keys' }).click();
    await row.getByRole('link', { name: 'ui-key' }).click();
    await page.getByRole('heading', { name: 'Usage, last 30 days' }).waitFor();
    assert.ok(
      Number(await page.locator('.chart-bar').last().getAttribute('data-bytes')) >= 2 * payload.length,
      'today in the key chart',
    );
    // The QR images are drawn after the page's data arrives: wait for them (a loaded CI machine
    // counted 0 right after the heading), then check there is one per link.
    await waitFor(async () => (await page.locator('[data-link] img.qr').count()) >= 3, {
      timeoutMs: 10_000,
      message: 'a QR code per link on the key page',
    });
    assert.equal(await page.locator('[data-link] img.qr').count(), 3, 'a QR code per link on the key page');

    // A limit below the usage (0.0001 GiB = 107 kB), set in the UI: badge "limited", key refused.
    await page.getByRole('button', { name: 'Edit' }).click();
    await page.getByRole('dialog').getByLabel('Data limit (GiB, empty = none)').fill('0.0001');
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    await page.getByRole('link', { name: 'All keys' }).click();
    await waitFor(
      async () => {
        await page.getByRole('button', { name: 'Refresh' }).click();
        return (await row.locator('.badge').innerText()) === 'limited';
      },
      { timeoutMs: 10_000, intervalMs: 300, message: 'the "limited" badge' },
    );
    const refused = await openTestTunnel({
      port: made.port,
      method: made.method,
      password: made.password,
      target: { host: '127.0.0.1', port: echoPort },
    });
    refused.send(Buffer.from('ping'));
    await assert.rejects(refused.read(4, 1500), 'the server refuses the limited key');
    refused.destroy();
    assert.equal((await keys()).find((k) => k.id === made.id)?.state, 'over_limit');

    // Bulk: create three keys in the UI, select them, disable them; nothing else changes.
    await page.getByRole('button', { name: 'Create keys' }).click();
    await page.getByRole('dialog').getByLabel('How many').fill('3');
    await page.getByRole('dialog').getByLabel('Name').fill('bulk');
    await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    await page.getByRole('searchbox').fill('bulk');
    await waitFor(async () => (await page.locator('tbody tr').count()) === 3, {
      message: 'three bulk keys listed',
    });
    await page.getByRole('checkbox', { name: 'Select all shown' }).check();
    const calls: string[] = [];
    const record = (req: { method(): string; url(): string }): void => {
      if (req.method() !== 'GET')
        calls.push(`${req.method()} ${new URL(req.url()).pathname.replace(/^\/[^/]+/, '')}`);
    };
    page.on('request', record);
    await page.locator('[data-bulk="disable"]').click();
    await waitFor(async () => (await page.locator('tbody .badge', { hasText: 'disabled' }).count()) === 3, {
      message: 'three disabled badges',
    });
    page.off('request', record);
    assert.deepEqual(calls, ['POST /access-keys/bulk-action'], 'one call for the three keys');
    const after = await keys();
    const bulk = after.filter((k) => k.name.startsWith('bulk'));
    assert.equal(bulk.length, 3);
    assert.ok(
      bulk.every((k) => !k.enabled),
      'the three keys are disabled',
    );
    assert.ok(
      after.filter((k) => !k.name.startsWith('bulk')).every((k) => k.enabled),
      'control: the other keys are not',
    );

    // Every page once more, then: no console error, no failed request anywhere.
    for (const hash of ['#/', '#/keys', `#/keys/${made.id}`, '#/settings']) {
      await page.goto(`${cfg.apiUrl}/${hash}`);
      await page.locator('main h1').first().waitFor();
    }
    const seen = [...problems];
    await context.close(); // before the server stops under the page's polling
    assert.deepEqual(seen, []);
  },
);
