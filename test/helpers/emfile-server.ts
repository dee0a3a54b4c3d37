/**
 * A child process for test/server/native-accept.test.ts: a server with the native accept, run
 * under a low descriptor limit (`ulimit -n`) so that accepting fails with EMFILE. Prints its port;
 * then each line on stdin gets one JSON line back: the open connections and, over the next
 * `measure` ms, the event loop's utilisation (near 1 when a loop spins, near 0 when it waits).
 */
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { ShadowsocksServer } from '../../src/server/server.js';
import { keepLoopIdleTime } from '../../src/protocol/shadowsocks/native.js';

// The addon's epoll set turns libuv's idle-time measure off; the utilisation below needs it.
keepLoopIdleTime();
const server = new ShadowsocksServer({
  keys: [{ id: 'k', method: 'aes-256-gcm', secret: 'emfile' }],
  nativeRelay: true,
  nativeAccept: true,
  timeouts: { idleMs: 60_000 },
});
const addr = await server.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`${addr.port}\n`);
createInterface({ input: process.stdin }).on('line', (line) => {
  const ms = Number(line) || 0;
  const start = performance.eventLoopUtilization();
  setTimeout(() => {
    const elu = performance.eventLoopUtilization(start).utilization;
    process.stdout.write(`${JSON.stringify({ conns: server.connectionCount, elu })}\n`);
  }, ms);
});
process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
