import type { FastifyInstance } from 'fastify';
import { buildApi, type ApiOptions } from './app.js';
import { ensureCertificate } from './tls.js';

export interface StartApiOptions extends Omit<ApiOptions, 'https'> {
  /** Where the certificate lives (created on first start). */
  dataDir: string;
  /** Bind address (default all interfaces, as Outline). */
  host?: string;
  /** Port (default 0 = pick one; the chosen port is recorded in the settings). */
  port?: number;
}

export interface RunningApi {
  app: FastifyInstance;
  /** https://HOST:PORT/PREFIX with HOST = hostnameForAccessKeys. */
  apiUrl: string;
  certSha256: string;
  port: number;
  close(): Promise<void>;
}

/** The line Outline's installer prints, which Outline Manager accepts as "existing server". */
export function accessConfigLine(api: Pick<RunningApi, 'apiUrl' | 'certSha256'>): string {
  return JSON.stringify({ apiUrl: api.apiUrl, certSha256: api.certSha256 });
}

/** Build the API on HTTPS with the persisted self-signed certificate and listen. */
export async function startApi(opts: StartApiOptions): Promise<RunningApi> {
  const settings = await opts.store.getSettings();
  const cert = await ensureCertificate(opts.dataDir, settings.hostnameForAccessKeys);
  const app = await buildApi({ ...opts, https: { key: cert.key, cert: cert.cert } });
  await app.listen({ host: opts.host ?? '0.0.0.0', port: opts.port ?? 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? 0);
  await opts.store.updateSettings({ apiPort: port });
  const h = settings.hostnameForAccessKeys;
  const apiUrl = `https://${h.includes(':') ? `[${h}]` : h}:${port}/${settings.apiPrefix}`;
  return { app, apiUrl, certSha256: cert.sha256, port, close: () => app.close() };
}
