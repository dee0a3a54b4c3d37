import { test } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import fc from 'fast-check';
import { ManualClock } from '../../shared/clock.js';
import { parseAcl } from './acl.js';
import { EndpointSelector } from './endpoints.js';
import { generatePac } from './pac.js';
import { classifyFailure, Router } from './router.js';
import { parseRuleList, RuleSyntaxError, type Route, type RuleSet } from './rules.js';

const LIST = `
# blocked sites
domain-suffix,google.com,proxy
DOMAIN-SUFFIX,twitter.com,PROXY
domain,www.wikipedia.org,fragment
domain-keyword,youtube,proxy
domain-regex,(^|\\.)cn$,direct
ip-cidr,10.0.0.0/8,direct,no-resolve
ip-cidr6,2001:db8::/32,direct
// domestic
domain-suffix,baidu.com,direct
final,proxy
`;

test('simple list format: parse and match (first match wins, suffix semantics, case, trailing dot)', () => {
  const rs = parseRuleList(LIST, 'my.rules');
  assert.equal(rs.rules.length, 8);
  assert.equal(rs.match('google.com'), 'proxy');
  assert.equal(rs.match('www.GOOGLE.com.'), 'proxy');
  assert.equal(rs.match('notgoogle.com'), 'proxy'); // via final
  assert.equal(parseRuleList('domain-suffix,google.com,proxy').match('notgoogle.com'), undefined);
  assert.equal(rs.match('mobile.twitter.com'), 'proxy');
  assert.equal(rs.match('www.wikipedia.org'), 'fragment');
  assert.equal(rs.match('en.wikipedia.org'), 'proxy');
  assert.equal(rs.match('m.youtube-nocookie.com'), 'proxy');
  assert.equal(rs.match('gov.cn'), 'direct');
  assert.equal(rs.match('10.1.2.3'), 'direct');
  assert.equal(rs.match('[2001:db8::5]'), 'direct');
  assert.equal(rs.match('www.baidu.com'), 'direct');
  assert.equal(rs.fallback, 'proxy');
});

test('block routes: block, and Clash REJECT, in rules and as the final route', () => {
  const rs = parseRuleList('domain-suffix,ads.example,block\nDOMAIN,track.example,REJECT\nfinal,proxy\n');
  assert.equal(rs.match('x.ads.example'), 'block');
  assert.equal(rs.match('track.example'), 'block');
  assert.equal(rs.match('news.example'), 'proxy');
  assert.equal(rs.blocks, true);
  assert.equal(parseRuleList('final,block').blocks, true);
  assert.equal(parseRuleList('domain,a.example,direct').blocks, false);
});

test('simple list format: errors name the file, the line and the problem', () => {
  const cases: [string, RegExp][] = [
    ['domain-suffix,example.com', /my\.rules:1: expected/],
    ['\n\nfoo,example.com,proxy', /my\.rules:3: unknown rule type "foo"/],
    [
      'domain-sufix,example.com,proxy',
      /my\.rules:1: unknown rule type "domain-sufix" \(did you mean domain-suffix\?\) \(.*ip-cidr, ip-cidr6, final\)/,
    ],
    [
      'domain-suffix,example.com,proxi',
      /my\.rules:1: unknown route "proxi" \(did you mean proxy\?\) \(use direct, fragment, proxy or block\)/,
    ],
    ['domain-suffix,example.com,tunnel', /unknown route "tunnel"/],
    ['ip-cidr,10.0.0.0/40,direct', /not an IP address or CIDR/],
    ['domain-regex,(unclosed,proxy', /invalid regular expression/],
    ['domain,exa mple.com,proxy', /not a domain name/],
    ['final', /expected "final,<route>"/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseRuleList(text, 'my.rules'),
      (e) => e instanceof RuleSyntaxError && re.test(e.message),
      text,
    );
  }
});

