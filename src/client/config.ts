/**
 * Rule-file loading and the client's re-exports of its config file types (the format itself,
 * a zod schema, is src/config/client.ts: the CLI imports it only when a --config file is given,
 * so a client started with --key never loads zod). Pure: the CLI reads the files and hands the
 * text here.
 *
 *   parseRulesText(text, source)     -> RuleSet               (list or Shadowsocks ACL)
 *   parseHostPort(text, what, defaultPort?) -> { host, port } (a destination, port 1..65535)
 */
import { parseHostPort as parseAnyHostPort, type HostPort } from '../shared/parse.js';
import { parseAcl } from './routing/acl.js';
import { parseRuleList, type RuleSet } from './routing/rules.js';

export { ClientConfigError } from '../config/errors.js';
export { parseRouteMode } from '../config/route-mode.js';
export type { ClientConfig, ServerEntry } from '../config/client.js';

/**
 * A rule file: Shadowsocks ACL when it has [section] lines (or the name ends in .acl), else the
 * list format (routing/rules.ts). Throws RuleSyntaxError naming source:line.
 */
export function parseRulesText(text: string, source: string): RuleSet {
  const acl = /\.acl$/i.test(source) || /^\s*\[[a-z_]+\]\s*$/im.test(text);
  return acl ? parseAcl(text, source) : parseRuleList(text, source);
}

/** A destination: "host:port", "[v6]:port", or "host" with `defaultPort`. Throws ParseError. */
export function parseHostPort(text: string, what: string, defaultPort?: number): HostPort {
  return parseAnyHostPort(text, what, { minPort: 1, ...(defaultPort !== undefined ? { defaultPort } : {}) });
}
