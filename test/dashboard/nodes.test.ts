/**
 * The dashboard's Nodes page in Debian's Chromium against a fleet of two nodes on a real
 * PostgreSQL: node A in this process (serving the dashboard built from web/src), node B a real
 * `ladder server --node b` process. The page lists both; blocking B in the UI (with a reason)
 * shows in GET /nodes and takes B out of the dynamic key (GET of the key's access URL, SIP008),
 * unblocking brings it back; draining A takes A out; an address added in the UI is listed first;
 * a bad address is refused in the dialog; B stopped shows down and is removed in the UI; axe-core
 * finds nothing serious (English and Persian); no console error or unexpected failed request.
 * LADDER_SCREENSHOTS=docs writes docs/dashboard-nodes.png (B blocked).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { startManaged } from '../../src/cli/managed.js';
import { silentLogger } from '../../src/shared/logger.js';
import { api } from '../api/managed-helpers.js';
import { startNodeProc, stopProc } from '../fleet/fleet-helpers.js';
import { freePort } from '../helpers/net.js';
import { REPO_ROOT } from '../helpers/peers.js';
import { SKIP_WITHOUT_POSTGRES, startPostgres } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';
import { buildDashboard, chromiumPresent, launch, openPage } from './browser.js';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const A = '127.0.0.2';
const B = '127.0.0.3';

interface Fallback {
  hostnameForAccessKeys: string;
  warning: string;
}

interface NodesJson {
  self: { name: string };
  listed: string[];
  keysFallback?: Fallback;
  nodes: { name: string; status: string; stateReason?: string; addresses: string[] }[];
}

async function seriousViolations(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  const r = await page.evaluate<{ violations: { id: string; impact: string | null; nodes: unknown[] }[] }>(
    'axe.run(document, { resultTypes: ["violations"] })',
  );
  return r.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}) x${v.nodes.length}`);
}

test(
  'dashboard Nodes page: two fleet nodes on PostgreSQL; block, unblock, drain, add address, remove in the UI',
  { skip: chromiumPresent() || SKIP_WITHOUT_POSTGRES, timeout: 180_000 },
  async (t) => {
    const pg = await startPostgres();
    t.after(() => pg.destroy());
    const dir = mkdtempSync(join(tmpdir(), 'ladder-dashnodes-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const a = await startManaged(
      {
        dataDir: join(dir, 'a'),
        store: pg.url,
        node: 'a',
        port: String(port),
        host: A,
        publicHost: A,
        apiPort: '0',
        apiHost: A,
        metrics: false,
        allowPrivate: true,
      },
      silentLogger,
      { drawQr: false, dashboardDir: buildDashboard() },
    );
    t.after(() => a.close());
    const cfg = JSON.parse(a.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'))!) as {
      apiUrl: string;
      certSha256: string;
    };
    const prefix = new URL(cfg.apiUrl).pathname.slice(1);
    const b = await startNodeProc({
      name: 'b',
      host: B,
      dataDir: join(dir, 'b'),
      pgUrl: pg.url,
      port,
      apiPrefix: () => Promise.resolve(prefix),
    });
    t.after(() => stopProc(b.run));

    const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const r = await api(cfg, method, path, body);
      assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${r.body}`);
      return (r.body ? JSON.parse(r.body) : undefined) as T;
    };
    const nodes = (): Promise<NodesJson> => call<NodesJson>('GET', '/nodes');
    const node = async (name: string) => (await nodes()).nodes.find((n) => n.name === name);
    const key = await call<{ dynamicAccessUrl: string }>('POST', '/access-keys', { name: 'phone' });
    const token = /\/access\/([^/?#]+)/.exec(key.dynamicAccessUrl)![1]!;
    /** The hosts the key's dynamic access URL lists now (its SIP008 form). */
    const listedHosts = async (): Promise<string[]> => {
      const doc = await call<{ servers: { server: string }[] }>('GET', `/../access/${token}?format=sip008`);
      return [...new Set(doc.servers.map((s) => s.server))].sort();
    };
    assert.deepEqual(await listedHosts(), [A, B], 'both nodes are in the key at first');
    const status = await call<{ fleet?: { nodes: number } }>('GET', '/server/status');
    assert.deepEqual(status.fleet, { nodes: 2 }, 'GET /server/status reports the fleet on a fleet node');

    const browser = await launch(t);
    const { page, context, problems } = await openPage(browser, 'en-US');
    t.after(() => context.close());
    await page.goto(`${cfg.apiUrl}/#/`);
    assert.equal(await page.getByTestId('fleet-nodes').innerText(), '2', 'the overview counts the nodes');
    await page.getByRole('link', { name: 'Nodes' }).click();
    await page.getByRole('heading', { name: 'Nodes' }).waitFor();
    const row = (name: string) => page.locator(`tr[data-node="${name}"]`);
    const badge = (name: string) => row(name).locator('[data-status]');
    await row('a').waitFor();
    await row('b').waitFor();
    assert.equal(await badge('a').getAttribute('data-status'), 'active');
    assert.equal(await badge('b').getAttribute('data-status'), 'active');
    assert.match(await row('a').innerText(), /this node/);
    assert.match(
      await row('b').innerText(),
      new RegExp(`${B.replace(/\./g, '\\.')}[\\s\\S]*Shadowsocks ${port}`),
    );
    assert.deepEqual(await seriousViolations(page), [], 'axe-core, English');

    // Block B with a reason in the UI.
    const reason = 'blocked in AS64500';
    await row('b').getByRole('button', { name: 'Block' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Reason (optional)').fill(reason);
    await dialog.getByRole('button', { name: 'Block' }).click();
    await row('b').locator('[data-status="blocked"]').waitFor();
    assert.match(await row('b').innerText(), /blocked in AS64500/);
    assert.deepEqual(await node('b').then((n) => [n?.status, n?.stateReason]), ['blocked', reason]);
    assert.deepEqual(await listedHosts(), [A], 'a blocked node leaves the dynamic key');
    assert.equal(await row('b').locator('[data-listed]').getAttribute('data-listed'), 'false');
    if (process.env.LADDER_SCREENSHOTS === 'docs')
      await page.screenshot({ path: join(REPO_ROOT, 'docs', 'dashboard-nodes.png') });

    // Unblock brings it back.
    await row('b').getByRole('button', { name: 'Unblock' }).click();
    await row('b').locator('[data-status="active"]').waitFor();
    assert.equal((await node('b'))?.status, 'active');
    assert.deepEqual(await listedHosts(), [A, B], 'unblocked: back in the dynamic key');

    // Drain A (this node): it leaves the key, B stays; undrain.
    await row('a').getByRole('button', { name: 'Drain' }).click();
    await row('a').locator('[data-status="draining"]').waitFor();
    assert.deepEqual(await listedHosts(), [B], 'a draining node leaves the dynamic key');
    await row('a').getByRole('button', { name: 'Unblock' }).click();
    await row('a').locator('[data-status="active"]').waitFor();

    // Add an address to B: listed first, in the page, the API and the key.
    const fresh = '198.51.100.7';
    await row('b').getByRole('button', { name: 'Add address' }).click();
    await dialog.getByLabel(/^Address/).fill(fresh);
    await dialog.getByRole('button', { name: 'Add address' }).click();
    await dialog.waitFor({ state: 'detached' });
    await row('b').getByText(fresh).waitFor();
    assert.deepEqual((await node('b'))?.addresses, [fresh, B]);
    assert.deepEqual(await listedHosts(), [fresh, A, B].sort());
    // A bad address: the API's one-line refusal in the dialog, nothing added.
    await row('b').getByRole('button', { name: 'Add address' }).click();
    await dialog.getByLabel(/^Address/).fill('not a host!');
    await dialog.getByRole('button', { name: 'Add address' }).click();
    assert.match(await dialog.getByRole('alert').innerText(), /Invalid "address"/);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.deepEqual((await node('b'))?.addresses, [fresh, B]);
    // The refusal is the only problem so far (Chromium logs the 400 to the console too).
    const expected = [
      'HTTP 400: /PREFIX/nodes/b/addresses',
      'console: Failed to load resource: the server responded with a status of 400 (Bad Request)',
    ];
    await waitFor(() => expected.every((e) => problems.includes(e)), { message: () => problems.join('\n') });
    assert.deepEqual([...problems].sort(), expected.sort(), 'only the expected refusal');
    problems.length = 0;

    // Remove is offered only once B is down; B stopped cleanly is down at once.
    assert.equal(await row('b').getByRole('button', { name: 'Remove' }).count(), 0, 'no Remove while up');
    await stopProc(b.run);
    await row('b').locator('[data-status="down"]').waitFor();
    assert.match(await row('b').innerText(), /stopped/);
    await row('b').getByRole('button', { name: 'Remove' }).click();
    await dialog.getByRole('button', { name: 'Remove' }).click();
    await row('b').waitFor({ state: 'detached' });
    await waitFor(async () => (await nodes()).nodes.length === 1, { timeoutMs: 5000 });
    assert.deepEqual(
      (await nodes()).nodes.map((n) => n.name),
      ['a'],
    );

    // Persian: right to left, the page's own strings, axe-core clean.
    await page.getByRole('combobox', { name: 'Language' }).selectOption('fa');
    await page.getByRole('heading', { name: 'گره‌ها' }).waitFor();
    assert.equal(await page.getAttribute('html', 'dir'), 'rtl');
    assert.match(await row('a').innerText(), /فعال/);
    assert.deepEqual(await seriousViolations(page), [], 'axe-core, Persian');
    assert.deepEqual([...problems], [], 'no console error or failed request');

    // The API as other callers use it: block without a body (no reason), a reason too long.
    // A is the last node: blocking it leaves keys no node, so they give hostnameForAccessKeys
    // (A's own address): the answer says so, as `ladder nodes block` does, and so does the page.
    assert.equal(await page.getByTestId('keys-fallback').count(), 0, 'no alert while A is listed');
    const blocked = await call<{ status: string; stateReason?: string; keysFallback?: Fallback }>(
      'POST',
      '/nodes/a/block',
    );
    assert.deepEqual([blocked.status, blocked.stateReason], ['blocked', undefined]);
    const warning = `no node is listed in the keys now (every node is blocked, suspected or down): dynamic keys and subscriptions give hostnameForAccessKeys, ${A} (an address of node a, blocked); unblock a node, add one, or set it with PUT /server/hostname-for-access-keys`;
    assert.deepEqual(blocked.keysFallback, { hostnameForAccessKeys: A, warning });
    assert.deepEqual((await nodes()).keysFallback, { hostnameForAccessKeys: A, warning }, 'GET /nodes too');
    const alert = page.getByTestId('keys-fallback');
    await alert.waitFor();
    assert.equal(await alert.getAttribute('role'), 'alert');
    assert.match(await alert.innerText(), new RegExp(A.replace(/\./g, '\\.')), 'names the hostname');
    const long = await api(cfg, 'POST', '/nodes/a/block', { reason: 'x'.repeat(201) });
    assert.equal(long.status, 400, long.body);
    const back = await call<{ status: string; keysFallback?: Fallback }>('POST', '/nodes/a/unblock');
    assert.deepEqual([back.status, back.keysFallback], ['active', undefined]);
    await alert.waitFor({ state: 'detached' });
    assert.equal((await nodes()).keysFallback, undefined);
  },
);