const ACL = `
[proxy_all]

[bypass_list]
# LAN and domestic
127.0.0.0/8
192.168.0.0/16
(^|\\.)baidu\\.com$
||qq.com
|exact.example

[proxy_list]
(^|\\.)google\\.com$
||baidu.com.hk

[outbound_block_list]
1.2.3.4
`;

test('Shadowsocks ACL: sections, IP/CIDR, regex, ||suffix, |exact; proxy_list beats bypass_list', () => {
  const rs = parseAcl(ACL, 'x.acl');
  assert.equal(rs.fallback, 'proxy');
  assert.equal(rs.match('192.168.1.1'), 'direct');
  assert.equal(rs.match('127.0.0.1'), 'direct');
  assert.equal(rs.match('www.baidu.com'), 'direct');
  assert.equal(rs.match('im.qq.com'), 'direct');
  assert.equal(rs.match('exact.example'), 'direct');
  assert.equal(rs.match('sub.exact.example'), 'proxy');
  assert.equal(rs.match('www.google.com'), 'proxy');
  assert.equal(rs.match('1.2.3.4'), 'proxy'); // outbound_block_list is server-side only
  assert.equal(rs.match('8.8.8.8'), 'proxy');
  // A name on both lists is tunnelled.
  const both = parseAcl('[bypass_list]\n||example.com\n[proxy_list]\n||example.com\n');
  assert.equal(both.match('a.example.com'), 'proxy');
  const bypassAll = parseAcl('[bypass_all]\n[proxy_list]\n||blocked.example\n');
  assert.equal(bypassAll.match('x.example'), 'direct');
  assert.equal(bypassAll.match('www.blocked.example'), 'proxy');
  assert.throws(() => parseAcl('[nonsense]'), /x?acl:1: unknown ACL section/);
  assert.throws(() => parseAcl('1.2.3.4'), /outside \[bypass_list\]/);
  assert.throws(() => parseAcl('[proxy_list]\n(bad', 'f.acl'), /f\.acl:2:/);
  // A CIDR with an impossible prefix is refused, not read as a regular expression.
  assert.throws(
    () => parseAcl('[bypass_list]\n\n1.2.3.4/40', 'f.acl'),
    /^RuleSyntaxError: f\.acl:3: "1\.2\.3\.4\/40" is not a valid CIDR/,
  );
  assert.throws(
    () => parseAcl('[proxy_list]\n2001:db8::/129', 'f.acl'),
    /f\.acl:2: "2001:db8::\/129" is not a valid CIDR/,
  );
  assert.equal(parseAcl('[bypass_list]\n10.0.0.0/8\n').match('10.1.2.3'), 'direct');
});

function runPac(pac: string, host: string): string {
  const isInNet = (h: string, net: string, mask: string): boolean => {
    const n = (s: string): number => s.split('.').reduce((a, b) => ((a << 8) | Number(b)) >>> 0, 0);
    return (n(h) & n(mask)) >>> 0 === (n(net) & n(mask)) >>> 0;
  };
  const ctx = vm.createContext({ isInNet });
  vm.runInContext(pac, ctx, { timeout: 1000 });
  return vm.runInContext(
    `FindProxyForURL(${JSON.stringify(`https://${host}/`)}, ${JSON.stringify(host)})`,
    ctx,
    { timeout: 1000 },
  ) as string;
}

