/**
 * `ladder client --rules-from-probe FILE`: the probe's JSON decides the route. Through the real
 * client and a real `ladder server` (behind a recording forwarder that counts tunnel
 * connections): the site the probe found blocked is fetched through the tunnel, the accessible
 * one directly; the negative control (the same client without the file) tunnels both. The rule
 * mapping and the router's treatment of measured (soft) rules are unit-tested; a bad file is one
 * line naming file, line and column.
 */
import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { parseProbeRules } from '../../src/client/routing/probe-rules.js';
import { Router, type Decision } from '../../src/client/routing/router.js';
import { ManualClock } from '../../src/shared/clock.js';
import { parseRuleList, RuleSet } from '../../src/client/routing/rules.js';
import { runLadder } from '../helpers/ladder-run.js';
import { startRecorder, type Recorder } from '../helpers/recorder.js';
import { socks5Connect } from '../helpers/socks5.js';

/** A decision without the matched rule or learned reason (the debug log's details). */
const routeAndSource = (d: Decision): Pick<Decision, 'route' | 'source'> => ({
  route: d.route,
  source: d.source,
});
import { ssUrl, startLadderClient, startLadderServer, type Peer } from '../helpers/peers.js';

const line = (input: string, blocking: unknown): string =>
  JSON.stringify({ test_name: 'web_connectivity', input, test_keys: { blocking } });

describe('parseProbeRules', () => {
  test('blocked → proxy, accessible → direct, null → no rule; the most cautious verdict per host wins', () => {
    const text = [
      line('https://open.example/', false),
      line('http://dns.example/', 'dns'),
      line('https://sni.example/', 'tls'),
      line('https://unknown.example/', null),
      line('https://mixed.example/a', false),
      line('https://mixed.example/b', 'http-diff'),
      line('http://192.0.2.7/', 'tcp_ip'),
      '',
    ].join('\n');
    const rs = parseProbeRules(text, 'p.jsonl');
    assert.equal(rs.match('open.example'), 'direct');
    assert.equal(rs.match('www.open.example'), undefined, 'exact names only');
    assert.equal(rs.match('dns.example'), 'proxy');
    assert.equal(rs.match('sni.example'), 'proxy', 'without fragmentation the tunnel');
    assert.equal(rs.match('unknown.example'), undefined);
    assert.equal(rs.match('mixed.example'), 'proxy');
    assert.equal(rs.match('192.0.2.7'), 'proxy');
    assert.equal(rs.fallback, undefined);
    const auto = parseProbeRules(text, 'p.jsonl', { fragment: true });
    assert.equal(auto.match('sni.example'), 'fragment', 'SNI filtering: fragmentation first in auto');
    assert.equal(auto.match('dns.example'), 'proxy');
  });

  test('bad files: one line naming file, line (and column for JSON)', () => {
    const cases: Array<[string, RegExp]> = [
      [
        `${line('https://a.example/', false)}\n{"test_name": "web_connectivity",,}`,
        /^p\.jsonl:2:\d+: not JSON/,
      ],
      [line('https://a.example/', 'blocked'), /^p\.jsonl:1: test_keys\.blocking: "blocked" is not/],
      [
        JSON.stringify({ test_name: 'x_ladder_server_check', input: 'x' }),
        /^p\.jsonl:1: test_name is "x_ladder_server_check"/,
      ],
      [line('not a url', false), /^p\.jsonl:1: input: not a URL/],
      ['\n\n', /^p\.jsonl:1: no measurements/],
      ['[1]', /^p\.jsonl:1: expected a measurement object/],
    ];
    for (const [text, re] of cases)
      assert.throws(
        () => parseProbeRules(text, 'p.jsonl'),
        (e: Error) => re.test(e.message) && !e.message.includes('\n'),
      );
  });

  test('the router escalates measured rules in auto mode, never explicit ones (control)', () => {
    const clock = new ManualClock();
    const measured = parseProbeRules(line('https://sni.example/', 'tls'), 'p', { fragment: true });
    const r = new Router({ mode: 'auto', rules: measured, clock });
    assert.deepEqual(routeAndSource(r.decide('sni.example')), { route: 'fragment', source: 'rule' });
    assert.equal(r.reportFailure('sni.example', 'fragment', 'reset'), 'proxy');
    assert.deepEqual(routeAndSource(r.decide('sni.example')), { route: 'proxy', source: 'learned' });
    const explicit = new Router({ mode: 'auto', rules: parseRuleList('domain,sni.example,fragment'), clock });
    assert.equal(explicit.reportFailure('sni.example', 'fragment', 'reset'), undefined);
    assert.deepEqual(routeAndSource(explicit.decide('sni.example')), { route: 'fragment', source: 'rule' });
    const proxyMode = new Router({ mode: 'proxy', rules: new RuleSet().concat(measured), clock });
    assert.equal(proxyMode.reportFailure('sni.example', 'fragment', 'reset'), undefined);
  });
});

