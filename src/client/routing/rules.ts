/**
 * Routing rules: the model, a matcher, and the simple list format. Pure (no I/O).
 *
 *   Route      = 'direct' | 'fragment' | 'proxy' | 'block'
 *   Rule       = { match: Matcher, route, line? }
 *   RuleSet    = new RuleSet(rules, fallback?) ; .match(host) -> Route | undefined ; .fallback
 *   parseRuleList(text, source?) -> RuleSet        (throws RuleSyntaxError naming file:line)
 *
 * The list format, one rule a line (Clash/Surge style; keywords case-insensitive):
 *
 *   # comment (also // and ;)
 *   domain-suffix,example.com,proxy      example.com and every subdomain
 *   domain,www.example.com,direct        exactly this name
 *   domain-keyword,google,proxy          name contains the word
 *   domain-regex,(^|\.)cn$,direct        JavaScript regular expression on the name
 *   ip-cidr,10.0.0.0/8,direct            IP-literal destinations (also ip-cidr6); a 4th field
 *                                        such as Clash's "no-resolve" is accepted and ignored
 *   final,proxy                          what unmatched destinations get (also "match,proxy")
 *
 * Routes: direct, fragment (direct with TLS-record fragmentation), proxy (the tunnel), block (the
 * application is refused at once: SOCKS5 reply 2 "not allowed by ruleset", HTTP 403; nothing is
 * dialled). Clash's DIRECT/PROXY/REJECT spellings work (reject is block).
 * Rules match in file order; the first match wins. Names are never resolved to match CIDRs
 * (resolving would leak the name to the censor's DNS).
 */
import { IpSet, ipToBigInt } from '../../protocol/dns/ip-set.js';
import { didYouMean } from '../../protocol/near-miss.js';

export type Route = 'direct' | 'fragment' | 'proxy' | 'block';
export const ROUTES: readonly Route[] = ['direct', 'fragment', 'proxy', 'block'];

export type Matcher =
  | { readonly kind: 'domain'; readonly value: string }
  | { readonly kind: 'domain-suffix'; readonly value: string }
  | { readonly kind: 'domain-keyword'; readonly value: string }
  | { readonly kind: 'domain-regex'; readonly value: RegExp }
  | { readonly kind: 'cidr'; readonly value: string };

export interface Rule {
  readonly match: Matcher;
  readonly route: Route;
  /** 1-based source line, for messages. */
  readonly line?: number | undefined;
  /**
   * From a measurement (probe-rules.ts), not the user's explicit intent: in auto mode a failure
   * may still escalate it, and what the router learned wins over it.
   */
  readonly soft?: boolean | undefined;
}

export type RuleErrorCode = 'ERR_RULE_SYNTAX'; // a line of a rules or ACL file that does not parse

export class RuleSyntaxError extends Error {
  override readonly name = 'RuleSyntaxError';
  readonly code: RuleErrorCode = 'ERR_RULE_SYNTAX';
  readonly source: string;
  readonly line: number;

  constructor(source: string, line: number, message: string) {
    super(`${source}:${line}: ${message}`);
    this.source = source;
    this.line = line;
  }
}

export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

function matches(m: Matcher, host: string, cidrs: Map<string, IpSet>): boolean {
  switch (m.kind) {
    case 'domain':
      return host === m.value;
    case 'domain-suffix':
      return host === m.value || host.endsWith(`.${m.value}`);
    case 'domain-keyword':
      return host.includes(m.value);
    case 'domain-regex':
      return ipToBigInt(host) === undefined && m.value.test(host);
    case 'cidr':
      return cidrs.get(m.value)!.has(host);
  }
}

export class RuleSet {
  readonly rules: readonly Rule[];
  /** Route for destinations no rule matches (undefined: let the mode decide). */
  readonly fallback: Route | undefined;
  readonly #cidrs = new Map<string, IpSet>();

