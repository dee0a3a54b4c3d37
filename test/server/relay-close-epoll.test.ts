/**
 * How a relay's sockets leave the thread's epoll set when it ends (native/relay_pair.cc Stop,
 * thread_poll.h PollEndForClose): a descriptor the relay holds alone (owned: tcpConnect's, the
 * native accept's) is simply closed, and the kernel drops its registration as the socket's last
 * descriptor goes; a descriptor the relay duplicated (the caller's may still be open) must still
 * be taken out with epoll_ctl DEL, or the registration would outlive the relay and report the
 * socket's events to the set. The kernel's own list of registrations is the observable:
 * /proc/self/fdinfo of every epoll descriptor names each registered socket by inode (and the
 * watch's token as its data). And the other way: a connection the native accept was polling
 * for reads goes to relayConnect's relay with its registration as it is (no DEL and ADD).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nativeRelay } from '../../src/transport/native-sockets.js';
import { nativeAccept, nativeAcceptLive } from '../../src/transport/native-stream.js';
import { fdOf, startEcho, type TestServer } from '../helpers/net.js';
import { dial as dialFd, relayConnectRandom } from '../helpers/relay-connect.js';
import { skipUnless } from '../helpers/prereq.js';
import { sleep, waitFor } from '../helpers/wait.js';

const fns = nativeRelay();

/** The socket inode of descriptor fd, as /proc/PID/fdinfo prints it (hex). */
const inode = (fd: number): string =>
  Number(/socket:\[(\d+)\]/.exec(readlinkSync(`/proc/self/fd/${fd}`))![1]).toString(16);

/**
 * Every registration of the sockets `inodes` (all: every socket) in every epoll set of this
 * process, as "epfd:inode", or with `data` "epfd:inode:data" (data: the watch's token).
 */
function registrations(inodes?: string[], data = false): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed meanwhile (the directory's own descriptor, say)
    }
    if (target !== 'anon_inode:[eventpoll]') continue;
    let info: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    for (const m of info.matchAll(/^tfd:\s*\d+\s.*\bdata:\s*([0-9a-f]+).*\bino:([0-9a-f]+)/gm)) {
      if (!inodes || inodes.includes(m[2]!)) out.add(data ? `${fd}:${m[2]}:${m[1]}` : `${fd}:${m[2]}`);
    }
  }
  return out;
}

const added = (inodes: string[], before: Set<string>): string[] =>
  [...registrations(inodes)].filter((r) => !before.has(r));

const dial = (port: number): Promise<number> => dialFd(fns!, port);

describe(
  'a relay leaves the epoll set when it ends',
  { skip: skipUnless(typeof fns?.pollLive === 'function', 'the native addon with pollLive (Linux)') },
  () => {
    let echo: TestServer;
    before(async () => {
      echo = await startEcho();
    });
    after(async () => {
      await echo.close();
    });

    /**
     * An identity relay of fds (owned: 3, or duplicated: 0) whose sockets are `inodes`: in the set
     * while it runs, and none of its registrations left once relayClose returns.
     */
    const relayAndClose = (fds: [number, number], owned: number, inodes: string[]): void => {
      const base = registrations(inodes);
      let reason = -1;
      const h = fns!.relayPair(
        fds[0],
        fds[1],
        null,
        null,
        [undefined, undefined, undefined],
        5000,
        (r) => {
          reason = r;
        },
        owned,
      );
      const mine = added(inodes, base);
      assert.equal(mine.length, 2, `both sockets in the set while relaying (${mine.join(' ')})`);
      fns!.relayClose(h);
      assert.equal(reason, 3);
      assert.deepEqual(
        mine.filter((r) => registrations(inodes).has(r)),
        [],
        'no registration outlives the relay',
      );
      assert.equal(fns!.pollLive!()[1], 0, 'the set counts none');
    };

    it('owned descriptors: closed without a DEL, and the kernel drops their registrations', async () => {
      const a = await dial(echo.port);
      const b = await dial(echo.port);
      relayAndClose([a, b], 3, [inode(a), inode(b)]);
    });

    it('duplicated descriptors, the caller’s still open: taken out of the set (DEL) all the same', async () => {
      const sockets = await Promise.all(
        [0, 1].map(
          () =>
            new Promise<net.Socket>((resolve) => {
              const s = net.connect({ port: echo.port, host: '127.0.0.1' }, () => resolve(s));
            }),
        ),
      );
      for (const s of sockets) s.pause().on('error', () => {});
      // The sockets stay open (the callers' descriptors): only a DEL takes the duplicates'
      // registrations out; a close of the duplicate alone would leave them.
      const fds: [number, number] = [fdOf(sockets[0]!), fdOf(sockets[1]!)];
      relayAndClose(fds, 0, fds.map(inode));
      for (const s of sockets) s.destroy();
      await waitFor(() => sockets.every((s) => s.destroyed), { timeoutMs: 2000 });
    });

    it('the native accept’s watch goes to relayConnect’s relay as it is: no registration leaves', async () => {
      const acc = nativeAccept();
      if (!acc?.acceptPending || typeof fns!.relayConnect !== 'function') return;
      const srv = net.createServer();
      await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
      const port = (srv.address() as net.AddressInfo).port;
      const seen: { gone: string[]; added: number }[] = [];
      const ends: number[] = [];
      const listener = acc.acceptListen(
        fdOf(srv),
        (id) => {
          const base = registrations(undefined, true);
          relayConnectRandom(fns!, id, '127.0.0.1', echo.port, (reason) => ends.push(reason), true);
          const now = registrations(undefined, true);
          seen.push({
            gone: [...base].filter((r) => !now.has(r)),
            added: [...now].filter((r) => !base.has(r)).length,
          });
        },
        () => {},
        2000, // onConn with the first bytes, as the server listens: the connection is polled until then
        16,
      );
      srv.close();
      try {
        const c = net.connect(port, '127.0.0.1');
        c.on('error', () => {});
        await new Promise((resolve) => c.once('connect', resolve));
        await sleep(50); // accepted, read EAGAIN: its watch joined the set for reads
        c.write('first bytes');
        await waitFor(() => seen.length === 1, { timeoutMs: 2000 });
        // The client's registration stays (its token too); the destination's is the one added.
        assert.deepEqual(seen, [{ gone: [], added: 1 }]);
        c.destroy();
        await waitFor(() => ends.length === 1 && nativeAcceptLive() === 0 && fns!.relayLive() === 0, {
          timeoutMs: 3000,
        });
        assert.equal(fns!.pollLive!()[1], 0, 'the set counts none');
      } finally {
        acc.acceptClose(listener);
      }
    });
  },
);
