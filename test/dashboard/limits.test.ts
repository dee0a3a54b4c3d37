/**
 * A data limit of 0 and an expiry in the past in the dashboard: the Outline API's 0-byte limit is
 * a key that carries nothing, shown as "0 B (blocked)" (it showed "no limit" beside a "limited"
 * badge); the create and edit dialogs set one, or a past expiry, only when the button is pressed
 * again after a warning, and a plain edit of such a key says nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBinaryBytes } from '../../src/shared/bytes.js';
import { tempDir } from '../api/helpers.js';
import { waitFor } from '../helpers/wait.js';
import { api } from '../api/managed-helpers.js';
import { chromiumPresent, launch, openPage, startDashboardServer } from './browser.js';

interface Key {
  id: string;
  name: string;
  dataLimit?: { bytes: number };
  expiresAt?: string;
}

test(
  "dashboard: a 0 limit is shown as blocked; 0 GiB and a past expiry need a second press; sizes in the CLI's units",
  { skip: chromiumPresent(), timeout: 120_000 },
  async (t) => {
    const { cfg } = await startDashboardServer(t, tempDir(t));
    const keys = async (): Promise<Key[]> =>
      (JSON.parse((await api(cfg, 'GET', '/access-keys')).body) as { accessKeys: Key[] }).accessKeys;
    // A key blocked through the API, as Outline Manager does it.
    const made = JSON.parse(
      (await api(cfg, 'POST', '/access-keys', { name: 'api-zero', limit: { bytes: 0 } })).body,
    ) as Key;
    assert.equal(made.dataLimit?.bytes, 0);
    const browser = await launch(t);
    const { page, problems } = await openPage(browser);
    t.after(() => {
      if (problems.length) t.diagnostic(problems.join('\n'));
    });
    await page.goto(`${cfg.apiUrl}/#/keys`);
    const rowOf = (name: string) => page.locator('tr', { has: page.getByRole('link', { name }) });
    const usage = rowOf('api-zero').locator('.usage-text');
    await usage.waitFor();
    assert.match((await usage.textContent())!, /^0 B \/ 0 B \(blocked\)$/);
    await page.getByRole('link', { name: 'api-zero' }).click();
    await page.getByText('0 B (blocked)', { exact: false }).first().waitFor();
    await page.goto(`${cfg.apiUrl}/#/keys`);

    // Create with 0 GiB: a warning, no key; the second press creates it.
    await page.getByRole('button', { name: 'Create keys' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('ui-zero');
    await dialog.locator('[data-field="limit"]').fill('0');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await dialog
      .getByRole('alert')
      .getByText(/A limit of 0 GiB blocks the key/)
      .waitFor();
    assert.equal((await keys()).filter((k) => k.name === 'ui-zero').length, 0, 'not created yet');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await keys()).find((k) => k.name === 'ui-zero')?.dataLimit?.bytes, 0);

    // Create with an expiry in the past: the same.
    await page.getByRole('button', { name: 'Create keys' }).click();
    await dialog.getByLabel('Name').fill('ui-past');
    await dialog.getByLabel(/Expires/).fill('2020-01-01');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await dialog
      .getByRole('alert')
      .getByText(/This date is in the past/)
      .waitFor();
    assert.equal((await keys()).filter((k) => k.name === 'ui-past').length, 0, 'not created yet');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.match((await keys()).find((k) => k.name === 'ui-past')?.expiresAt ?? '', /^2020-01-01/);

    // Editing the blocked key's name says nothing about its 0 limit and keeps it.
    await rowOf('api-zero').getByRole('button', { name: 'Edit' }).click();
    await dialog.getByLabel('Name').fill('api-zero-2');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    const renamed = (await keys()).find((k) => k.id === made.id);
    assert.equal(renamed?.name, 'api-zero-2');
    assert.equal(renamed?.dataLimit?.bytes, 0);

    // Sizes read as `ladder keys` prints them (binary units: it said "524 MB" where the CLI says
    // "500.00 MiB"), and the limit field is in GiB: 1.5 there is 1.5 GiB, shown "1.50 GiB".
    const mib500 = 500 * 2 ** 20;
    assert.equal(formatBinaryBytes(mib500), '500.00 MiB');
    await api(cfg, 'PUT', `/access-keys/${made.id}/data-limit`, { limit: { bytes: mib500 } });
    await page.getByRole('button', { name: 'Refresh' }).click();
    await waitFor(
      async () => (await rowOf('api-zero-2').locator('.usage-text').innerText()) === '0 B / 500.00 MiB',
      {
        timeoutMs: 10_000,
        message: 'the row shows 500.00 MiB',
      },
    );
    await rowOf('api-zero-2').getByRole('button', { name: 'Edit' }).click();
    // Three significant digits, not 0.48828125.
    assert.equal(await dialog.getByLabel('Data limit (GiB, empty = none)').inputValue(), '0.488');
    await dialog.getByLabel('Data limit (GiB, empty = none)').fill('1.5');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await keys()).find((k) => k.id === made.id)?.dataLimit?.bytes, 1.5 * 2 ** 30);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await waitFor(
      async () => (await rowOf('api-zero-2').locator('.usage-text').innerText()) === '0 B / 1.50 GiB',
      {
        timeoutMs: 10_000,
        message: 'the row shows 1.50 GiB',
      },
    );

    // A limit set in GB elsewhere (`ladder keys limit 2 5GB`, the API): the field shows 4.66 (as
    // the row's 4.66 GiB), not 4.656612873077393, and a save that leaves it as shown keeps the
    // limit to the byte (the rounded figure is not written back); a typed one is taken.
    await api(cfg, 'PUT', `/access-keys/${made.id}/data-limit`, { limit: { bytes: 5e9 } });
    await page.getByRole('button', { name: 'Refresh' }).click();
    await waitFor(
      async () => (await rowOf('api-zero-2').locator('.usage-text').innerText()) === '0 B / 4.66 GiB',
      { timeoutMs: 10_000, message: 'the row shows 4.66 GiB' },
    );
    const limitField = dialog.getByLabel('Data limit (GiB, empty = none)');
    await rowOf('api-zero-2').getByRole('button', { name: 'Edit' }).click();
    assert.equal(await limitField.inputValue(), '4.66');
    await dialog.getByLabel('Name').fill('gb-limit');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    const kept = (await keys()).find((k) => k.id === made.id);
    assert.deepEqual([kept?.name, kept?.dataLimit?.bytes], ['gb-limit', 5e9], 'renamed, limit unchanged');
    await rowOf('gb-limit').getByRole('button', { name: 'Edit' }).click();
    await limitField.fill('4.5');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await keys()).find((k) => k.id === made.id)?.dataLimit?.bytes, 4.5 * 2 ** 30);

    // The settings page's default limit: the same.
    await api(cfg, 'PUT', '/server/access-key-data-limit', { limit: { bytes: 10e9 } });
    await page.goto(`${cfg.apiUrl}/#/settings`);
    const defaultField = page.getByLabel('Default data limit (GiB, empty = none)');
    await defaultField.waitFor();
    assert.equal(await defaultField.inputValue(), '9.31');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved').first().waitFor();
    const server = JSON.parse((await api(cfg, 'GET', '/server')).body) as {
      accessKeyDataLimit?: { bytes: number };
    };
    assert.equal(server.accessKeyDataLimit?.bytes, 10e9, 'a save leaves the default limit as it was');
  },
);
