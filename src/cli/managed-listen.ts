/**
 * Managed mode's listeners besides the data plane: the management API and the metrics server,
 * each refused in one line when its port is taken (checked before the data plane says
 * "listening", and again when it starts).
 */
import type { RunningApi, StartApiOptions } from '../api/index.js';
import type { LadderMetrics, MetricsServer } from '../metrics/index.js';
import { DEFAULT_METRICS_HOST, DEFAULT_METRICS_PORT } from '../config/defaults.js';
import { bindErrorCode, explainBindError, probeListen } from '../shared/listen.js';
import { UsageError } from './errors.js';
import type { ManagedFlags } from './managed-options.js';

/** The one line for a --metrics-port that cannot be listened on (as the API port's names --api-port). */
export const metricsBindError = (port: number, code: string): string =>
  `cannot serve metrics on port ${port}: ${explainBindError(code, port)}; choose another with --metrics-port, or --no-metrics`;

const taken = (port: number, host: string): Promise<string | undefined> =>
  probeListen(port, host).then(
    () => undefined,
    (err: unknown) => bindErrorCode(err),
  );

/** The API's and an explicit metrics port taken by another program: one line, before anything listens. */
export async function checkPortsFree(
  apiPort: number,
  metricsPort: number | undefined,
  flags: ManagedFlags,
): Promise<void> {
  if (apiPort !== 0) {
    const code = await taken(apiPort, flags.apiHost ?? '0.0.0.0');
    if (code)
      throw new UsageError(
        `cannot listen for the management API on port ${apiPort}: ${explainBindError(code, apiPort)}; choose another with --api-port`,
      );
  }
  if (flags.metrics !== false && metricsPort !== undefined && metricsPort !== 0) {
    const code = await taken(metricsPort, flags.metricsHost ?? DEFAULT_METRICS_HOST);
    if (code) throw new UsageError(metricsBindError(metricsPort, code));
  }
}

/** startApi, a port in use (or not ours to take) as a usage error naming the port and --api-port. */
export async function startApiOrRefuse(
  o: StartApiOptions,
  portShown: number | null | undefined,
): Promise<RunningApi> {
  const { startApi } = await import('../api/index.js');
  try {
    return await startApi(o);
  } catch (err) {
    const code = bindErrorCode(err);
    if (code) {
      throw new UsageError(
        `cannot listen for the management API on port ${portShown}: ${explainBindError(code, portShown ?? undefined)}; choose another with --api-port`,
      );
    }
    throw err;
  }
}

/**
 * The metrics server (none with --no-metrics). `moved`: the default port was taken (another
 * server on this host), so it took a free one; an explicit --metrics-port in use is refused.
 */
export async function startMetricsFor(
  metrics: LadderMetrics,
  flags: ManagedFlags,
  port: number | undefined,
): Promise<{ server: MetricsServer | undefined; moved: boolean }> {
  if (flags.metrics === false) return { server: undefined, moved: false };
  const { startMetricsServer } = await import('../metrics/index.js');
  const host = flags.metricsHost ?? DEFAULT_METRICS_HOST;
  try {
    return {
      server: await startMetricsServer(metrics, { host, port: port ?? DEFAULT_METRICS_PORT }),
      moved: false,
    };
  } catch (err) {
    if (port !== undefined)
      throw new UsageError(metricsBindError(port, (err as NodeJS.ErrnoException).code ?? String(err)));
    return { server: await startMetricsServer(metrics, { host, port: 0 }), moved: true };
  }
}
