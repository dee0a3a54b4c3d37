import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startManaged, type ManagedFlags } from '../../src/cli/managed.js';
import { fetchDynamicKey, parseDynamicKeyUrl } from '../../src/client/dynamic-fetch.js';
import { silentLogger } from '../../src/shared/logger.js';
import { HAVE_POSTGRES, startPostgres } from '../helpers/postgres.js';
import { requireOrSkip } from '../helpers/prereq.js';
import { waitFor } from '../helpers/wait.js';
import { tryTunnel } from '../fleet/fleet-helpers.js';
import { api, echoServer, flags } from './managed-helpers.js';
import { inproc } from './keys-inproc.js';

interface KeyJson {
  id: string;
  name: string;
  password: string;
  method: string;
  port: number;
  dataLimit?: { bytes: number };
  dynamicAccessUrl: string;
  subscriptionUrl: string;
}

/**
 * Finding 3: POST /access-keys/{id}/rotate and `ladder keys rotate ID` give a key a new secret and
 * keep its id, name, limit and access token: the old secret is refused through a real server (its
 * open tunnel closed), the new one carries traffic, and the unchanged dynamic URL serves the new
 * secret. The control: before the rotation the old secret carries traffic (tryTunnel is not
 * simply failing).
 */
for (const kind of ['sqlite', 'postgres'] as const) {
  test(`${kind}: rotating a key's secret through the API and the CLI`, { timeout: 120_000 }, async (t) => {
    if (kind === 'postgres' && !requireOrSkip(t, HAVE_POSTGRES, 'PostgreSQL (initdb, pg_ctl)')) return;
    const dir = mkdtempSync(join(tmpdir(), 'ladder-rotate-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const pg = kind === 'postgres' ? await startPostgres() : undefined;
    t.after(() => pg?.destroy());
    const echoPort = await echoServer(t);
    const f: ManagedFlags = { ...flags(dir), metrics: false, ...(pg ? { store: pg.url, node: 'n1' } : {}) };
    const m = await startManaged(f, silentLogger, { drawQr: false, enforceIntervalMs: 300 });
    t.after(() => m.close());
    const cfg = JSON.parse(m.banner.split('\n').find((l) => l.startsWith('{"apiUrl":'))!) as {
      apiUrl: string;
      certSha256: string;
    };
    const made = await api(cfg, 'POST', '/access-keys', { name: 'leaky', limit: { bytes: 10_000_000 } });
    assert.equal(made.status, 201, made.body);
    const before = JSON.parse(made.body) as KeyJson;
    const port = m.plane.address.port;
    const creds = (k: KeyJson): { method: string; password: string } => ({
      method: k.method,
      password: k.password,
    });

    const open = await tryTunnel('127.0.0.1', port, creds(before), echoPort, 2000);
    assert.ok(open, 'the control: the old secret carries traffic before the rotation');

    const r = await api(cfg, 'POST', `/access-keys/${before.id}/rotate`);
    assert.equal(r.status, 200, r.body);
    const after = JSON.parse(r.body) as KeyJson;
    assert.notEqual(after.password, before.password);
    for (const field of [
      'id',
      'name',
      'port',
      'method',
      'dataLimit',
      'dynamicAccessUrl',
      'subscriptionUrl',
    ] as const)
      assert.deepEqual(after[field], before[field], `${field} kept`);
    const closed = await Promise.race([
      open.closed,
      new Promise((res) => setTimeout(() => res(false), 5000)),
    ]);
    assert.ok(closed, "the key's open tunnel (old secret) was closed");
    assert.equal(
      await tryTunnel('127.0.0.1', port, creds(before), echoPort),
      undefined,
      'old secret refused',
    );
    const t2 = await tryTunnel('127.0.0.1', port, creds(after), echoPort, 2000);
    assert.ok(t2, 'the new secret carries traffic');
    t2.destroy();
    const doc = JSON.parse(await fetchDynamicKey(parseDynamicKeyUrl(before.dynamicAccessUrl))) as {
      password: string;
    };
    assert.equal(doc.password, after.password, 'the unchanged dynamic URL serves the new secret');

    // A chosen password; the current one and an unknown key are refused.
    const chosen = await api(cfg, 'POST', `/access-keys/${before.id}/rotate`, {
      password: 'chosen-secret-1',
    });
    assert.equal(chosen.status, 200, chosen.body);
    assert.equal((JSON.parse(chosen.body) as KeyJson).password, 'chosen-secret-1');
    const same = await api(cfg, 'POST', `/access-keys/${before.id}/rotate`, { password: 'chosen-secret-1' });
    assert.equal(same.status, 400, same.body);
    assert.ok(!same.body.includes('chosen-secret-1'), 'no secret echoed');
    assert.equal((await api(cfg, 'POST', '/access-keys/nope/rotate')).status, 404);

    // The CLI on the store (the running server applies it at its next evaluation).
    const cli = await inproc([
      'keys',
      ...(pg ? ['--store', pg.url] : []),
      '--data-dir',
      dir,
      'rotate',
      before.id,
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout + cli.stderr, /rotated .*dynamic and subscription URLs unchanged/);
    const got = JSON.parse((await api(cfg, 'GET', `/access-keys/${before.id}`)).body) as KeyJson;
    assert.notEqual(got.password, 'chosen-secret-1');
    assert.equal(got.dynamicAccessUrl, before.dynamicAccessUrl);
    await waitFor(
      () => tryTunnel('127.0.0.1', port, creds(got), echoPort, 300).then((x) => (x?.destroy(), !!x)),
      {
        timeoutMs: 10_000,
        intervalMs: 100,
        message: 'the CLI-rotated secret carries traffic',
      },
    );
    const old = { method: got.method, password: 'chosen-secret-1' };
    assert.equal(await tryTunnel('127.0.0.1', port, old, echoPort), undefined, 'the previous secret refused');
  });
}
