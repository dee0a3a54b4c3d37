/**
 * The survival runner: fixed workload per contender, prober verdicts, C1 feedback, and a report
 * that is stable for a fixed seed. A deliberately naive "ladder" contender must surface as a
 * tunnel-core finding with evidence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { runSurvival, type Contender, type TunnelContender } from '../../src/lab/survival.js';
import { formatSurvivalTable } from '../../src/lab/survival-format.js';
import { profile } from '../../src/lab/profiles.js';
import type { Endpoint } from '../../src/lab/censor.js';
import { echoServer, fetEligible } from './helpers.js';

/** A SOCKS5 front that opens every tunnel with a fully encrypted 240-byte first packet, then pipes. */
async function naiveSocks(server: Endpoint): Promise<{ socks: Endpoint; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((c) => {
    sockets.add(c);
    c.on('error', () => undefined);
    c.once('data', () => {
      c.write(Buffer.from([5, 0]));
      c.once('data', () => {
        const up = net.connect(server, () => {
          up.write(fetEligible(240));
          c.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
          c.pipe(up).pipe(c);
        });
        sockets.add(up);
        up.on('error', () => c.destroy());
      });
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    socks: { host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port },
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

const naive: TunnelContender = {
  kind: 'tunnel',
  name: 'naive echo tunnel',
  description: 'a tunnel whose server echoes anything (must be caught)',
  ladder: true,
  async startServer() {
    const s = await echoServer();
    return { address: s.address, stop: () => s.close() };
  },
  startClient: (server) => naiveSocks(server),
};

const contenders: Contender[] = [
  { kind: 'direct', name: 'direct blocked', description: 'd', site: 'blocked' },
  { kind: 'direct', name: 'direct open', description: 'd', site: 'open' },
  naive,
];

test('survival: direct rows fail as each behaviour predicts; a naive server is caught and reported; stable for a seed', async () => {
  const config = profile('lab-det', { c7: { maxDelayMs: 5_000, concurrency: 8 } });
  const a = await runSurvival({ config, seed: 3, clockRate: 40, contenders });
  const b = await runSurvival({ config, seed: 3, clockRate: 40, contenders });
  assert.deepEqual(a, b, 'same seed, same report');

  const [blocked, open, tunnel] = a.contenders;
  assert.deepEqual(
    blocked!.requests.steps.map((s) => s.outcome),
    ['DNS_FORGED', 'RST', 'RST', 'RST', 'RST'],
  );
  assert.ok(blocked!.blockedBy.C2 && blocked!.blockedBy.C3 && blocked!.blockedBy.C4);
  assert.equal(blocked!.residualHits, 2, 'second HTTP and HTTPS rounds meet the C3 and C4 residual blocks');
  assert.equal(open!.requests.ok, 5);
  assert.deepEqual(open!.blockedBy, {});

  assert.equal(tunnel!.prober?.proxy, true);
  assert.ok(tunnel!.prober?.rules.includes('i'));
  assert.equal(tunnel!.endpointBlocked, true);
  assert.ok(tunnel!.c6Triggers >= 1);
  assert.equal(a.findings.length, 1);
  assert.match(a.findings[0]!, /tunnel-core bug: .*naive echo tunnel.*rule\(s\) i.*R1/);
  const table = formatSurvivalTable(a);
  assert.match(table, /naive echo tunnel\s+0\/5/);
  assert.match(table, /PROXY \(i/);
  assert.match(table, /FINDINGS:/);
  assert.doesNotMatch(table, /No findings/);
  // Without findings the table says so, and what the failing rows are.
  assert.match(
    formatSurvivalTable({ ...a, findings: [] }),
    /^No findings \(exit 0\): [^]*negative controls/m,
  );
  // The default table is narrow, in plain words, with a legend; the raw counts are --verbose only.
  const rowsOf = (t: string) => t.split('\n').slice(2, 2 + 2 + a.contenders.length);
  for (const l of rowsOf(table)) assert.ok(l.length <= 120, `table line of ${l.length} columns: ${l}`);
  assert.match(table, /direct blocked\s+0\/5\s+DNS, HTTP x2, SNI, residual x2\s+-\s+reset/);
  assert.match(table, /PROXY \(i[^)]*\) -> IP blocked/);
  assert.match(table, /docs\/glossary\.md/);
  assert.match(table, /^Per-row details: --verbose\. The whole report as data: --json\.$/m);
  assert.doesNotMatch(table, /C2=1|Details:|Notes:/);
  const verbose = formatSurvivalTable(a, { verbose: true });
  assert.deepEqual(rowsOf(verbose), rowsOf(table), 'same table');
  assert.match(
    verbose,
    /blocked by: C2=1 C3=2 C4=1 residual:c3-penalty-box=1 residual:c4-sni=1; C6 triggers 0/,
  );
  assert.match(verbose, /steps: dns A=DNS_FORGED, http #1=RST/);
  assert.match(verbose, /prober evidence: /);
  assert.match(verbose, /Notes:/);
  // --verbose shows the details: its legend no longer points to --verbose.
  assert.doesNotMatch(verbose, /--verbose/);
  assert.match(verbose, /^The whole report as data: --json\.$/m);
});
