/**
 * The active-probing suite (server.test.ts) against the multi-worker data plane: two worker
 * threads on SO_REUSEPORT sockets sharing one replay filter. Random probes, replays of a real
 * Ladder client's first packet (identical and altered) and the server's own response reflected
 * land on either worker; every one must get no data and a FIN at the idle timeout (or a prompt
 * FIN when the prober half-closes), whatever its length, as with one server. The same prober and
 * judge() catch the naive servers in controls.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { startWorkerPlane, type WorkerPlane } from '../../src/server/index.js';
import { reusePortAvailable } from '../../src/server/workers/reuseport.js';
import { silentLogger } from '../../src/shared/logger.js';
import { readExactly, startEcho, type TestServer } from '../helpers/net.js';
import { ssUrl } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { startRecorder, type Recorder } from '../helpers/recorder.js';
import { socks5Connect } from '../helpers/socks5.js';
import {
  judge,
  randomProbes,
  replayProbes,
  runProbes,
  summarise,
  type Policy,
  type Probe,
} from './prober.js';

const IDLE_MS = 2000;
const IDLE_POLICY: Policy = { minCloseMs: IDLE_MS - 50, maxCloseMs: IDLE_MS + 1500, maxBucketSpreadMs: 300 };
const HALF_CLOSE_POLICY: Policy = { minCloseMs: 0, maxCloseMs: 1500, maxBucketSpreadMs: 300 };
const PASSWORD = `workers-probe-${randomBytes(6).toString('hex')}`;

describe(
  'active probing: the multi-worker data plane (2 workers)',
  { skip: skipUnless(reusePortAvailable(), 'the native addon with SO_REUSEPORT sockets') },
  () => {
    let echo: TestServer;
    let plane: WorkerPlane;
    let recorder: Recorder;
    let client: LocalClient;
    let replays: Probe[] = [];

    before(async () => {
      echo = await startEcho();
      plane = await startWorkerPlane({
        workers: 2,
        keys: [
          { id: 'c', method: 'chacha20-ietf-poly1305', secret: `${PASSWORD}-c` },
          { id: 'a', method: 'aes-256-gcm', secret: `${PASSWORD}-a` },
        ],
        port: 0,
        host: '127.0.0.1',
        logger: silentLogger,
        allowPrivateDestinations: true,
        timeouts: { idleMs: IDLE_MS },
        reportMs: 50,
      });
      recorder = await startRecorder(plane.address.port);
      client = await startClient({
        key: ssUrl('chacha20-ietf-poly1305', `${PASSWORD}-c`, '127.0.0.1', recorder.port),
        socks: '127.0.0.1:0',
      });
      // An honest exchange whose payload is a valid target header (see server.test.ts).
      const payload = Buffer.concat([
        Buffer.from([1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff]),
        Buffer.from('reflected request\n'),
      ]);
      const s = await socks5Connect({
        proxyPort: client.socksAddress!.port,
        host: '127.0.0.1',
        port: echo.port,
        earlyData: payload,
      });
      // The plane starts its workers at this first connection: seconds on a loaded machine.
      assert.ok((await readExactly(s, payload.length, 20_000)).equals(payload));
      s.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const c = recorder.connections.at(-1)!;
      assert.ok(c.clientFirst && c.serverFirst);
      replays = [
        ...replayProbes(c.clientFirst, 'ladder client first packet'),
        { label: 'ladder client first flight, identical replay', payload: c.clientBytes },
        { label: "server's own response reflected", payload: c.serverFirst },
      ];
    });

    after(async () => {
      await client?.close();
      await recorder?.close();
      await plane?.close();
      await echo?.close();
    });

    const check = (name: string, results: Awaited<ReturnType<typeof runProbes>>, policy: Policy): void => {
      const j = judge(results, policy);
      console.log(summarise(name, results, j));
      for (const v of j.violations.slice(0, 10)) console.log(`  violation: ${v}`);
      assert.deepEqual(j.violations, []);
    };

    test('random probes, replays and reflection: no data, FIN at the idle timeout, on both workers', async () => {
      const probes = [...randomProbes(randomBytes), ...replays, ...replays, ...replays];
      const results = await runProbes(plane.address.port, probes, {
        giveUpMs: IDLE_MS + 5000,
        concurrency: 20,
      });
      check('workers, idle', results, IDLE_POLICY);
      await new Promise((r) => setTimeout(r, 300)); // the workers' last reports
      const stats = plane.workerStats();
      assert.ok(
        stats.every((w) => w.opened > 10),
        `both workers received probes: ${stats.map((w) => w.opened).join('/')}`,
      );
      assert.equal(
        stats.reduce((n, w) => n + w.authenticated, 0),
        1,
        'only the honest connection authenticated',
      );
    });

    test('the same probes with the prober half-closing: a prompt FIN for every one', async () => {
      const results = await runProbes(plane.address.port, [...randomProbes(randomBytes), ...replays], {
        giveUpMs: IDLE_MS + 5000,
        halfClose: true,
        concurrency: 20,
      });
      check('workers, half-close', results, HALF_CLOSE_POLICY);
    });
  },
);