test('PAC: FindProxyForURL agrees with the rule set (direct vs local client)', () => {
  for (const rs of [parseRuleList(LIST), parseAcl(ACL)] as RuleSet[]) {
    const pac = generatePac(rs, { proxy: 'SOCKS5 127.0.0.1:1080; SOCKS 127.0.0.1:1080' });
    const hosts = [
      'google.com',
      'www.google.com',
      'notgoogle.com',
      'www.wikipedia.org',
      'gov.cn',
      '10.1.2.3',
      '11.1.2.3',
      'www.baidu.com',
      'im.qq.com',
      '192.168.3.4',
      'exact.example',
      'sub.exact.example',
      'foo.youtube.com',
    ];
    for (const h of hosts) {
      const want = rs.match(h) === 'direct' ? 'DIRECT' : 'SOCKS5 127.0.0.1:1080; SOCKS 127.0.0.1:1080';
      assert.equal(runPac(pac, h), want, `${h}`);
    }
  }
  // Default route and hostile input: rule values are data, not code.
  const evil = parseRuleList('domain-keyword,"];throw 1;//,direct\n');
  assert.equal(runPac(generatePac(evil, { defaultRoute: 'direct' }), 'x.example'), 'DIRECT');
  assert.equal(runPac(generatePac(evil, { defaultRoute: 'direct' }), 'a"];throw 1;//b'), 'DIRECT');
  assert.throws(() => generatePac(evil, { proxy: 'SOCKS5 "x' }), /must not contain/);
});

test('Router: modes and rules', () => {
  const clock = new ManualClock();
  const rules = parseRuleList('domain-suffix,cn,direct\ndomain-suffix,blocked.example,proxy\n');
  const proxy = new Router({ mode: 'proxy', rules, clock });
  assert.deepEqual(proxy.decide('www.example.com'), { route: 'proxy', source: 'mode' });
  assert.deepEqual(proxy.decide('gov.cn'), { route: 'direct', source: 'rule', rule: rules.rules[0] });
  const direct = new Router({ mode: 'direct', rules, clock });
  assert.equal(direct.decide('www.example.com').route, 'direct');
  assert.equal(direct.decide('a.blocked.example').route, 'proxy');
  assert.equal(direct.reportFailure('www.example.com', 'direct', 'reset'), undefined);
  const withFinal = new Router({ mode: 'auto', rules: parseRuleList('final,proxy'), clock });
  assert.deepEqual(withFinal.decide('x.example'), { route: 'proxy', source: 'rule' }); // a fallback: no rule
});

test('Router auto: escalation per failure pattern, immediate retry route, TTL, no step-down', () => {
  const clock = new ManualClock();
  const r = new Router({
    mode: 'auto',
    clock,
    ttlMs: 60_000,
    rules: parseRuleList('domain,pinned.example,direct'),
  });
  // Unblocked sites go direct and stay direct.
  assert.deepEqual(r.decide('ok.example'), { route: 'direct', source: 'mode' });
  r.reportSuccess('ok.example', 'direct');
  assert.equal(r.decide('ok.example').route, 'direct');
  // SNI reset -> fragment; fragment fails too (reassembling censor) -> proxy.
  assert.equal(r.reportFailure('sni.example', 'direct', 'reset-after-clienthello'), 'fragment');
  assert.deepEqual(r.decide('SNI.example.'), {
    route: 'fragment',
    source: 'learned',
    reason: 'reset-after-clienthello',
  });
  assert.equal(r.reportFailure('sni.example', 'fragment', 'reset-after-clienthello'), 'proxy');
  assert.equal(r.decide('sni.example').route, 'proxy');
  // Proxy failures do not change the route.
  assert.equal(r.reportFailure('sni.example', 'proxy', 'stall-after-first-packet'), undefined);
  // A late report about the direct attempt does not step the host back down to fragment.
  assert.equal(r.reportFailure('sni.example', 'direct', 'reset-after-clienthello'), 'proxy');
  assert.equal(r.decide('sni.example').route, 'proxy');
  // Forged DNS, stalls and unreachable IPs go straight to the tunnel.
  for (const kind of ['forged-dns', 'stall-after-first-packet', 'connect-failed', 'reset'] as const) {
    assert.equal(r.reportFailure(`${kind}.example`, 'direct', kind), 'proxy');
    assert.equal(r.decide(`${kind}.example`).route, 'proxy');
  }
  // Rules are not second-guessed.
  assert.equal(r.reportFailure('pinned.example', 'direct', 'reset'), undefined);
  assert.equal(r.decide('pinned.example').route, 'direct');
  assert.equal(r.snapshot().length, 5);
  // After the TTL the host is re-probed direct.
  clock.advance(59_999);
  assert.equal(r.decide('sni.example').route, 'proxy');
  clock.advance(1);
  assert.deepEqual(r.decide('sni.example'), { route: 'direct', source: 'mode' });
  assert.equal(r.snapshot().length, 0);
  // Without fragmentation, SNI resets go to the tunnel.
  const nf = new Router({ mode: 'auto', clock, fragment: false });
  assert.equal(nf.reportFailure('sni.example', 'direct', 'reset-after-clienthello'), 'proxy');
});

