/**
 * A child process for test/client/native-socks-emfile.test.ts: `ladder client`'s SOCKS5 front run
 * under a low descriptor limit (`ulimit -n`) so that accepting fails with EMFILE. Prints its SOCKS
 * port; then each line on stdin gets one JSON line back: over the next `measure` ms, the event
 * loop's utilisation (near 1 when a loop spins, near 0 when it waits). The test counts the
 * child's descriptors from outside (/proc/PID/fd): reading its own needs a descriptor.
 * The key points at a closed port: the test's connections never get past the greeting.
 */
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { startClient } from '../../src/client/index.js';
import { keepLoopIdleTime } from '../../src/protocol/shadowsocks/native.js';

// The addon's epoll set turns libuv's idle-time measure off; the utilisation below needs it.
keepLoopIdleTime();
const key = `ss://${Buffer.from('aes-256-gcm:emfile').toString('base64url')}@127.0.0.1:9`;
const client = await startClient({ key, socks: '127.0.0.1:0', nativeSocks: true });
process.stdout.write(`${client.socksAddress!.port}\n`);
createInterface({ input: process.stdin }).on('line', (line) => {
  const ms = Number(line) || 0;
  const start = performance.eventLoopUtilization();
  setTimeout(() => {
    const elu = performance.eventLoopUtilization(start).utilization;
    process.stdout.write(`${JSON.stringify({ elu })}\n`);
  }, ms);
});
process.stdin.on('end', () => void client.close().then(() => process.exit(0)));
