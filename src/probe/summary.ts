/**
 * The end-of-run summary: "N of M blocked: x by DNS, …", then a table by category and mechanism;
 * for the terminal, the blocked and unknown URLs by name (`namedUrls`).
 */
import { MECHANISMS, type Verdict } from './classify.js';
import type { ProbeResult } from './run.js';

const LABEL: Record<string, string> = {
  dns: 'DNS',
  tcp_ip: 'TCP/IP',
  tls: 'TLS',
  'http-failure': 'HTTP failure',
  'http-diff': 'HTTP diff',
};
const COLUMNS = ['accessible', ...MECHANISMS, 'null'] as const;

export const verdictName = (v: Verdict): string => (v === false ? 'accessible' : v === null ? 'null' : v);

/** No control was run for this URL (no --via): its verdict is null for want of one. */
const noControl = (r: ProbeResult): boolean => Object.keys(r.keys.control).length === 0;

/** " (N unknown: why)" for the null verdicts, saying whether there was a control at all. */
function unknowns(results: readonly ProbeResult[]): string {
  const nulls = results.filter((r) => r.keys.blocking === null);
  const none = nulls.filter(noControl).length;
  const failed = nulls.length - none;
  // Every URL's control failed: most likely the --via server, not the sites.
  const all = failed > 0 && failed === results.filter((r) => !noControl(r)).length;
  const why = [
    ...(none ? [`${none} unknown: no control to compare with (--via not given)`] : []),
    ...(failed === 0
      ? []
      : all
        ? [
            `${failed} unknown: the control failed for every URL (${mostCommonFailure(nulls)}): is the --via key right and its server up? (ladder probe --servers KEY checks it)`,
          ]
        : [`${failed} unknown: the control failed`]),
  ];
  return why.length ? ` (${why.join('; ')})` : '';
}

/** The control failure most of these results share, e.g. "connection_refused". */
function mostCommonFailure(results: readonly ProbeResult[]): string {
  const n = new Map<string, number>();
  for (const r of results) {
    const f = r.keys.control_failure ?? 'unknown';
    n.set(f, (n.get(f) ?? 0) + 1);
  }
  return [...n].sort((a, b) => b[1] - a[1])[0]![0];
}

export function summarize(results: readonly ProbeResult[]): string {
  const blocked = results.filter((r) => r.keys.blocking);
  const by = (m: string): number => blocked.filter((r) => r.keys.blocking === m).length;
  const parts = MECHANISMS.filter((m) => by(m) > 0).map((m) => `${by(m)} by ${LABEL[m]}`);
  const head =
    `${blocked.length} of ${results.length} blocked` +
    (parts.length ? `: ${parts.join(', ')}` : '') +
    unknowns(results);
  const cats = [...new Set(results.map((r) => r.category))].sort();
  const rows = [['category', ...COLUMNS, 'total']];
  const count = (rs: readonly ProbeResult[]): string[] => [
    ...COLUMNS.map((c) => String(rs.filter((r) => verdictName(r.keys.blocking) === c).length)),
    String(rs.length),
  ];
  for (const c of cats) rows.push([c, ...count(results.filter((r) => r.category === c))]);
  rows.push(['all', ...count(results)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) =>
    r.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  '),
  );
  return [head, '', ...table].join('\n') + '\n';
}

/** How many blocked or unknown URLs the terminal names before "and M more". */
export const NAMED_URLS = 20;

/**
 * The blocked URLs, then the unknown ones, each with its verdict in a word, at most `max` of
 * them; '' when every URL was accessible. The inputs are parsed URLs (percent-encoded: no
 * control characters reach the terminal).
 */
export function namedUrls(results: readonly ProbeResult[], max = NAMED_URLS): string {
  const named = [
    ...results.filter((r) => r.keys.blocking),
    ...results.filter((r) => r.keys.blocking === null),
  ].map(
    (r) =>
      [
        r.keys.blocking === null ? 'unknown' : verdictName(r.keys.blocking),
        r.input,
        // Why an unknown is unknown: the control's own failure (none without --via).
        r.keys.blocking === null && !noControl(r) && r.keys.control_failure
          ? `  (control: ${r.keys.control_failure})`
          : '',
      ] as const,
  );
  if (named.length === 0) return '';
  const shown = named.slice(0, max);
  const width = Math.max(...shown.map(([v]) => v.length));
  const lines = shown.map(([v, url, why]) => `  ${v.padEnd(width)}  ${url}${why}`);
  if (named.length > max) lines.push(`  and ${named.length - max} more (all of them: --json or --html)`);
  return ['', 'Blocked or unknown:', ...lines].join('\n') + '\n';
}
