import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTunnelDialer, startClient } from '../../src/client/index.js';
import type { KeyEndpoint } from '../../src/client/key.js';
import { startPickedTunnel } from '../../src/client/picked-tunnel.js';
import { EndpointSelector } from '../../src/client/routing/endpoints.js';
import { formatStatus, readStatuses } from '../../src/client/status.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { startTestServer } from '../helpers/data-plane.js';
import { readExactly, startSink } from '../helpers/net.js';
import { socks5Connect } from '../helpers/socks5.js';

const PW = 'picker-test-password';

test('the picker leaves a blackholed endpoint for one that answers, remembers it per network, and says so in --status', async (t) => {
  const server = await startTestServer({ keys: [{ id: 'k', method: 'aes-256-gcm', secret: PW }] }, t);
  // A blackhole: accepts, reads, never answers (what a C6 drop or a null-routing middlebox looks like).
  const hole = await startSink();
  t.after(() => hole.close());
  const dir = mkdtempSync(join(tmpdir(), 'ladder-picker-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const eps: KeyEndpoint[] = [
    { host: '127.0.0.1', port: hole.port, method: 'aes-256-gcm', password: PW, tag: 'blocked' },
    { host: '127.0.0.1', port: server.port, method: 'aes-256-gcm', password: PW, tag: 'open' },
  ];

  const run = async (network: string) => {
    const picked = await startPickedTunnel({
      endpoints: eps,
      dialerFor: (e) => createTunnelDialer(e),
      log: silentLogger,
      stateDir: dir,
      networkId: () => network,
      picker: { stallMs: 400, attemptTimeoutMs: 2000 },
    });
    const client = await startClient({ tunnel: picked.tunnel, socks: '127.0.0.1:0', noAnswerMs: 60_000 });
    const echo = async (timeoutMs: number): Promise<boolean> => {
      const s = await socks5Connect({
        proxyPort: client.socksAddress!.port,
        host: '127.0.0.1',
        port: server.echo.port,
      });
      try {
        s.write('hello');
        return (await readExactly(s, 5, timeoutMs).then((b) => b.toString())) === 'hello';
      } catch {
        return false;
      } finally {
        s.destroy();
      }
    };
    return {
      picked,
      echo,
      close: async () => {
        await client.close();
        picked.close();
      },
    };
  };

  // Network A, first run: the first connection goes to the blackhole (config order) and stalls;
  // the endpoint is avoided and the next connection gets through the second endpoint.
  const a = await run('net-a');
  assert.equal(await a.echo(1500), false, 'the blackholed endpoint gives no answer');
  assert.equal(hole.accepted, 1);
  assert.equal(await a.echo(5000), true, 'the next connection gets through endpoint 2');
  assert.equal(await a.echo(5000), true);
  assert.equal(hole.accepted, 1, 'the blackhole is not touched again within its residual period');
  a.picked.writeStatus();
  const [st] = readStatuses(dir);
  assert.ok(st?.running);
  const view = formatStatus(st.status, st.running);
  assert.match(view, /using: endpoint 2 \(shadowsocks "open", port \d+\)/);
  assert.match(
    view,
    /1\. shadowsocks "blocked" port \d+: avoided 1\d\d s more after 1 failure in a row \(stall\)/,
  );
  assert.doesNotMatch(view, /127\.0\.0\.1|picker-test-password/, 'no address or secret in the status');
  await a.close();
  assert.equal(readStatuses(dir).length, 0, 'a clean exit removes the status file');

  // Same network, new process: the remembered choice is used at once, the blackhole never dialled.
  const b = await run('net-a');
  assert.equal(await b.echo(5000), true, 'first connection of the new run gets through');
  assert.equal(hole.accepted, 1, 'remembered: no connection to the blocked endpoint');
  // A re-fetched dynamic key offers the same paths as new endpoints (an 'auto' prefix is drawn
  // per fetch): the path in use is still shown in use.
  b.picked.picker.setEndpoints(eps.map((e) => ({ ...e, prefix: Uint8Array.of(0x16, 0x03) })));
  b.picked.writeStatus();
  const afterRefetch = formatStatus(readStatuses(dir)[0]!.status, true);
  await b.close();
  assert.match(afterRefetch, /using: endpoint 2 /);

  // Negative control: another network has no memory, so config order puts the blackhole first.
  const c = await run('net-b');
  assert.equal(await c.echo(1500), false);
  assert.equal(hole.accepted, 2, 'on a new network the first endpoint is tried again');
  await c.close();
});

test('residual-aware back-off: 180 s, doubled per failure in a row, capped; a success resets it', () => {
  const clock = new ManualClock();
  const a = { host: 'a', port: 1 };
  const b = { host: 'b', port: 2 };
  const sel = new EndpointSelector([a, b], {
    clock,
    residualMs: 180_000,
    backoffMaxMs: 600_000,
    sticky: true,
  });
  const avoided = (): number => Math.round(sel.status()[0]!.avoidedForMs / 1000);
  sel.reportFailure(a, 'stall');
  assert.equal(avoided(), 180);
  assert.equal(sel.pick().endpoint, b);
  clock.advance(180_000);
  assert.equal(sel.pick().endpoint, a, 'tried again once the residual has passed');
  sel.reportFailure(a, 'reset');
  assert.equal(avoided(), 360);
  clock.advance(360_000);
  sel.reportFailure(a, 'reset');
  assert.equal(avoided(), 600, 'capped');
  clock.advance(600_000);
  sel.reportSuccess(b);
  assert.equal(sel.pick().endpoint, b, 'sticky: what last carried data comes first');
  sel.reportSuccess(a);
  assert.equal(sel.pick().endpoint, a, 'the most recent success wins');
  sel.reportFailure(a, 'stall');
  assert.equal(avoided(), 180, 'a success resets the back-off');
});
