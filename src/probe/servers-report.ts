/** The self-check's outputs: a table a person reads, and JSON lines in OONI's envelope. */
import { ooniTime, SOFTWARE_VERSION } from './ooni.js';
import { SERVER_STEPS, explain, type ServerCheck } from './servers.js';

/** OONI's short forms for the table cells. */
function cell(c: ServerCheck, step: string): string {
  const s = c.steps.find((x) => x.step === step);
  if (!s) return '-';
  if (s.failure === null) return 'ok';
  const f = s.failure;
  if (f === 'generic_timeout_error') return 'timeout';
  if (f === 'connection_refused') return 'refused';
  if (f === 'connection_reset') return 'reset';
  if (f === 'eof_error') return 'eof';
  if (f.startsWith('dns_')) return f.slice(4);
  if (f.startsWith('ssl_')) return f.slice(4).replace(/: .*$/, '');
  if (f.startsWith('upgrade_refused: ')) return f.slice('upgrade_refused: '.length); // HTTP 404
  return 'failed';
}

export function serversTable(checks: readonly ServerCheck[]): string {
  const steps = SERVER_STEPS.filter((s) => checks.some((c) => c.steps.some((x) => x.step === s)));
  const rows = [['#', 'endpoint', ...steps, 'result']];
  checks.forEach((c, i) =>
    rows.push([
      String(i + 1),
      c.name,
      ...steps.map((s) => cell(c, s)),
      c.blocking ? `blocked at ${c.blocking}` : 'reachable',
    ]),
  );
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) =>
    r
      .map((x, i) => x.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  const ok = checks.filter((c) => !c.blocking).length;
  const notes = checks.flatMap((c, i) => (c.blocking ? [`#${i + 1}: ${explain(c)}`] : []));
  return (
    [
      `${ok} of ${checks.length} endpoints reachable from this network`,
      '',
      ...table,
      ...(notes.length ? ['', ...notes] : []),
    ].join('\n') + '\n'
  );
}

/** One measurement per endpoint, OONI's envelope around our own test keys. */
export function serverCheckJson(c: ServerCheck, start: Date): Record<string, unknown> {
  return {
    annotations: { engine_name: 'ladder' },
    data_format_version: '0.2.0',
    input: c.name,
    measurement_start_time: ooniTime(start),
    probe_asn: 'AS0',
    probe_cc: 'ZZ',
    probe_ip: '127.0.0.1',
    software_name: 'ladder',
    software_version: SOFTWARE_VERSION,
    test_name: 'x_ladder_server_check',
    test_runtime: c.runtime,
    test_start_time: ooniTime(start),
    test_version: '0.1.0',
    test_keys: {
      transport: c.transport,
      steps: c.steps,
      blocking: c.blocking,
      accessible: c.blocking === false,
      explanation: explain(c),
    },
  };
}
