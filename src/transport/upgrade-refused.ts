/**
 * A web front, or a CDN or proxy in front of it, that answered a WebSocket or HTTPUpgrade request
 * or a gRPC call with an HTTP status instead of the switch: the error (ERR_UPGRADE_REFUSED, with
 * the status) and what the status means, in one line for `ladder client`'s log
 * (client/dial-hint.ts, once per status) and `ladder probe --servers` (probe/servers.ts). The
 * advice names neither the key's path (as secret as the password) nor the server.
 */
import { UpstreamDialError } from './dialer.js';

/** ERR_UPGRADE_REFUSED for `what` ('WebSocket upgrade'…), with `status` (200 for a page where a gRPC answer was due). */
export function upgradeRefused(
  what: string,
  status: number | undefined,
): UpstreamDialError & { status?: number } {
  const err = new UpstreamDialError('ERR_UPGRADE_REFUSED', `${what} refused (HTTP ${status ?? '?'})`);
  return status === undefined ? err : Object.assign(err, { status });
}

/** What a refused upgrade's HTTP status means and what to check. */
export function upgradeRefusalAdvice(status: number | undefined): string {
  const said = `the server answered HTTP ${status ?? '(no status)'} to the tunnel's upgrade request at the key's path`;
  if (status === undefined) return `${said}: not a web front for this key`;
  if (status === 404 || (status >= 200 && status < 300))
    return `${said} (a web page, not the tunnel): the key's path (path=, or serviceName= for gRPC) does not match the server's secret path (a key for another server, or made before its path changed), or something in front of the server (a CDN, a reverse proxy) does not pass the upgrade on`;
  if (status >= 300 && status < 400)
    return `${said} (a redirect): a proxy or CDN in front sends it elsewhere (plain http to https?): check the key's tls option and port`;
  if (status === 400 || status === 426)
    return `${said}: it did not arrive as an upgrade: a reverse proxy that drops the Upgrade and Connection headers (nginx: proxy_http_version 1.1; proxy_set_header Upgrade and Connection), or a key of another transport (WebSocket, HTTPUpgrade, gRPC) than the server serves at that path`;
  if (status === 401 || status === 403)
    return `${said}: a CDN or proxy in front forbids it: WebSockets (or gRPC) turned off at the CDN, a host= the CDN does not serve, or an address it blocks`;
  if (status >= 500)
    return `${said}: a CDN or reverse proxy in front of the server could not reach it (is the server running? does the CDN's origin name the web front's address and port?)`;
  return `${said}: not a Ladder web front for this key, or something in front of it refuses the upgrade`;
}