test('Router auto: a simulated browsing session never fails a request twice', () => {
  const clock = new ManualClock();
  const r = new Router({ mode: 'auto', clock });
  // The censored path: which routes fail for which site, and how.
  const censor: Record<
    string,
    Partial<Record<Route, 'reset-after-clienthello' | 'forged-dns' | 'stall-after-first-packet'>>
  > = {
    'sni-only.example': { direct: 'reset-after-clienthello' },
    'sni-reassembling.example': { direct: 'reset-after-clienthello', fragment: 'reset-after-clienthello' },
    'dns.example': { direct: 'forged-dns' },
    'ip.example': { direct: 'stall-after-first-packet' },
    'open.example': {},
  };
  const directCount: Record<string, number> = {};
  let userVisibleFailures = 0;
  for (let round = 0; round < 5; round++) {
    for (const [host, fails] of Object.entries(censor)) {
      let route = r.decide(host).route;
      let ok = false;
      for (let attempt = 0; attempt < 3 && !ok; attempt++) {
        if (route === 'direct') directCount[host] = (directCount[host] ?? 0) + 1;
        const f = fails[route];
        if (!f) {
          ok = true;
          r.reportSuccess(host, route);
        } else {
          const next = r.reportFailure(host, route, f);
          if (!next) break;
          route = next;
        }
      }
      if (!ok) userVisibleFailures++;
      clock.advance(1000);
    }
  }
  assert.equal(userVisibleFailures, 0);
  assert.equal(r.decide('sni-only.example').route, 'fragment');
  assert.equal(r.decide('sni-reassembling.example').route, 'proxy');
  assert.equal(r.decide('open.example').route, 'direct');
  // Blocked hosts were tried direct once, then remembered; the open one went direct every time.
  assert.equal(directCount['sni-only.example'], 1);
  assert.equal(directCount['dns.example'], 1);
  assert.equal(directCount['open.example'], 5);
});

test('classifyFailure maps observations to patterns', () => {
  const base = { phase: 'established' as const, bytesSent: 517, bytesReceived: 0, sentClientHello: true };
  assert.equal(classifyFailure({ ...base, errorCode: 'ECONNRESET' }), 'reset-after-clienthello');
  assert.equal(classifyFailure({ ...base, errorCode: 'ECONNRESET', sentClientHello: false }), 'reset');
  assert.equal(classifyFailure({ ...base, errorCode: 'timeout' }), 'stall-after-first-packet');
  assert.equal(classifyFailure({ ...base, errorCode: 'timeout', bytesReceived: 100 }), undefined);
  assert.equal(classifyFailure({ ...base, forgedDns: true }), 'forged-dns');
  assert.equal(
    classifyFailure({ ...base, phase: 'connect', errorCode: 'ETIMEDOUT', bytesSent: 0 }),
    'connect-failed',
  );
  assert.equal(
    classifyFailure({ ...base, phase: 'connect', errorCode: 'ECONNREFUSED', bytesSent: 0 }),
    undefined,
  );
});

