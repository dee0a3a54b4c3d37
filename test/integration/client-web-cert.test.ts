/**
 * Trusting a self-signed web front from `ladder client`: v2ray-plugin's `cert=PATH` in the key
 * makes the TLS connection trust that file, and an echo goes through (hash compared). Negative
 * control: the same key without cert= carries nothing, and the log says once (not once per
 * connection) what to do, with the TLS error code. A missing or non-certificate file stops the
 * client with one line naming the option. With several endpoints (the picker) the untrusted front
 * is avoided for a working raw port, and the log gives the same advice once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import { run, waitForStdout, type Run } from '../helpers/cli-run.js';
import { runLadder } from '../helpers/ladder-run.js';
import { startEcho } from '../helpers/net.js';
import { which } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { echoVia } from '../helpers/transfer.js';
import { startWsTestServer } from '../helpers/web-server.js';
import { waitFor } from '../helpers/wait.js';
import { makeCert } from '../web/fixtures.js';

const PASSWORD = `web-cert-${randomBytes(6).toString('hex')}`;

test(
  'a self-signed web front: cert=PATH trusts it; without it one hint with the TLS code',
  { skip: skipUnless(which('openssl') !== undefined, 'openssl missing (apt-get install openssl)') },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-web-cert-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const c = makeCert(dir, 'front.example');
    const srv = await startWsTestServer({
      keys: [{ id: 'k', method: 'aes-256-gcm', secret: PASSWORD }],
      front: { tls: { cert: c.cert, key: c.key } },
    });
    t.after(() => srv.close());
    const echo = await startEcho();
    t.after(() => echo.close());
    const key = (extra: string): string =>
      formatSsUrl({
        method: 'aes-256-gcm',
        password: PASSWORD,
        host: '127.0.0.1',
        port: srv.webPort,
        plugin: 'v2ray-plugin',
        pluginOptions: `mode=websocket;tls;host=front.example;path=${srv.secretPath}${extra}`,
      });
    const running: Run[] = [];
    t.after(async () => {
      for (const r of running) {
        r.child.kill('SIGTERM');
        await r.exit;
      }
    });
    const start = async (k: string): Promise<{ r: Run; port: number }> => {
      const r = run(['client', '--key', k, '--socks', '127.0.0.1:0']);
      running.push(r);
      const m = await waitForStdout(r, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/);
      return { r, port: Number(m[1]) };
    };
    const carries = async (port: number): Promise<boolean> => {
      try {
        const body = randomBytes(30_000);
        const e = await echoVia({ proxyPort: port }, { host: '127.0.0.1', port: echo.port }, body, 10_000);
        return e.gotSha.equals(e.sentSha);
      } catch {
        return false;
      }
    };

    const trusted = await start(key(`;cert=${c.certPath}`));
    assert.ok(await carries(trusted.port), 'cert= makes the self-signed front trusted');
    assert.ok(await carries(trusted.port));

    // Negative control: no cert=, so the chain is untrusted; two connections, one hint.
    const untrusted = await start(key(''));
    assert.equal(await carries(untrusted.port), false);
    assert.equal(await carries(untrusted.port), false);
    const logLines = (): Array<{ msg: string; code?: string; errno?: string }> =>
      untrusted.r
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; code?: string; errno?: string });
    // The child writes its log lines after the SOCKS connection closes: wait for them (loaded CI).
    await waitFor(() => logLines().filter((l) => l.msg === 'tunnel dial failed').length >= 2, {
      timeoutMs: 5000,
    }).catch(() => undefined);
    const lines = logLines();
    assert.ok(lines.filter((l) => l.msg === 'tunnel dial failed').length >= 2, untrusted.r.stderr());
    const hints = lines.filter((l) => l.msg.includes('add cert=PATH'));
    assert.equal(hints.length, 1, untrusted.r.stderr());
    assert.equal(hints[0]!.code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
    assert.match(hints[0]!.msg, /DEPTH_ZERO_SELF_SIGNED_CERT.*NODE_EXTRA_CA_CERTS=PATH/);
    for (const secret of [PASSWORD, srv.secretPath]) assert.ok(!untrusted.r.stderr().includes(secret));

    // Several endpoints (the picker, as a saved SIP008 subscription gives them): the untrusted
    // front is avoided and the raw port carries, and the same advice is logged once.
    const raw = formatSsUrl({
      method: 'aes-256-gcm',
      password: PASSWORD,
      host: '127.0.0.1',
      port: srv.plane.address.port,
    });
    const picker = run([
      'client',
      '--key',
      key(''),
      '--key',
      raw,
      '--socks',
      '127.0.0.1:0',
      '--state-dir',
      dir,
    ]);
    running.push(picker);
    const pm = await waitForStdout(picker, /SOCKS5 proxy on 127\.0\.0\.1:(\d+)/);
    assert.ok(await carries(Number(pm[1])), 'the raw endpoint carries');
    const advice = (): string[] =>
      picker
        .stderr()
        .split('\n')
        .filter((l) => l.includes('add cert=PATH'));
    await waitFor(() => advice().length >= 1, { timeoutMs: 5000 }).catch(() => undefined);
    assert.equal(advice().length, 1, picker.stderr());
    assert.match(advice()[0]!, /DEPTH_ZERO_SELF_SIGNED_CERT/);

    // A file that is missing or holds no certificate: one line naming the option, exit 2.
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    for (const [path, why] of [
      [join(dir, 'missing.pem'), 'no such file'],
      [junk, 'expected a PEM certificate'],
      [c.keyPath, 'expected a PEM certificate'],
    ] as const) {
      const r = await runLadder(['client', '--key', key(`;cert=${path}`), '--socks', '127.0.0.1:0']);
      assert.equal(r.code, 2, r.stderr);
      const out = r.stderr.trim();
      assert.equal(out.split('\n').length, 1, out);
      assert.ok(out.includes(`v2ray-plugin option cert=${path}: ${why}`), out);
      assert.ok(!out.includes(PASSWORD));
    }
  },
);
