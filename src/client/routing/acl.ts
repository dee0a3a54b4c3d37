/**
 * Shadowsocks ACL files (shadowsocks-libev `--acl`, also read by shadowsocks-rust), as routing
 * rules. Pure.
 *
 *   parseAcl(text, source?) -> RuleSet
 *
 *   [proxy_all]        (or [accept_all])  unmatched destinations go through the tunnel (default)
 *   [bypass_all]       (or [reject_all])  unmatched destinations go direct
 *   [bypass_list]      (or [white_list])  the entries below go direct
 *   [proxy_list]       (or [black_list])  the entries below go through the tunnel
 *   [outbound_block_list]                 server-side list; ignored here
 *
 * Entries: an IP or CIDR; `||example.com` (the domain and its subdomains, shadowsocks-rust);
 * `|example.com` (exactly that name); anything else is a regular expression matched against the
 * host name, as libev does (e.g. `(^|\.)google\.com$`).
 *
 * Precedence: proxy_list entries are checked before bypass_list entries, so a name on both lists
 * is never sent direct (the safe choice for a blocked name).
 */
import { IpSet } from '../../protocol/dns/ip-set.js';
import { isCommentOrBlank, RuleSet, RuleSyntaxError, type Matcher, type Route, type Rule } from './rules.js';

type Section = 'bypass' | 'proxy' | 'ignore' | undefined;

/** An address with a prefix length (1.2.3.4/40, 2001:db8::/200): meant as a CIDR, never a regex. */
const CIDR_SHAPE = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]*:[0-9a-f:.]*)\/\d+$/i;

function entryMatcher(entry: string, source: string, line: number): Matcher {
  try {
    new IpSet([entry]);
    return { kind: 'cidr', value: entry };
  } catch {
    // Not an IP: fall through to domain forms, unless it is written as a CIDR (a bad one).
    if (CIDR_SHAPE.test(entry))
      throw new RuleSyntaxError(
        source,
        line,
        `"${entry}" is not a valid CIDR (prefix length /0../32 for IPv4, /0../128 for IPv6)`,
      );
  }
  if (entry.startsWith('||'))
    return { kind: 'domain-suffix', value: entry.slice(2).toLowerCase().replace(/\.$/, '') };
  if (entry.startsWith('|'))
    return { kind: 'domain', value: entry.slice(1).toLowerCase().replace(/\.$/, '') };
  try {
    return { kind: 'domain-regex', value: new RegExp(entry, 'i') };
  } catch {
    throw new RuleSyntaxError(
      source,
      line,
      `"${entry}" is neither an IP/CIDR nor a valid regular expression`,
    );
  }
}

export function parseAcl(text: string, source = 'acl'): RuleSet {
  let fallback: Route = 'proxy';
  let section: Section;
  const proxy: Rule[] = [];
  const bypass: Rule[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i]!.trim();
    if (isCommentOrBlank(t)) continue;
    const line = i + 1;
    const header = /^\[([a-z_]+)\]$/i.exec(t);
    if (header) {
      const name = header[1]!.toLowerCase();
      if (name === 'proxy_all' || name === 'accept_all') {
        fallback = 'proxy';
        section = undefined;
      } else if (name === 'bypass_all' || name === 'reject_all') {
        fallback = 'direct';
        section = undefined;
      } else if (name === 'bypass_list' || name === 'white_list') section = 'bypass';
      else if (name === 'proxy_list' || name === 'black_list') section = 'proxy';
      else if (name === 'outbound_block_list') section = 'ignore';
      else throw new RuleSyntaxError(source, line, `unknown ACL section [${header[1]}]`);
      continue;
    }
    if (section === undefined)
      throw new RuleSyntaxError(source, line, 'entry outside [bypass_list] or [proxy_list]');
    if (section === 'ignore') continue;
    const match = entryMatcher(t, source, line);
    (section === 'proxy' ? proxy : bypass).push({
      match,
      route: section === 'proxy' ? 'proxy' : 'direct',
      line,
    });
  }
  return new RuleSet([...proxy, ...bypass], fallback);
}
