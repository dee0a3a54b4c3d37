/**
 * D10/D15 in the lab: the shipped client (`startClient` with two keys -> FailoverDialer, default
 * attempt 3 s / stall 4 s / residual 180 s, on the lab's clock) uses two emulated fronts of one
 * Ladder server (127.0.20.1:8388 and 127.0.20.2:8388, distinct 3-tuples). Mid-session the censor
 * null-routes the first (C1 `blockEndpoint`, DROP_S2C: connected, then silence, as a user-space
 * path shows a SYN-level block).
 *
 * The application: one echo request at a time through the client's SOCKS5 inbound, giving up
 * after 1.5 s (virtual) and trying again at once. All times below are virtual (the lab clock at
 * x5, which also drives the client's timers), so "5 s" means what the client experiences.
 *
 *  - Recovery: the first successful request after the block comes < 5 s after it, over front 2.
 *  - During the client's residual period for front 1 (180 s from when it marked the endpoint),
 *    the censor path sees zero new connections to front 1 (C1 null-route decisions at accept),
 *    while requests keep succeeding over front 2.
 *  - Control: with a single endpoint the same block leaves the client with no working request
 *    for the whole observation window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { LabWorld } from '../../src/lab/world.js';
import { profile } from '../../src/lab/profiles.js';
import { sleep } from '../../src/lab/clock.js';
import { socksConnect } from '../../src/lab/client-ops.js';
import type { Endpoint } from '../../src/lab/censor.js';
import { startClient, type LocalClient } from '../../src/client/index.js';
import { startDataPlane } from '../../src/server/index.js';
import { startEcho } from '../helpers/net.js';

const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'lab-failover-password';
const RATE = 5;
const APP_TIMEOUT_MS = 1_500;

/** One echo request through the client; true when the echo came back within `ms` (virtual). */
async function request(
  w: LabWorld,
  client: LocalClient,
  echoPort: number,
  ms = APP_TIMEOUT_MS,
): Promise<boolean> {
  const data = randomBytes(32);
  let timer: ReturnType<LabWorld['clock']['setTimeout']> | undefined;
  const timeout = new Promise<false>((r) => (timer = w.clock.setTimeout(() => r(false), ms)));
  const attempt = (async (): Promise<boolean> => {
    const s = await socksConnect(
      { host: '127.0.0.1', port: client.socksAddress!.port },
      { host: '127.0.0.1', port: echoPort },
    );
    return new Promise<boolean>((resolve) => {
      let buf = Buffer.alloc(0);
      s.on('error', () => resolve(false));
      s.on('close', () => resolve(false));
      s.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (buf.length >= data.length) resolve(buf.equals(data));
      });
      s.write(data);
      void timeout.then(() => s.destroy());
    });
  })().catch(() => false);
  const ok = await Promise.race([attempt, timeout]);
  w.clock.clearTimeout(timer!);
  return ok;
}

async function setup(fronts: number) {
  const w = await LabWorld.start({ config: profile('lab-det'), seed: 1, clockRate: RATE, prober: false });
  const plane = await startDataPlane({
    port: 0,
    host: '127.0.0.1',
    keys: [{ id: 'lab', method: METHOD, secret: PASSWORD }],
    allowPrivateDestinations: true,
  });
  const echo = await startEcho();
  const hosts: Array<{ tcp: Endpoint; logical: Endpoint }> = [];
  for (let i = 0; i < fronts; i++)
    hosts.push(await w.addRemoteHost({ host: '127.0.0.1', port: plane.address.port }, { logicalPort: 8388 }));
  const marks: Array<{ index: number; kind: string; t: number; seq: number }> = [];
  const client = await startClient({
    socks: { host: '127.0.0.1', port: 0 },
    keys: hosts.map((h) => ({ host: h.tcp.host, port: h.tcp.port, method: METHOD, password: PASSWORD })),
    clock: w.clock,
    failover: {
      onEndpointFailure: (index, kind) =>
        marks.push({ index, kind, t: w.clock.now(), seq: w.log.records.length }),
    },
  });
  const stop = async (): Promise<void> => {
    await client.close();
    await echo.close();
    await plane.close();
    await w.stop();
  };
  /**
   * New connections the censor path saw to a front: distinct client ports among the decisions on
   * it (each accepted flow is logged by C1 at accept when null-routed, and by C6 on its first data).
   */
  const connectionsTo = (h: Endpoint, fromSeq = 0): number =>
    new Set(
      w.log.records
        .slice(fromSeq)
        .filter((d) => d.flow?.proto === 'tcp' && d.flow.sIP === h.host && d.flow.sPort === h.port)
        .map((d) => `${d.flow!.cIP}:${d.flow!.cPort}`),
    ).size;
  return { w, client, echo, hosts, marks, stop, connectionsTo };
}

