/**
 * The survival report as text: a narrow table with a legend, and per-row details with `verbose`
 * (the report itself: survival.ts).
 */
import type { Outcome } from './client-ops.js';
import type { ContenderReport, SurvivalReport } from './survival.js';
import type { ReplayVerdict } from './stls-replay.js';

/** Plain names of the behaviours in the table's "censor hits" cells (the legend spells them out). */
const HIT_NAMES: Readonly<Record<string, string>> = {
  C1: 'IP',
  C2: 'DNS',
  C3: 'HTTP',
  C4: 'SNI',
  C5: 'QUIC',
  C6: 'FET',
  C8: 'TLS-in-TLS',
  C9: 'blanket',
  C10: 'regional',
};

const OUTCOME_WORDS: Readonly<Record<Outcome, string>> = {
  OK: 'ok',
  RST: 'reset',
  TIMEOUT: 'timeout',
  FIN: 'closed',
  REFUSED: 'refused',
  DNS_FORGED: 'forged DNS',
  DNS_FAIL: 'no DNS',
  TLS_FAIL: 'TLS failed',
  SOCKS_FAIL: 'proxy failed',
  ERROR: 'error',
};

const times = (name: string, n: number): string => (n === 1 ? name : `${name} x${n}`);

/** "DNS, HTTP x2, SNI, residual x2": behaviours in number order, every residual rule summed last. */
function hitsCell(blockedBy: Readonly<Record<string, number>>): string {
  let residual = 0;
  const direct: Array<[number, string, number]> = [];
  for (const [k, n] of Object.entries(blockedBy)) {
    if (k.startsWith('residual')) residual += n;
    else direct.push([Number(k.slice(1)) || 0, HIT_NAMES[k] ?? k, n]);
  }
  direct.sort((a, b) => a[0] - b[0]);
  const cells = direct.map(([, name, n]) => times(name, n));
  if (residual > 0) cells.push(times('residual', residual));
  return cells.join(', ') || '-';
}

function proberCell(c: ContenderReport): string {
  const ipBlocked = c.endpointBlocked ? ' -> IP blocked' : '';
  if (c.prober === null) return c.endpointBlocked ? 'IP blocked' : '-';
  // Web rows: the web prober's verdict (an IP block there is the profile's, shown under censor hits).
  if (c.prober.web) return c.prober.web.verdict + replayCell(c.prober.replay);
  if (!c.prober.probed) return `not probed${ipBlocked}`;
  if (c.prober.proxy) return `PROXY (${c.prober.rules.join(',')})${ipBlocked}`;
  const probes = Object.values(c.prober.reactions).reduce((a, b) => a + b, 0);
  return `not proxy (${probes} probes)${ipBlocked}`;
}

/** ShadowTLS rows: "; replay: site; tell: +4" (stls-replay.ts). */
function replayCell(r: Pick<ReplayVerdict, 'replay' | 'tell'> | undefined): string {
  if (!r) return '';
  const tell = r.tell === 'records 4 bytes longer (ShadowTLS v3)' ? '; tell: +4' : '';
  return `; replay: ${r.replay === 'same as the site' ? 'site' : 'DIFFERS'}${tell}`;
}

/** Under the table: what each column and word means, and where to read more. */
/**
 * The verdict when nothing was found, in words: what a finding is (the only thing the exit code
 * reports), and that the failing rows are baselines and controls, not Ladder's failures.
 */
const NO_FINDINGS = [
  'No findings (exit 0): the prober judged no Ladder server a proxy and told no Ladder web front from a',
  'web server. Lost requests are not findings: the direct, shadowsocks-libev, "no shaping" and "origin IP',
  'blocked" rows are the baselines and negative controls the defended rows are compared with (docs/lab.md).',
];

