/**
 * The active-probing suite against `ladder server --config FILE` as users run it (a separate
 * process, so the prober's timing is not shared with the server's event loop), with the idle
 * timeout shortened through the config file's `timeouts.idleSeconds`. The replayed first packet
 * and the reflected response come from a third-party client (shadowsocks-libev's ss-local),
 * captured by a recording forwarder. See server.test.ts for the in-process suite.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestServer } from '../helpers/net.js';
import { readExactly, startEcho } from '../helpers/net.js';
import type { Peer } from '../helpers/peers.js';
import { peerSkip, startLadderServer, startSsLocal } from '../helpers/peers.js';
import type { Recorder } from '../helpers/recorder.js';
import { startRecorder } from '../helpers/recorder.js';
import { socks5Connect } from '../helpers/socks5.js';
import type { Policy, Probe } from './prober.js';
import { judge, randomProbes, replayProbes, runProbes, summarise } from './prober.js';

const IDLE_S = 2;
const IDLE_MS = IDLE_S * 1000;
const IDLE_POLICY: Policy = { minCloseMs: IDLE_MS - 50, maxCloseMs: IDLE_MS + 1500, maxBucketSpreadMs: 300 };
const HALF_CLOSE_POLICY: Policy = { minCloseMs: 0, maxCloseMs: 1500, maxBucketSpreadMs: 300 };
const PASSWORD = `cli-probe-${randomBytes(6).toString('hex')}`;

describe(
  'active probing: `ladder server --config` (separate process)',
  { skip: peerSkip('ss-local') },
  () => {
    let dir: string;
    let server: Peer & { port: number };
    let local: Peer & { socksPort: number };
    let recorder: Recorder;
    let echo: TestServer;
    let replays: Probe[] = [];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'ladder-probe-'));
      const config = join(dir, 'server.json');
      writeFileSync(
        config,
        JSON.stringify({
          keys: [
            { id: 'a', method: 'aes-256-gcm', password: `${PASSWORD}-a` },
            { id: 'b', method: 'aes-128-gcm', password: `${PASSWORD}-b` },
          ],
          timeouts: { idleSeconds: IDLE_S },
        }),
      );
      echo = await startEcho();
      server = await startLadderServer({ config });
      recorder = await startRecorder(server.port);
      local = await startSsLocal({
        method: 'aes-256-gcm',
        password: `${PASSWORD}-a`,
        serverPort: recorder.port,
      });
      // An honest exchange whose payload is a valid target header (see server.test.ts).
      const payload = Buffer.concat([
        Buffer.from([1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff]),
        Buffer.from('reflected request\n'),
      ]);
      const s = await socks5Connect({ proxyPort: local.socksPort, host: '127.0.0.1', port: echo.port });
      const back = readExactly(s, payload.length, 5000);
      s.write(payload);
      assert.ok((await back).equals(payload));
      s.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const c = recorder.connections.at(-1)!;
      assert.ok(c.clientFirst && c.serverFirst);
      replays = [
        ...replayProbes(c.clientFirst, 'ss-local first packet'),
        { label: 'ss-local first flight, identical replay', payload: c.clientBytes },
        { label: "server's own response reflected", payload: c.serverFirst },
      ];
    });

    after(async () => {
      await Promise.all([local?.stop(), server?.stop()]);
      await Promise.all([recorder?.close(), echo?.close()]);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const check = (name: string, results: Awaited<ReturnType<typeof runProbes>>, policy: Policy): void => {
      const j = judge(results, policy);
      console.log(summarise(name, results, j));
      for (const v of j.violations.slice(0, 10)) console.log(`  violation: ${v}`);
      assert.deepEqual(j.violations, [], `server output:\n${server.output().slice(-2000)}`);
    };

    test('random probes 1..100 and 221, replays and reflection: no data, FIN at the configured idle timeout', async () => {
      const results = await runProbes(server.port, [...randomProbes(randomBytes), ...replays], {
        giveUpMs: IDLE_MS + 5000,
        concurrency: 20,
      });
      check('cli, idle', results, IDLE_POLICY);
    });

    test('the same probes with the prober half-closing: a prompt FIN for every one', async () => {
      const results = await runProbes(server.port, [...randomProbes(randomBytes), ...replays], {
        giveUpMs: IDLE_MS + 5000,
        halfClose: true,
        concurrency: 20,
      });
      check('cli, half-close', results, HALF_CLOSE_POLICY);
    });
  },
);
