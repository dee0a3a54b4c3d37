/**
 * Device and speed limits in the dashboard (docs/limits.md) in a real browser against a real
 * managed server: a key created with both shows them in the table and on its page; one edit
 * changes the device limit and removes the speed limit (the API then has exactly that); a bad
 * device count is refused in the dialog, naming the field, and changes nothing. A device-limited
 * key shows how many devices use it now, as the server counts them (devicesInUse: none here).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDir } from '../api/helpers.js';
import { api } from '../api/managed-helpers.js';
import { waitFor } from '../helpers/wait.js';
import { chromiumPresent, launch, openPage, startDashboardServer } from './browser.js';

interface Key {
  id: string;
  name: string;
  deviceLimit?: { devices: number };
  speedLimit?: { bytesPerSecond: number };
}

test(
  'dashboard: create a key with a device and a speed limit, see both, edit one and remove the other',
  { skip: chromiumPresent(), timeout: 120_000 },
  async (t) => {
    const { cfg } = await startDashboardServer(t, tempDir(t));
    const keys = async (): Promise<Key[]> =>
      (JSON.parse((await api(cfg, 'GET', '/access-keys')).body) as { accessKeys: Key[] }).accessKeys;
    const browser = await launch(t);
    const { page, problems } = await openPage(browser);
    t.after(() => {
      if (problems.length) t.diagnostic(problems.join('\n'));
    });
    await page.goto(`${cfg.apiUrl}/#/keys`);

    // Create: 2 devices, 10 Mbit/s.
    await page.getByRole('button', { name: 'Create keys' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('lim');
    await dialog.getByLabel(/^Device limit/).fill('2');
    await dialog.getByLabel(/^Speed limit/).fill('10');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await dialog.waitFor({ state: 'detached' });
    let made = (await keys()).find((k) => k.name === 'lim');
    assert.deepEqual(made?.deviceLimit, { devices: 2 });
    assert.deepEqual(made?.speedLimit, { bytesPerSecond: 1_250_000 });
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'lim' }) });
    await row.waitFor();
    assert.equal(await row.locator('[data-limits]').innerText(), '2 devices at once (0 in use) · 10 Mbit/s');

    // A bad device count: refused in the dialog, naming the field; nothing changes.
    await row.getByRole('button', { name: 'Edit' }).click();
    await dialog.getByLabel(/^Device limit/).fill('0');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog
      .getByRole('alert')
      .getByText(/Device limit: 1–10000, got 0/)
      .waitFor();
    assert.deepEqual((await keys()).find((k) => k.name === 'lim')?.deviceLimit, { devices: 2 });

    // One edit: 5 devices, the speed limit removed (its field emptied).
    await dialog.getByLabel(/^Device limit/).fill('5');
    await dialog.getByLabel(/^Speed limit/).fill('');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    made = (await keys()).find((k) => k.name === 'lim');
    assert.deepEqual(made?.deviceLimit, { devices: 5 });
    assert.equal(made?.speedLimit, undefined);
    await waitFor(
      async () => (await row.locator('[data-limits]').innerText()) === '5 devices at once (0 in use)',
      {
        timeoutMs: 10_000,
        intervalMs: 100,
        message: 'the table shows the new limits',
      },
    );

    // The key's page shows each limit.
    await page.getByRole('link', { name: 'lim' }).click();
    const card = (name: string) => page.locator(`[data-card="${name}"] .card-text`);
    await card('device-limit').waitFor();
    assert.equal(await card('device-limit').innerText(), '5 devices at once (0 in use)');
    assert.equal(await card('speed-limit').innerText(), 'no limit');
    assert.deepEqual(problems, []);
  },
);
