/**
 * `auto` routing in the lab, with the shipped client (`startClient({ route: 'auto' })`: Router +
 * RoutingDialer over DirectDialer / FragmentDialer / the Ladder tunnel) under profile lab-det
 * (C3 Host filter, C4 first-record SNI filter with its 180 s residual, C6 p = 1, ...).
 *
 * The application asks the client's SOCKS5 inbound for lab names (socks5h), as a browser does.
 * The client runs with `--dns` through the tunnel (to the lab's genuine resolver), so its direct
 * and fragment routes resolve the names through the tunnel and get the sites' domestic
 * addresses; the Ladder server abroad resolves them to the sites' remote-side addresses
 * (`LabWorld.remoteLookup`), which do not cross the censor path. Ports are the same on both sides.
 *
 * The client runs on the real clock (its 5 s probe timeout must not shrink with the lab's
 * compressed clock, or a slow machine would look like a stalling censor).
 *
 * What is checked, per request (requests run one at a time, so the client's route events are
 * attributed to the request that caused them):
 *  - unblocked sites go direct, counted at the censor path (flows from the client to the open
 *    site's address; no tunnel flow for them);
 *  - blocked ones succeed, via fragmentation or the tunnel;
 *  - no request fails in front of the user, and no destination fails again once the client has
 *    learned a route for it (every internal failure happens inside the first request to it).
 *
 * Measured, and reported: under the C4 residual the first HTTPS request to the blocked site fails
 * TWICE inside the client (direct: RST after the ClientHello; the immediate fragment retry goes to
 * the same 3-tuple, which the censor now resets at accept for 180 s) before the tunnel carries it.
 * With the residual off (second test) the fragment retry succeeds and later requests stay on
 * fragmentation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpGet, type Outcome } from '../../src/lab/client-ops.js';
import { ADDR, BLOCKED_NAME, OPEN_NAME, type LabWorld } from '../../src/lab/world.js';
import type { Endpoint } from '../../src/lab/censor.js';
import { startClient, type RoutingDialer } from '../../src/client/index.js';
import { startDataPlane } from '../../src/server/index.js';
import type { CensorOverrides } from '../../src/lab/profiles.js';
import { startWorld } from './helpers.js';

type RouteEvent = Parameters<NonNullable<ConstructorParameters<typeof RoutingDialer>[0]['onRoute']>>[0];

const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'lab-auto-password';

interface Step {
  readonly label: string;
  readonly outcome: Outcome;
  readonly events: RouteEvent[];
}

async function session(
  overrides: CensorOverrides,
  plan: ReadonlyArray<readonly [string, 'blocked' | 'open', 'http' | 'https']>,
): Promise<{
  steps: Step[];
  w: LabWorld;
  front: Endpoint;
  flowsTo: (ip: string) => number;
  stop(): Promise<void>;
}> {
  const w = await startWorld('lab-det', overrides);
  const plane = await startDataPlane({
    port: 0,
    host: '127.0.0.1',
    keys: [{ id: 'lab', method: METHOD, secret: PASSWORD }],
    allowPrivateDestinations: true,
    lookup: w.remoteLookup,
  });
  assert.ok(w.sites.blocked.remote && w.sites.open.remote, 'remote-side site addresses are up');
  const front = await w.addRemoteHost({ host: '127.0.0.1', port: plane.address.port }, { logicalPort: 8388 });
  const events: RouteEvent[] = [];
  const client = await startClient({
    socks: { host: '127.0.0.1', port: 0 },
    key: { host: front.tcp.host, port: front.tcp.port, method: METHOD, password: PASSWORD },
    route: 'auto',
    // --dns through the tunnel to the genuine resolver: direct and fragment routes resolve the
    // lab names through it (the client's own D11 wiring), never through the poisoned path.
    dns: { listen: '127.0.0.1:0', mode: 'tunnel', upstream: w.zone.tcpAddress },
    routing: { onRoute: (e) => events.push(e) },
  });
  const steps: Step[] = [];
  const stop = async (): Promise<void> => {
    await client.close();
    await plane.close();
    await w.stop();
  };
  try {
    for (const [label, site, scheme] of plan) {
      const name = site === 'blocked' ? BLOCKED_NAME : OPEN_NAME;
      const port = w.sites[site][scheme].port;
      const from = events.length;
      const r = await httpGet({
        clock: w.clock,
        timeoutMs: 60_000,
        minRealMs: 5_000,
        socks: { host: '127.0.0.1', port: client.socksAddress!.port },
        connect: { host: name, port },
        hostHeader: name,
        ...(scheme === 'https' ? { tls: { servername: name, ca: w.certs.ca } } : {}),
      });
      steps.push({ label, outcome: r.outcome, events: events.slice(from) });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const flowsTo = (ip: string): number =>
    new Set(
      w.log.records
        .filter((d) => d.flow?.proto === 'tcp' && d.flow.sIP === ip)
        .map((d) => `${d.flow!.cIP}:${d.flow!.cPort}`),
    ).size;
  return { steps, w, front: front.logical, flowsTo, stop };
}

const describe = (s: Step): string =>
  `${s.label}=${s.outcome} [${s.events.map((e) => `${e.route}:${e.outcome}${e.kind ? `(${e.kind})` : ''}`).join(' > ')}]`;

const failures = (s: Step): number => s.events.filter((e) => e.outcome === 'failed').length;
const finalRoute = (s: Step): string | undefined => s.events.filter((e) => e.outcome === 'ok').at(-1)?.route;

test('auto routing under lab-det: open sites direct, blocked ones through fragmentation or the tunnel, nothing fails in front of the user', async () => {
  const plan = [
    ['open http', 'open', 'http'],
    ['open https', 'open', 'https'],
    ['blocked https', 'blocked', 'https'],
    ['blocked http', 'blocked', 'http'],
    ['open http #2', 'open', 'http'],
    ['open https #2', 'open', 'https'],
    ['blocked https #2', 'blocked', 'https'],
    ['blocked http #2', 'blocked', 'http'],
  ] as const;
  const { steps, w, front, flowsTo, stop } = await session({}, plan);
  try {
    console.log(`# auto (lab-det): ${steps.map(describe).join('; ')}`);
    for (const s of steps) assert.equal(s.outcome, 'OK', describe(s));
    // Open sites: direct, never failing; counted at the censor path.
    const open = steps.filter((s) => s.label.startsWith('open'));
    for (const s of open) {
      assert.equal(finalRoute(s), 'direct', describe(s));
      assert.equal(failures(s), 0, describe(s));
    }
    assert.equal(flowsTo(ADDR.openSite), open.length, 'one direct flow per open-site request at the path');
    // Blocked: fragment or tunnel; every failure inside the first request to the site.
    const blocked = steps.filter((s) => s.label.startsWith('blocked'));
    for (const s of blocked) assert.ok(['fragment', 'proxy'].includes(finalRoute(s) ?? ''), describe(s));
    assert.ok(failures(blocked[0]!) >= 1, 'the first blocked request met the censor');
    // At most direct + fragment (the fragment retry meets the C4 residual on the same 3-tuple).
    assert.ok(failures(blocked[0]!) <= 2, describe(blocked[0]!));
    for (const s of blocked.slice(1)) assert.equal(failures(s), 0, `no second failure: ${describe(s)}`);
    // Tunnel flows: the tunnelled requests plus the DNS forwarder's pipelined stream(s).
    const tunnelled = blocked.filter((s) => finalRoute(s) === 'proxy').length;
    assert.ok(
      flowsTo(front.host) >= tunnelled + 1 && flowsTo(front.host) <= tunnelled + 2,
      `tunnel flows ${flowsTo(front.host)} = ${tunnelled} tunnelled requests + DNS`,
    );
    assert.equal(w.log.filter({ behaviour: 'C2' }).length, 0, 'no DNS crossed the path in the clear');
    // Nothing the client did drew a C6 trigger (shaped tunnel) or a prober verdict.
    assert.equal(w.log.filter({ behaviour: 'C6', action: 'DROP_C2S' }).length, 0);
    console.log(
      `# auto (lab-det): ${steps.length} requests, ${steps.filter((s) => s.outcome === 'OK').length} OK; ` +
        `direct flows to the open site at the path ${flowsTo(ADDR.openSite)}, to the blocked site ${flowsTo(ADDR.blockedSite)}, tunnel flows ${flowsTo(front.host)} (requests + DNS); ` +
        `internal failures per request ${steps.map(failures).join(',')}`,
    );
  } finally {
    await stop();
  }
});

test('auto routing, C4 without its residual: the blocked HTTPS site escalates direct -> fragment once and stays on fragmentation', async () => {
  const plan = [
    ['blocked https', 'blocked', 'https'],
    ['blocked https #2', 'blocked', 'https'],
    ['blocked https #3', 'blocked', 'https'],
    ['open https', 'open', 'https'],
  ] as const;
  const { steps, front, flowsTo, stop } = await session({ c4: { residualMs: 0 } }, plan);
  try {
    console.log(`# auto (C4 residual 0): ${steps.map(describe).join('; ')}`);
    for (const s of steps) assert.equal(s.outcome, 'OK', describe(s));
    assert.deepEqual(
      steps[0]!.events.map((e) => [e.route, e.outcome, e.kind ?? null]),
      [
        ['direct', 'failed', 'reset-after-clienthello'],
        ['fragment', 'ok', null],
      ],
    );
    for (const s of steps.slice(1, 3)) {
      assert.equal(finalRoute(s), 'fragment', describe(s));
      assert.equal(failures(s), 0);
    }
    assert.equal(finalRoute(steps[3]!), 'direct');
    assert.ok(
      steps.every((s) => s.events.every((e) => e.route !== 'proxy')),
      'no request needed the tunnel',
    );
    assert.ok(flowsTo(front.host) <= 2, `the tunnel carried only DNS (${flowsTo(front.host)} flows)`);
  } finally {
    await stop();
  }
});
