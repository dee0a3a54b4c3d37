/**
 * Measurements in OONI's format (ooni/spec df-000-base envelope, ts-017 web_connectivity
 * test_keys), so OONI's tools can read them. We do not look up the network: probe_asn is "AS0"
 * and probe_cc "ZZ", as OONI writes when it does not know; probe_ip is not recorded.
 */
import type { ProbeResult } from './run.js';

export const TEST_VERSION = '0.4.3';
export const SOFTWARE_VERSION = '0.1.0';

/** OONI's timestamp form: "YYYY-MM-DD HH:MM:SS" in UTC. */
export const ooniTime = (d: Date): string => d.toISOString().slice(0, 19).replace('T', ' ');

export function toOoni(r: ProbeResult, testStart: Date): Record<string, unknown> {
  return {
    annotations: { category_code: r.category, engine_name: 'ladder' },
    data_format_version: '0.2.0',
    input: r.input,
    measurement_start_time: ooniTime(r.startTime),
    probe_asn: 'AS0',
    probe_cc: 'ZZ',
    probe_ip: '127.0.0.1',
    probe_network_name: '',
    report_id: '',
    resolver_asn: 'AS0',
    resolver_ip: '127.0.0.2',
    resolver_network_name: '',
    software_name: 'ladder',
    software_version: SOFTWARE_VERSION,
    test_name: 'web_connectivity',
    test_runtime: r.runtime,
    test_start_time: ooniTime(testStart),
    test_version: TEST_VERSION,
    test_keys: r.keys,
  };
}
