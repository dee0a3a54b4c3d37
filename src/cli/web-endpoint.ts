import type { WebEndpoint } from '../api/index.js';
import type { RunningWeb } from './web.js';

/**
 * The web front's public parameters for the API's subscriptions: the name clients dial (from
 * --web-public-url, else the ACME domain, else the server's hostname for access keys), port, secret path, TLS,
 * whether UDP over WebSocket is served, and the one data port whose keys the front serves
 * (undefined: every key's). The same front as cli/web.ts webEndpointOf describes for key URLs,
 * with what only the subscriptions need (UDP, the host left to request time).
 */
export function subscriptionEndpointOf(
  web: RunningWeb,
  udp: boolean,
  keyPort: number | undefined,
): WebEndpoint {
  const pu = web.publicUrl;
  return {
    host: pu?.host ?? web.settings.acmeDomains?.[0],
    port: pu?.port ?? web.service.front.port,
    path: web.settings.secretPath,
    tls: pu?.tls ?? web.service.front.tls,
    udp,
    keyPort,
    ...(web.webOnly ? { only: true } : {}),
  };
}