const LEGEND = [
  'requests ok    requests of the fixed workload that worked (direct rows: a DNS lookup, then HTTP and HTTPS',
  '               twice; tunnel rows: HTTP and HTTPS to a blocked and an open site, then the blocked one again)',
  "censor hits    what the emulated censor did to the row's traffic (x2 = twice): DNS = forged DNS answer (C2),",
  '               HTTP = reset by the HTTP Host/keyword filter (C3), SNI = reset by the TLS SNI filter (C4),',
  '               FET = first packet looked fully encrypted, so the connection was dropped (C6), IP = address',
  '               null-routed (C1), residual = a later connection caught by a block still in force (90-180 s),',
  '               TLS-in-TLS = flagged by the TLS-in-TLS classifier (C8; 3 flags null-route the endpoint),',
  '               blanket = reset by a blanket port event (C9)',
  'active prober  replays and probes each tunnel server, then judges whether it is a proxy (C7); "not probed" =',
  '               nothing it saw looked suspicious; PROXY (rule numbers) = caught, and then null-routed (C1)',
  '               web rows: "web server" = its web port answered every probe exactly as a plain web server',
  '               ShadowTLS rows: "replay: site" = a replayed genuine ClientHello got the site\'s answer; "tell: +4" =',
  "               the genuine session's encrypted handshake records were 4 bytes longer than the port's answer",
  "               to the prober (the protocol's own tell, ihciah/shadow-tls#69)",
  'after          one more request once every residual block has expired (181 s of emulated time)',
  'Behaviours C1-C11 and defences D1-D18: docs/glossary.md. How the lab works: docs/lab.md.',
];

export interface SurvivalTableOptions {
  /** Add each row's description, request steps, raw behaviour counts, prober reactions and the notes. */
  readonly verbose?: boolean;
}

/** The survival table as text: a narrow table with a legend; details with `verbose`. */
export function formatSurvivalTable(r: SurvivalReport, opts: SurvivalTableOptions = {}): string {
  const header = ['contender', 'requests ok', 'censor hits', 'active prober', 'after'];
  const rows = r.contenders.map((c) => [
    c.name,
    c.error ? 'error' : `${c.requests.ok}/${c.requests.total}`,
    hitsCell(c.blockedBy),
    proberCell(c),
    c.afterVerdict === null ? '-' : OUTCOME_WORDS[c.afterVerdict],
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((x, i) => x.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const out = [
    `Ladder censor lab: profile ${r.profile}, seed ${r.seed}, clock x${r.clockRate}`,
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    ...LEGEND,
    // With --verbose the details follow: the legend does not point to it.
    `${opts.verbose ? '' : 'Per-row details: --verbose. '}The whole report as data: --json.`,
  ];
  const failed = r.contenders.filter((c) => c.error);
  if (failed.length > 0 && !opts.verbose) {
    out.push('', 'Errors:');
    for (const c of failed) out.push(`  ${c.name}: ${c.error}`);
  }
  if (opts.verbose) {
    out.push('', 'Details:');
    for (const c of r.contenders) {
      out.push(`${c.name}: ${c.description}`);
      out.push(`  steps: ${c.requests.steps.map((s) => `${s.step}=${s.outcome}`).join(', ')}`);
      const counts = Object.entries(c.blockedBy)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      out.push(
        `  blocked by: ${counts || '-'}; C6 triggers ${c.c6Triggers}; residual hits ${c.residualHits}; endpoint blocked (C1) ${c.endpointBlocked ? 'yes' : 'no'}`,
      );
      if (c.prober?.probed) {
        const reactions = Object.entries(c.prober.reactions)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ');
        out.push(
          `  prober: reactions ${reactions || '-'}; stage 2 ${c.prober.stage2 ? 'reached' : 'not reached'}${c.prober.rules.length ? `; rules ${c.prober.rules.join(',')}` : ''}`,
        );
      }
      if (c.prober?.evidence.length) out.push(`  prober evidence: ${c.prober.evidence.join('; ')}`);
      if (c.prober?.web?.differences.length) out.push(`  web prober: ${c.prober.web.differences.join('; ')}`);
      const rp = c.prober?.replay;
      if (rp)
        out.push(`  replay prober: a replayed genuine ClientHello: ${rp.replay}; 4-byte tell: ${rp.tell}`);
      if (c.error) out.push(`  error: ${c.error}`);
    }
  }
  if (r.findings.length) {
    out.push('', 'FINDINGS:');
    for (const f of r.findings) out.push(`  - ${f}`);
  } else out.push('', ...NO_FINDINGS);
  if (opts.verbose) {
    out.push('', 'Notes:');
    for (const n of r.notes) out.push(`  - ${n}`);
  }
  return out.join('\n') + '\n';
}