test('D10/D15: one of two endpoints null-routed mid-session: recovery on the second < 5 s, blocked 3-tuple untouched during the residual', async () => {
  const { w, client, echo, hosts, marks, stop, connectionsTo } = await setup(2);
  try {
    const [f1, f2] = [hosts[0]!.logical, hosts[1]!.logical];
    for (let i = 0; i < 3; i++)
      assert.ok(await request(w, client, echo.port, 20_000), `warm-up request ${i}`);
    assert.equal(connectionsTo(f1), 3, 'the session runs on the first endpoint');
    assert.equal(connectionsTo(f2), 0);
    assert.equal(marks.length, 0, 'no endpoint marked before the block');

    // Mid-session: C1 null-routes front 1.
    const tBlock = w.clock.now();
    w.censor.blockEndpoint(f1.host, f1.port, 'test: mid-session block');
    // A browsing session: a new request every 250 ms (at most 8 in flight), until one works.
    let tries = 0;
    let recoveredAt: number | undefined;
    const inflight = new Set<Promise<void>>();
    while (recoveredAt === undefined && tries < 60 && w.clock.now() - tBlock < 15_000) {
      if (inflight.size < 8) {
        tries++;
        const p: Promise<void> = request(w, client, echo.port).then((ok) => {
          if (ok && recoveredAt === undefined) recoveredAt = w.clock.now();
          inflight.delete(p);
        });
        inflight.add(p);
      }
      await sleep(w.clock, 250);
    }
    await Promise.all(inflight);
    assert.ok(recoveredAt !== undefined, `recovered after ${tries} requests`);
    const recoveryMs = recoveredAt - tBlock;
    assert.ok(recoveryMs < 5_000, `recovered in ${recoveryMs} ms (virtual)`);
    assert.equal(marks[0]?.index, 0, 'the client marked endpoint 0');
    const caught = connectionsTo(f1) - 3;
    console.log(
      `# D10/D15: recovered ${recoveryMs} ms (virtual; ${Math.round(recoveryMs / RATE)} ms real) after the block; ` +
        `${tries} requests started by then, ${caught} connections to the blocked endpoint before the mark; ` +
        `endpoint 0 marked '${marks[0]!.kind}' ${marks[0]!.t - tBlock} ms after the block`,
    );

    // The client's residual period for front 1: zero connections to it, requests keep working.
    const mark = marks[0]!;
    const seqAfterRecovery = w.log.records.length;
    let during = 0;
    let duringOk = 0;
    while (w.clock.now() - mark.t < 170_000 && during < 40) {
      await sleep(w.clock, 10_000);
      during++;
      if (await request(w, client, echo.port, 20_000)) duringOk++;
    }
    // Counted from the recovery on, when every request started before the mark has settled: a dial
    // made just before the mark can reach the lab's log just after it on a loaded machine (seen
    // once in CI: 1 connection), which says nothing about the residual.
    assert.equal(
      connectionsTo(f1, seqAfterRecovery),
      0,
      'no connection to the blocked 3-tuple during the residual',
    );
    assert.equal(duringOk, during, 'every request during the residual succeeded over the second endpoint');
    assert.ok(connectionsTo(f2) >= during + 1);
    assert.ok(client.failover!.selector.isAvoided({ host: hosts[0]!.tcp.host, port: hosts[0]!.tcp.port }));
    console.log(
      `# D10/D15: ${during} requests over ${Math.round((w.clock.now() - mark.t) / 1000)} s of the residual, all OK via endpoint 1; ` +
        `${connectionsTo(f1, mark.seq)} connections to the blocked 3-tuple since the mark (${connectionsTo(f2, seqAfterRecovery)} to endpoint 1)`,
    );
  } finally {
    await stop();
  }
});

test('D10/D15 control: with a single endpoint the same null-route leaves no working request', async () => {
  const { w, client, echo, hosts, stop, connectionsTo } = await setup(1);
  try {
    assert.ok(await request(w, client, echo.port, 20_000), 'warm-up');
    const f1 = hosts[0]!.logical;
    const tBlock = w.clock.now();
    w.censor.blockEndpoint(f1.host, f1.port, 'test: block the only endpoint');
    let tries = 0;
    let okCount = 0;
    while (w.clock.now() - tBlock < 10_000 && tries < 20) {
      tries++;
      if (await request(w, client, echo.port)) okCount++;
    }
    assert.equal(okCount, 0, `single endpoint: ${okCount}/${tries} requests worked after the block`);
    assert.equal(client.failover, undefined);
    console.log(
      `# D10/D15 control: single endpoint, ${tries} requests in 10 s (virtual) after the block, 0 OK; ${connectionsTo(f1) - 1} null-routed connections`,
    );
  } finally {
    await stop();
  }
});
