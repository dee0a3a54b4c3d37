/**
 * A client with routing rules whose tunnels are set up in the addon (native-socks.ts #plan
 * through RoutingDialer.planNative): with nobody listening to route events (no onRoute: the
 * CLI's client) the relay opens the server's answer itself (LADDER_NATIVE_SALT's saving,
 * `nativeSalted`); with an onRoute listener the answer still comes to JS and the proxy route's
 * 'ok' event goes out when the server answers, before the application has its reply (the lab's
 * defence-auto test attributes events to the request that caused them); LADDER_ROUTE_SALT=0
 * brings the old path back for every plan. answer-watch's judgements hold on both paths.
 */
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startClient, type ClientOptions, type LocalClient } from '../../src/client/index.js';
import type { RouteEvent } from '../../src/client/routing-dialer.js';
import { parseRuleList } from '../../src/client/routing/rules.js';
import { createLogger } from '../../src/shared/logger.js';
import { nativeRelay, nativeSocksFront } from '../../src/transport/native-sockets.js';
import { startUpstream, type Upstream } from '../helpers/client-upstream.js';
import { serve, type TestServer } from '../helpers/net.js';
import { ssUrl } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { socks5Connect } from '../helpers/socks5.js';
import { waitFor } from '../helpers/wait.js';

const PASSWORD = 'client-route-salt-pw';
const addon = nativeRelay() as { tunnelConnect?: unknown } | undefined;
const skip = skipUnless(
  nativeSocksFront() !== undefined && typeof addon?.tunnelConnect === 'function',
  'the native addon with tunnelConnect (Linux; npm run build:native)',
);
const REQUEST = 'ping-0123456789-0123456789-abcd';

/** A client with routing rules (proxy for everything but 127.0.0.2), LADDER_ROUTE_SALT as given. */
async function client(
  url: string,
  routeSalt: boolean,
  extra: Partial<ClientOptions> = {},
): Promise<{ c: LocalClient; lines: () => string[] }> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const saved = process.env.LADDER_ROUTE_SALT;
  process.env.LADDER_ROUTE_SALT = routeSalt ? '1' : '0'; // read when the routing dialer is made
  try {
    const c = await startClient({
      key: url,
      socks: '127.0.0.1:0',
      nativeSocks: true,
      nativeTunnel: true,
      firstDataWaitMs: 10_000, // the first data goes with the request even on a loaded machine
      rules: parseRuleList('ip-cidr,127.0.0.2/32,direct\nfinal,proxy\n'),
      log: createLogger({ level: 'info', destination: out }),
      ...extra,
    });
    const lines = (): string[] =>
      text
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => String((JSON.parse(l) as { msg?: unknown }).msg));
    return { c, lines };
  } finally {
    if (saved === undefined) delete process.env.LADDER_ROUTE_SALT;
    else process.env.LADDER_ROUTE_SALT = saved;
  }
}

describe(
  'routing client, tunnels set up in the addon: the server answer opened in the relay',
  { skip },
  () => {
    let upstream: Upstream;
    let echo: TestServer;
    before(async () => {
      upstream = await startUpstream('ladder', PASSWORD);
      echo = await serve((s) => s.pipe(s));
    });
    after(async () => {
      await echo.close();
      await upstream.close();
    });

    /** One request through the client: its reply ('' if it closed first); `atReply` runs at the reply. */
    const roundTrip = async (c: LocalClient, atReply: () => void = () => {}): Promise<string> => {
      const s = await socks5Connect({ proxyPort: c.socksAddress!.port, host: '127.0.0.1', port: echo.port });
      const got = new Promise<string>(
        (r) =>
          s.once('data', (b: Buffer) => {
            atReply();
            r(b.toString());
          }) && s.once('close', () => r('')),
      );
      s.on('error', () => {});
      s.resume();
      s.write(REQUEST);
      const answer = await got;
      s.destroy();
      return answer;
    };

    for (const routeSalt of [true, false]) {
      const which = routeSalt ? 'LADDER_ROUTE_SALT on' : 'LADDER_ROUTE_SALT=0';
      it(`${which}: without onRoute the relay opens the answer ${routeSalt ? 'itself' : 'in JS (as before)'}`, async () => {
        const { c } = await client(upstream.url, routeSalt);
        try {
          for (let i = 0; i < 3; i++) assert.equal(await roundTrip(c), REQUEST);
          assert.equal(c.nativeTunnels, 3, 'set up in the addon');
          assert.equal(c.nativeSalted, routeSalt ? 3 : 0, 'the answer opened in the relay');
        } finally {
          await c.close();
        }
      });

      it(`${which}: with onRoute the proxy event goes out before the reply reaches the application`, async () => {
        const events: RouteEvent[] = [];
        const { c } = await client(upstream.url, routeSalt, { routing: { onRoute: (e) => events.push(e) } });
        try {
          for (let i = 0; i < 3; i++) {
            let atReply = -1;
            assert.equal(await roundTrip(c, () => (atReply = events.length)), REQUEST);
            assert.equal(atReply, i + 1, `request ${i}: its event came before its reply`);
            assert.deepEqual(events[i], { route: 'proxy', outcome: 'ok' });
          }
          assert.equal(c.nativeTunnels, 3, 'set up in the addon');
          assert.equal(c.nativeSalted, 0, 'the answer opened in JS (the event goes out then)');
        } finally {
          await c.close();
        }
      });

      it(`${which}: answer-watch still tells a server that closes without data`, async () => {
        const closer = await serve((s) => s.once('data', () => s.end()));
        const { c, lines } = await client(
          ssUrl('chacha20-ietf-poly1305', PASSWORD, '127.0.0.1', closer.port),
          routeSalt,
          {
            noAnswerMs: 300,
          },
        );
        try {
          assert.equal(await roundTrip(c), '', 'closed with nothing');
          const msg = /^the server accepted the connection but closed it without data/;
          await waitFor(() => lines().some((l) => msg.test(l)), { timeoutMs: 5000 });
          assert.equal(c.nativeSalted, routeSalt ? 1 : 0, 'the path taken');
        } finally {
          await c.close();
          await closer.close();
        }
      });
    }
  },
);