describe('ladder client --rules-from-probe (real client, real server)', () => {
  const PASSWORD = 'rules-from-probe-key';
  const dir = mkdtempSync(join(tmpdir(), 'ladder-rules-probe-'));
  let server: Peer & { port: number };
  let recorder: Recorder;
  const hits = { blocked: 0, open: 0 };
  const sites: http.Server[] = [];
  const ports = { blocked: 0, open: 0 };

  before(async () => {
    for (const which of ['blocked', 'open'] as const) {
      const s = http.createServer((_req, res) => {
        hits[which]++;
        res.end(which);
      });
      // The blocked site is asked for by name (localhost): listen dual-stack so either answer works.
      if (which === 'blocked')
        await new Promise<void>((r) => s.listen({ port: 0, host: '::', ipv6Only: false }, r));
      else await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      ports[which] = (s.address() as AddressInfo).port;
      sites.push(s);
    }
    server = await startLadderServer({ method: 'chacha20-ietf-poly1305', password: PASSWORD });
    recorder = await startRecorder(server.port);
  });
  after(async () => {
    await recorder?.close();
    await server?.stop();
    for (const s of sites) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = async (socksPort: number, host: string, port: number): Promise<string> => {
    const s = await socks5Connect({ proxyPort: socksPort, host, port });
    s.resume();
    s.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    await new Promise((r) => s.once('close', r));
    return Buffer.concat(chunks).toString();
  };

  const fetchBoth = async (
    extra: string[],
  ): Promise<{ tunnelled: number; blocked: string; open: string }> => {
    const client = await startLadderClient({
      key: ssUrl('chacha20-ietf-poly1305', PASSWORD, '127.0.0.1', recorder.port),
      extraArgs: extra,
    });
    try {
      const before = recorder.connections.length;
      const blocked = await get(client.socksPort, 'localhost', ports.blocked);
      const open = await get(client.socksPort, '127.0.0.1', ports.open);
      return { tunnelled: recorder.connections.length - before, blocked, open };
    } finally {
      await client.stop();
    }
  };

  test('the blocked site goes through the tunnel, the accessible one directly', async () => {
    const file = join(dir, 'probe.jsonl');
    writeFileSync(
      file,
      `${line(`http://localhost:${ports.blocked}/`, 'http-failure')}\n${line(`http://127.0.0.1:${ports.open}/`, false)}\n`,
    );
    const r = await fetchBoth(['--rules-from-probe', file]);
    assert.match(r.blocked, /\r\n\r\nblocked$/);
    assert.match(r.open, /\r\n\r\nopen$/);
    assert.equal(r.tunnelled, 1, 'one tunnel connection: the blocked site');
  });

  test('negative control: without the file both go through the tunnel', async () => {
    const r = await fetchBoth([]);
    assert.match(r.blocked, /blocked$/);
    assert.match(r.open, /open$/);
    assert.equal(r.tunnelled, 2);
  });

  test('a bad file: one line naming file and line, exit 2', async () => {
    const file = join(dir, 'bad.jsonl');
    writeFileSync(file, `${line('https://a.example/', false)}\n{"input": nope}\n`);
    const key = ssUrl('chacha20-ietf-poly1305', PASSWORD, '127.0.0.1', recorder.port);
    const r = await runLadder(['client', '--key', key, '--rules-from-probe', file, '--socks', '127.0.0.1:0']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /bad\.jsonl:2:(\d+:)? not JSON/);
    const missing = await runLadder([
      'client',
      '--key',
      key,
      '--rules-from-probe',
      join(dir, 'none.jsonl'),
      '--socks',
      '127.0.0.1:0',
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /none\.jsonl: /);
  });
});
