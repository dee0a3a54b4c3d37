/**
 * Pieces of `ladder client`'s start (commands/client.ts) kept apart to keep that file readable:
 * a config file's SIP008 entries as endpoints, and the start-time warnings about their keys.
 */
import type { ServerEntry } from '../config/client.js';
import { endpointFromParts, type KeyEndpoint } from '../client/key.js';
import type { Logger } from '../shared/logger.js';

/** A config file's SIP008 entry through the checks an ss:// key goes through (v2ray-plugin: its WebSocket hop). */
export function serverEntryEndpoint(s: ServerEntry): KeyEndpoint {
  return endpointFromParts(
    {
      host: s.host,
      port: s.port,
      method: s.method,
      password: s.password,
      ...(s.tag !== undefined ? { tag: s.tag } : {}),
      ...(s.plugin !== undefined ? { plugin: s.plugin } : {}),
      ...(s.pluginOptions !== undefined ? { pluginOptions: s.pluginOptions } : {}),
    },
    (m) => (s.password.length >= 4 ? m.split(s.password).join('[redacted]') : m),
  );
}

/**
 * One warning per v2ray-plugin option a key gives that this client does not use (named, never its
 * value): a key made for v2ray-plugin's own process may carry them, and the user should know they
 * change nothing here. Endpoints by position, as every client log line names them.
 */
export function warnPluginNotes(endpoints: readonly { pluginNotes?: string[] }[], log: Logger): void {
  endpoints.forEach((e, i) => {
    for (const note of e.pluginNotes ?? [])
      log.warn({ endpoint: i + 1 }, `key of endpoint ${i + 1}: v2ray-plugin ${note}`);
  });
}
