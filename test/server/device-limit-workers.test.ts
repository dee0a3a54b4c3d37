/**
 * Device limits across data-plane worker threads, through the real `ladder server --config`
 * (dist/ when current): a key with "deviceLimit": 1 and "workers": 2. One connection from
 * 127.0.0.2 lands on one worker; many from 127.0.0.3, spread by the kernel over both workers,
 * are all held as a wrong key's (a table per worker would let the other worker's in); the
 * refusal line is said once for the process, without an address; once the first address's
 * connection closes, the second gets in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reusePortAvailable } from '../../src/server/workers/reuseport.js';
import { startLadderServer } from '../helpers/peers.js';
import { skipUnless } from '../helpers/prereq.js';
import { startEcho } from '../helpers/net.js';
import { tryStream, type DeviceStream } from '../helpers/device-client.js';
import { sleep, waitFor } from '../helpers/wait.js';

const NEED = 'the native addon with SO_REUSEPORT sockets (node scripts/build-native.mjs)';
const SECOND = 12;

/** The JSON log lines of a server's output (anything else skipped). */
const logLines = (output: string): Array<Record<string, unknown>> =>
  output
    .split('\n')
    .filter((l) => l.startsWith('{"'))
    .flatMap((l) => {
      const parsed = (() => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      })();
      return parsed ? [parsed] : [];
    });

test(
  'two workers: one device limit for the process',
  { skip: skipUnless(reusePortAvailable(), NEED), timeout: 90_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-devices-'));
    const key = { method: 'aes-256-gcm', password: `dev-${randomBytes(8).toString('hex')}` };
    const config = join(dir, 'server.json');
    writeFileSync(
      config,
      JSON.stringify({
        keys: [{ id: 'phone', method: key.method, password: key.password, deviceLimit: 1 }],
        workers: 2,
      }),
    );
    const echo = await startEcho();
    const server = await startLadderServer({ config, env: { LADDER_LOG_LEVEL: 'debug' } });
    const open: DeviceStream[] = [];
    try {
      // The first connection starts the workers (on demand): it may wait for them.
      const a = await tryStream(server.port, '127.0.0.2', key, echo.port, 15_000);
      open.push(a.stream);
      assert.equal(a.outcome, 'echo', server.output());
      const held = await Promise.all(
        Array.from({ length: SECOND }, () => tryStream(server.port, '127.0.0.3', key, echo.port, 2000)),
      );
      for (const h of held) open.push(h.stream);
      assert.deepEqual(
        held.map((h) => h.outcome),
        new Array<string>(SECOND).fill('held'),
      );
      // Close the held ones: each worker that refused one says so in its debug line.
      for (const h of held) h.stream.close();
      const refusedBy = (): Set<unknown> =>
        new Set(
          logLines(server.output())
            .filter(
              (l) => l.msg === 'connection closed' && l.keyId === undefined && l.status === 'ERR_CIPHER',
            )
            .map((l) => l.worker),
        );
      await waitFor(() => refusedBy().size === 2, {
        timeoutMs: 10_000,
        message: () => `refusals on both workers:\n${server.output()}`,
      });
      a.stream.close();
      await sleep(300);
      const b = await tryStream(server.port, '127.0.0.3', key, echo.port);
      open.push(b.stream);
      assert.equal(b.outcome, 'echo', 'the place is free once the first address closed');
      // The device-limit line names the key (the refusal log's count line, which lists a key at its
      // device limit among the reasons, does not).
      const said = logLines(server.output()).filter(
        (l) => l.keyId === 'phone' && String(l.msg).includes('device limit'),
      );
      assert.equal(said.length, 1, JSON.stringify(said));
      assert.match(
        String(said[0]!.msg),
        /^key phone: connections from another address refused: device limit 1 reached \(1 refused in the last minute\)$/,
      );
      assert.doesNotMatch(server.output(), /127\.0\.0\.[23]/, 'no client address in the output');
    } finally {
      for (const s of open) s.close();
      await server.stop(10_000);
      await echo.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
