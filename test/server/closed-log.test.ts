/**
 * The server logs each closed connection at debug only, and builds that line's object only when
 * debug is on: with debug off (the default) a closed connection costs no log call and no object
 * (it built `{ status, keyId, durationMs }` for a debug() that then dropped it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnectionClosedEvent } from '../../src/server/events.js';
import { ShadowsocksServer } from '../../src/server/server.js';
import { type Logger, type LogLevel } from '../../src/shared/logger.js';
import { startEcho } from '../helpers/net.js';
import { openTestTunnel } from '../helpers/test-client.js';
import { waitFor } from '../helpers/wait.js';

const KEY = { id: 'k1', method: 'aes-256-gcm', secret: 'closed-log-pw' };
const ORDER: LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** A logger at `level` that records what reaches debug() (silent otherwise). */
function recorder(level: LogLevel): Logger & { debugCalls: unknown[][] } {
  const debugCalls: unknown[][] = [];
  const none = (): void => undefined;
  const log: Logger & { debugCalls: unknown[][] } = {
    level,
    trace: none,
    info: none,
    warn: none,
    error: none,
    fatal: none,
    debugCalls,
    debug: (...args: unknown[]) => void debugCalls.push(args),
    isLevelEnabled: (l) => l !== 'silent' && ORDER.indexOf(l) >= ORDER.indexOf(log.level),
    child: () => log,
  };
  return log;
}

test('a closed connection: no debug() call with debug off; one line with it on', async (t) => {
  const echo = await startEcho();
  t.after(() => echo.close());
  for (const level of ['info', 'debug'] as const) {
    const log = recorder(level);
    const closed: ConnectionClosedEvent[] = [];
    const server = new ShadowsocksServer({
      keys: [KEY],
      allowPrivateDestinations: true,
      logger: log,
      hooks: { onConnectionClosed: (e) => closed.push(e) },
    });
    const { port } = await server.listen({ port: 0, host: '127.0.0.1' });
    try {
      const tunnel = await openTestTunnel({
        port,
        method: KEY.method,
        password: KEY.secret,
        target: { host: '127.0.0.1', port: echo.port },
        initial: Buffer.from('ping'),
      });
      assert.equal((await tunnel.read(4)).toString(), 'ping');
      tunnel.end();
      await waitFor(() => closed.length === 1, { timeoutMs: 10_000, message: 'the connection closed' });
    } finally {
      await server.close();
    }
    const lines = log.debugCalls.filter((args) => args.includes('connection closed'));
    if (level === 'info') assert.deepEqual(lines, [], 'debug() called (and its object built) with debug off');
    else {
      assert.equal(lines.length, 1);
      assert.deepEqual(Object.keys(lines[0]![0] as object).sort(), ['durationMs', 'keyId', 'status']);
    }
  }
});