test('EndpointSelector: avoid a stalled 3-tuple for the residual period, move on, come back later', () => {
  const clock = new ManualClock();
  const a443 = { host: '203.0.113.5', port: 443 };
  const a8388 = { host: '203.0.113.5', port: 8388 };
  const b443 = { host: '198.51.100.9', port: 443 };
  const sel = new EndpointSelector([a443, a8388, b443], { clock });
  assert.deepEqual(sel.pick(), { endpoint: a443, index: 0 });
  sel.reportFailure(a443, 'stall');
  // Another port on the same server is a different 3-tuple: usable.
  assert.deepEqual(sel.pick(), { endpoint: a8388, index: 1 });
  sel.reportFailure(a8388, 'reset');
  assert.deepEqual(sel.pick(), { endpoint: b443, index: 2 });
  // During the residual, pick() never returns a blocked 3-tuple.
  let touchedBlocked = 0;
  for (let t = 0; t < 179; t++) {
    clock.advance(1000);
    const p = sel.pick();
    if (p.endpoint && p.endpoint !== b443) touchedBlocked++;
  }
  assert.equal(touchedBlocked, 0);
  assert.ok(sel.isAvoided(a443));
  clock.advance(1000); // 180 s after the first failure
  assert.deepEqual(sel.pick(), { endpoint: a443, index: 0 });
  assert.equal(sel.isAvoided(a443), false);
  // All avoided: pick() reports when the first frees up.
  sel.reportFailure(a443, 'stall');
  sel.reportFailure(a8388, 'stall');
  sel.reportFailure(b443, 'stall');
  const p = sel.pick();
  assert.equal(p.endpoint, undefined);
  assert.equal('retryAt' in p && p.retryAt, clock.now() + 180_000);
  assert.equal(sel.status()[0]!.failures, 2);
  const short = new EndpointSelector([a443], { clock, residualMs: 120_000 });
  short.reportFailure(a443, 'stall');
  clock.advance(120_000);
  assert.equal(short.pick().endpoint, a443);
  assert.throws(() => new EndpointSelector([], { clock }), /at least one/);
  assert.throws(() => new EndpointSelector([{ host: 'x', port: 0 }], { clock }), /port 1\.\.65535/);
});

test('property: EndpointSelector never picks an endpoint inside its residual; Router never steps down', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.constantFrom('pick', 'fail', 'advance'),
          fc.integer({ min: 0, max: 4 }),
          fc.integer({ min: 1, max: 100_000 }),
        ),
        { maxLength: 200 },
      ),
      (ops) => {
        const clock = new ManualClock();
        const eps = [0, 1, 2, 3, 4].map((i) => ({ host: `192.0.2.${i % 3}`, port: 1000 + i }));
        const sel = new EndpointSelector(eps, { clock });
        const failedAt = new Map<string, number>();
        for (const [op, i, ms] of ops) {
          if (op === 'advance') clock.advance(ms);
          else if (op === 'fail') {
            sel.reportFailure(eps[i]!, 'stall');
            failedAt.set(`${eps[i]!.host}|${eps[i]!.port}`, clock.now());
          } else {
            const p = sel.pick();
            if (p.endpoint) {
              const t = failedAt.get(`${p.endpoint.host}|${p.endpoint.port}`);
              assert.ok(t === undefined || clock.now() - t >= 180_000);
            } else assert.ok(p.retryAt > clock.now());
          }
        }
      },
    ),
    { numRuns: 300 },
  );
  const kinds = [
    'reset-after-clienthello',
    'forged-dns',
    'stall-after-first-packet',
    'connect-failed',
    'reset',
  ] as const;
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(
          fc.constantFrom('direct' as const, 'fragment' as const, 'proxy' as const),
          fc.constantFrom(...kinds),
        ),
        { maxLength: 30 },
      ),
      (reports) => {
        const clock = new ManualClock();
        const r = new Router({ mode: 'auto', clock });
        const rank = { direct: 0, fragment: 1, proxy: 2, block: 3 };
        let prev = 0;
        for (const [route, kind] of reports) {
          const retry = r.reportFailure('h.example', route, kind);
          const now = r.decide('h.example').route;
          assert.ok(rank[now] >= prev, 'stepped down');
          if (retry) assert.ok(rank[retry] > rank[route] || retry === now);
          prev = rank[now];
        }
      },
    ),
    { numRuns: 300 },
  );
});
