import type { FastifyInstance } from 'fastify';
import type { ApiEndpoint } from './access-url.js';
import { saveApiAddress } from './api-endpoint.js';
import { buildApi, type ApiOptions } from './app.js';
import { ensureCertificate } from './tls.js';

export interface StartApiOptions extends Omit<ApiOptions, 'https'> {
  /** Where the certificate lives (created on first start). */
  dataDir: string;
  /** Bind address (default all interfaces, as Outline). */
  host?: string;
  /** Port (default 0 = pick one; the chosen port is recorded in DATA_DIR/api-endpoint.json). */
  port?: number;
  /**
   * The host clients reach this API at, on a fleet node (its own public host, not the shared
   * hostnameForAccessKeys); unset: hostnameForAccessKeys, read per request.
   */
  publicHost?: string | undefined;
}

export interface RunningApi {
  app: FastifyInstance;
  /** https://HOST:PORT/PREFIX with HOST = publicHost, else hostnameForAccessKeys. */
  apiUrl: string;
  certSha256: string;
  port: number;
  /** The endpoint of the dynamic and subscription URLs this API hands out (host, port, pin). */
  endpoint: ApiEndpoint;
  close(): Promise<void>;
}

/** The line Outline's installer prints, which Outline Manager accepts as "existing server". */
export function accessConfigLine(api: Pick<RunningApi, 'apiUrl' | 'certSha256'>): string {
  return JSON.stringify({ apiUrl: api.apiUrl, certSha256: api.certSha256 });
}

/**
 * Build the API on HTTPS with the persisted self-signed certificate and listen. Every URL it hands
 * out names this API: its host, the port it listens on and its certificate's pin (or the shared
 * dynamicKeyBaseUrl), never one node's host with another's port (docs/fleet.md).
 */
export async function startApi(opts: StartApiOptions): Promise<RunningApi> {
  const settings = await opts.store.getSettings();
  const address = opts.apiAddress ?? {};
  if (opts.publicHost !== undefined) address.host = opts.publicHost;
  const host = address.host ?? settings.hostnameForAccessKeys;
  const cert = await ensureCertificate(opts.dataDir, host);
  const app = await buildApi({ ...opts, apiAddress: address, https: { key: cert.key, cert: cert.cert } });
  await app.listen({ host: opts.host ?? '0.0.0.0', port: opts.port ?? 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 0);
  address.port = port;
  address.certSha256 = cert.sha256;
  await saveApiAddress(opts.dataDir, { host: address.host, port });
  // The shared setting is a single server's own port (and says "a server has run on this store");
  // on a fleet each node's port is its own (nodes table, api-endpoint.json): set once, never moved.
  if (!opts.fleet || settings.apiPort === null) await opts.store.updateSettings({ apiPort: port });
  const apiUrl = `https://${host.includes(':') ? `[${host}]` : host}:${port}/${settings.apiPrefix}`;
  const endpoint = { host, port, certSha256: cert.sha256 };
  return { app, apiUrl, certSha256: cert.sha256, port, endpoint, close: () => app.close() };
}
