/**
 * D10/D15 wired into the client: several keys become server endpoints of one FailoverDialer.
 * The first endpoint is black-holed (accepts and never answers) or resets; the client recovers
 * on the second within 5 s and does not connect to the first again during its residual period,
 * then returns to it. The residual is driven by a clock whose `now()` the test moves forward
 * (timers stay real).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { startClient } from '../../src/client/index.js';
import type { Clock } from '../../src/shared/clock.js';
import { formatSsUrl } from '../../src/protocol/sip002/index.js';
import type { DataPlane } from '../../src/server/index.js';
import { readExactly } from '../helpers/net.js';
import { startTestServer, type TestDataPlane } from '../helpers/data-plane.js';
import { socks5Connect } from '../helpers/socks5.js';

const PASSWORD = `fo-${randomBytes(6).toString('hex')}`;
const METHOD = 'aes-256-gcm';

/** A server endpoint that accepts TCP and then never answers ('silent') or resets on data. */
async function startBadEndpoint(kind: 'silent' | 'reset') {
  let accepted = 0;
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    accepted++;
    socks.add(s);
    s.on('error', () => {});
    s.once('close', () => socks.delete(s));
    if (kind === 'silent') s.resume();
    else s.once('data', () => s.resetAndDestroy());
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    get accepted() {
      return accepted;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** Real timers, a `now()` the test can move forward. */
function skewClock(): Clock & { skip(ms: number): void } {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
    skip(ms: number) {
      offset += ms;
    },
  };
}

describe('ladder client with two endpoints, the first black-holed', () => {
  let server: TestDataPlane;
  let plane: DataPlane;
  let echo: TestDataPlane['echo'];

  before(async () => {
    server = await startTestServer({ keys: [{ id: 'k', method: METHOD, secret: PASSWORD }] });
    ({ plane, echo } = server);
  });
  after(async () => {
    await server.close();
  });

  const key = (port: number, tag: string): string =>
    formatSsUrl({ method: METHOD, password: PASSWORD, host: '127.0.0.1', port, tag });

  for (const kind of ['silent', 'reset'] as const) {
    test(`first endpoint ${kind}: recovery on the second within 5 s, no dial to the first during its residual, back after`, async () => {
      const bad = await startBadEndpoint(kind);
      const clock = skewClock();
      const failures: Array<[number, string]> = [];
      const client = await startClient({
        keys: [key(bad.port, 'a'), key(plane.address.port, 'b')],
        socks: '127.0.0.1:0',
        clock,
        failover: { stallMs: 500, onEndpointFailure: (i, k) => failures.push([i, k]) },
      });
      /** One request: true when the echo came back within `ms`. */
      const attempt = async (ms: number): Promise<boolean> => {
        const s = await socks5Connect({
          proxyPort: client.socksAddress!.port,
          host: '127.0.0.1',
          port: echo.port,
        });
        s.on('error', () => {});
        try {
          const data = randomBytes(64);
          s.write(data);
          return (await readExactly(s, data.length, ms)).equals(data);
        } catch {
          return false;
        } finally {
          s.destroy();
        }
      };
      try {
        assert.equal(client.endpoints, 2);
        const t0 = Date.now();
        let tries = 0;
        let ok = false;
        while (!ok && Date.now() - t0 < 5000 && tries < 20) {
          tries++;
          ok = await attempt(1500);
        }
        const recovery = Date.now() - t0;
        assert.ok(ok, `recovered (${tries} tries)`);
        assert.ok(recovery < 5000, `recovered in ${recovery} ms`);
        assert.equal(tries, 2, 'only the request caught on the black-holed endpoint failed');
        assert.equal(bad.accepted, 1);
        assert.deepEqual(failures, [[0, kind === 'silent' ? 'stall' : 'reset']]);

        // During the residual (default 180 s): the first endpoint is never dialled.
        clock.skip(170_000);
        for (let i = 0; i < 5; i++) assert.ok(await attempt(5000), `request ${i} during the residual`);
        assert.equal(bad.accepted, 1, 'the blocked 3-tuple was not touched during its residual period');
        assert.ok(client.failover!.selector.isAvoided({ host: '127.0.0.1', port: bad.port }));

        // After it: back to the preferred (first) endpoint.
        clock.skip(11_000);
        assert.ok(!client.failover!.selector.isAvoided({ host: '127.0.0.1', port: bad.port }));
        await attempt(300);
        assert.equal(bad.accepted, 2, 'the first endpoint is tried again after its residual');
      } finally {
        await client.close();
        await bad.close();
      }
    });
  }

  test('a single key is not wrapped in failover (one stall must not lock the only server out)', async () => {
    const client = await startClient({ key: key(plane.address.port, 'only'), socks: '127.0.0.1:0' });
    try {
      assert.equal(client.endpoints, 1);
      assert.equal(client.failover, undefined);
    } finally {
      await client.close();
    }
  });
});
