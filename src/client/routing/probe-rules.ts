/**
 * Routing rules from `ladder probe --json` output (OONI web_connectivity measurements, one JSON
 * object a line): what the probe found blocked goes through the tunnel, what it found accessible
 * goes direct, and a verdict of `null` (the control failed) makes no rule. Pure (no I/O).
 *
 *   blocking false                         domain,HOST,direct
 *   blocking "tls" (SNI), with fragment    domain,HOST,fragment   soft: auto mode escalates to proxy
 *   blocking "tls" otherwise, "dns",
 *     "tcp_ip", "http-failure", "http-diff" domain,HOST,proxy
 *
 * A host measured several times gets its most cautious verdict (proxy > fragment > direct), so
 * one blocked URL of a site tunnels the whole name. IP-literal URLs get an address rule. Rules
 * from a measurement are `soft`: in `--route auto` the router may still escalate them when they
 * fail (a site unblocked since the probe, a fragment the censor reassembles).
 * Errors: one line naming the file, line and column (`probe.jsonl:3:14: not JSON`).
 */
import { isIP } from 'node:net';
import { makeMatcher, normalizeHost, RuleSet, RuleSyntaxError, type Route, type Rule } from './rules.js';

const MECHANISMS = new Set(['dns', 'tcp_ip', 'tls', 'http-failure', 'http-diff']);
const RANK: Record<Route, number> = { direct: 0, fragment: 1, proxy: 2, block: 3 }; // probes never block

export interface ProbeRuleOptions {
  /** SNI-filtered (`tls`) hosts try TLS fragmentation first (only sensible with --route auto). */
  readonly fragment?: boolean;
}

export function parseProbeRules(text: string, source: string, opts: ProbeRuleOptions = {}): RuleSet {
  const best = new Map<string, { route: Route; line: number }>();
  const lines = text.split(/\r?\n/);
  let measurements = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (raw.trim() === '') continue;
    const line = i + 1;
    let m: unknown;
    try {
      m = JSON.parse(raw);
    } catch (err) {
      const pos = /position (\d+)/.exec((err as Error).message)?.[1];
      const e = new RuleSyntaxError(
        source,
        line,
        'not JSON (a probe --json file has one measurement a line)',
      );
      // The column when V8 names it (not every message of JSON.parse does).
      if (pos !== undefined) e.message = e.message.replace(`:${line}: `, `:${line}:${Number(pos) + 1}: `);
      throw e;
    }
    const o = m as { test_name?: unknown; input?: unknown; test_keys?: { blocking?: unknown } } | null;
    if (typeof o !== 'object' || o === null || Array.isArray(o))
      throw new RuleSyntaxError(source, line, 'expected a measurement object');
    if (o.test_name !== 'web_connectivity')
      throw new RuleSyntaxError(
        source,
        line,
        `test_name is ${JSON.stringify(o.test_name)}, expected "web_connectivity" (ladder probe --list --json output)`,
      );
    if (typeof o.input !== 'string')
      throw new RuleSyntaxError(source, line, 'input: expected the measured URL');
    let host: string;
    try {
      host = normalizeHost(new URL(o.input).hostname);
    } catch {
      throw new RuleSyntaxError(source, line, 'input: not a URL');
    }
    if (host === '') throw new RuleSyntaxError(source, line, 'input: the URL has no host');
    const b = o.test_keys?.blocking;
    if (b !== false && b !== null && !(typeof b === 'string' && MECHANISMS.has(b)))
      throw new RuleSyntaxError(
        source,
        line,
        `test_keys.blocking: ${JSON.stringify(b)} is not false, null or a mechanism (${[...MECHANISMS].join(', ')})`,
      );
    measurements++;
    if (b === null) continue;
    const route: Route =
      b === false
        ? 'direct'
        : b === 'tls' && opts.fragment && o.input.startsWith('https:')
          ? 'fragment'
          : 'proxy';
    const cur = best.get(host);
    if (!cur || RANK[route] > RANK[cur.route]) best.set(host, { route, line });
  }
  if (measurements === 0) throw new RuleSyntaxError(source, 1, 'no measurements in the file');
  const rules: Rule[] = [...best].map(([host, { route, line }]) => ({
    match: makeMatcher(isIP(host) ? 'ip-cidr' : 'domain', host, source, line),
    route,
    line,
    soft: true,
  }));
  return new RuleSet(rules);
}