  constructor(rules: readonly Rule[] = [], fallback?: Route) {
    this.rules = rules;
    this.fallback = fallback;
    for (const r of rules)
      if (r.match.kind === 'cidr' && !this.#cidrs.has(r.match.value))
        this.#cidrs.set(r.match.value, new IpSet([r.match.value]));
  }

  /** The first matching rule's route, else the fallback, else undefined. */
  match(host: string): Route | undefined {
    return this.matchRule(host)?.route ?? this.fallback;
  }

  matchRule(host: string): Rule | undefined {
    const h = normalizeHost(host);
    for (const r of this.rules) if (matches(r.match, h, this.#cidrs)) return r;
    return undefined;
  }

  /** True when some destination may get the block route (a block rule, or a block fallback). */
  get blocks(): boolean {
    return this.fallback === 'block' || this.rules.some((r) => r.route === 'block');
  }

  /** Rules of `other` after ours; our fallback wins if set. */
  concat(other: RuleSet): RuleSet {
    return new RuleSet([...this.rules, ...other.rules], this.fallback ?? other.fallback);
  }
}

export function parseRoute(text: string, source: string, line: number): Route {
  const t = text.trim().toLowerCase();
  if (t === 'direct' || t === 'fragment' || t === 'proxy' || t === 'block') return t;
  if (t === 'reject') return 'block'; // Clash's REJECT
  throw new RuleSyntaxError(
    source,
    line,
    `unknown route "${text.trim()}"${didYouMean(t, ROUTES)} (use direct, fragment, proxy or block)`,
  );
}

/** The rule types of the list format, as the messages list them. */
const RULE_TYPES = [
  'domain',
  'domain-suffix',
  'domain-keyword',
  'domain-regex',
  'ip-cidr',
  'ip-cidr6',
  'final',
];

const DOMAIN_RE = /^(?=.{1,253}$)(?!-)[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*$/;

export function makeMatcher(kind: string, value: string, source: string, line: number): Matcher {
  const k = kind.trim().toLowerCase();
  const v = value.trim();
  if (v === '') throw new RuleSyntaxError(source, line, `empty value for ${k}`);
  switch (k) {
    case 'domain':
    case 'domain-suffix': {
      const d = normalizeHost(v.replace(/^\*?\./, ''));
      if (!DOMAIN_RE.test(d)) throw new RuleSyntaxError(source, line, `"${v}" is not a domain name`);
      return { kind: k, value: d };
    }
    case 'domain-keyword':
      return { kind: 'domain-keyword', value: v.toLowerCase() };
    case 'domain-regex':
      try {
        return { kind: 'domain-regex', value: new RegExp(v, 'i') };
      } catch {
        throw new RuleSyntaxError(source, line, `invalid regular expression "${v}"`);
      }
    case 'ip-cidr':
    case 'ip-cidr6':
    case 'cidr':
      try {
        new IpSet([v]);
      } catch {
        throw new RuleSyntaxError(source, line, `"${v}" is not an IP address or CIDR`);
      }
      return { kind: 'cidr', value: v };
    default:
      throw new RuleSyntaxError(
        source,
        line,
        `unknown rule type "${kind.trim()}"${didYouMean(k, RULE_TYPES)} (${RULE_TYPES.join(', ')})`,
      );
  }
}

export function isCommentOrBlank(line: string): boolean {
  const t = line.trim();
  return t === '' || t.startsWith('#') || t.startsWith('//') || t.startsWith(';');
}

/** Parse the simple list format (see the file header). */
export function parseRuleList(text: string, source = 'rules'): RuleSet {
  const rules: Rule[] = [];
  let fallback: Route | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (isCommentOrBlank(raw)) continue;
    const line = i + 1;
    const parts = raw.split(',').map((p) => p.trim());
    const kind = parts[0]!.toLowerCase();
    if (kind === 'final' || kind === 'match') {
      if (parts.length !== 2) throw new RuleSyntaxError(source, line, `expected "${kind},<route>"`);
      fallback = parseRoute(parts[1]!, source, line);
      continue;
    }
    if (parts.length < 3 || parts.length > 4) {
      // A site alone (`example.com`, `example.com,direct`, `1.2.3.4`), as in a plain list: show its rule.
      const site = parts.length <= 2 ? parts[0]! : '';
      const route = /^(direct|fragment|proxy|block)$/i.test(parts[1] ?? '')
        ? parts[1]!.toLowerCase()
        : 'proxy';
      const hint = /^\d{1,3}(\.\d{1,3}){3}$/.test(site)
        ? ` (for this address: ip-cidr,${site}/32,${route})`
        : /^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(site)
          ? ` (for this name and its subdomains: domain-suffix,${site},${route})`
          : '';
      throw new RuleSyntaxError(source, line, `expected "<type>,<value>,<route>"${hint}`);
    }
    // domain-regex values may contain commas: everything between the first and last comma.
    const value = kind === 'domain-regex' ? raw.slice(raw.indexOf(',') + 1, raw.lastIndexOf(',')) : parts[1]!;
    const routeText = kind === 'domain-regex' ? raw.slice(raw.lastIndexOf(',') + 1) : parts[2]!;
    rules.push({
      match: makeMatcher(kind, value, source, line),
      route: parseRoute(routeText, source, line),
      line,
    });
  }
  return new RuleSet(rules, fallback);
}
