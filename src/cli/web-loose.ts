/**
 * Web front settings that work but are easy to get wrong in a way nobody sees at start: said once,
 * in one line each, when the front starts (--decoy http:// across the network, --web-public-url
 * without TLS); and one that cannot work in this flow, refused before anything starts (--acme for
 * an IP address). No line names the secret path.
 */
import { isIP } from 'node:net';
import { UsageError } from './errors.js';

/** Loopback, private or link-local: an upstream on this machine or its own network. */
function nearby(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return /^(127\.|10\.|192\.168\.|169\.254\.|172\.(1[6-9]|2\d|3[01])\.)/.test(h);
  if (isIP(h) === 6) return h === '::1' || /^f[cd]/.test(h) || /^fe[89ab]/.test(h);
  return false;
}

/** The start-up warnings of a web front's settings (none for the usual ones). */
export function looseWebWarnings(s: {
  decoy?: string | undefined;
  publicUrl?: { host: string; port: number; tls: boolean } | undefined;
}): string[] {
  const out: string[] = [];
  const decoy =
    s.decoy !== undefined && /^http:\/\//i.test(s.decoy) && URL.canParse(s.decoy) ? new URL(s.decoy) : null;
  if (decoy && !nearby(decoy.hostname))
    out.push(
      `--decoy ${decoy.protocol}//${decoy.host}: the decoy fetches that site without TLS, so anyone between this server and it sees and can change the pages this server shows as its own, and a site that redirects to https:// sends visitors to its own name; use https://, or a site on this machine (http://127.0.0.1:PORT)`,
    );
  if (s.publicUrl && !s.publicUrl.tls)
    out.push(
      `--web-public-url without TLS (ws:// or http://): keys tell clients to dial port ${s.publicUrl.port} in plain HTTP, so the secret path crosses the network in clear with every connection (anyone on the way can read it and probe the tunnel with it), and no gRPC key is printed (gRPC needs TLS); give wss:// or https:// when the CDN or proxy ends TLS`,
    );
  return out;
}

/**
 * --acme for an IP address: refused. The certificate is asked for with DNS identifiers and
 * proved by HTTP-01 (server/web/acme.ts); an address needs an IP identifier (RFC 8738), which
 * this flow does not send, so the CA would refuse the order after a round trip.
 */
export function refuseAcmeAddress(domains: readonly string[] | undefined): void {
  const ip = domains?.find((d) => isIP(d.replace(/^\[|\]$/g, '')) !== 0);
  if (ip !== undefined)
    throw new UsageError(
      `--acme ${ip}: an IP address, and ACME here issues for domain names only (DNS identifiers, HTTP-01): give the server's DNS name, or a certificate of your own with --tls-cert/--tls-key`,
    );
}

/**
 * The banner's note when the web front listens on loopback only, no --web-public-url is given,
 * and the web keys name another address (`advertised`): those keys reach nothing (the
 * front is meant for a proxy on this machine, which keys must name instead). Undefined otherwise.
 */
export function loopbackFrontNote(
  webHost: string | undefined,
  publicUrl: unknown,
  advertised: string,
): string | undefined {
  const loop = (h: string): boolean =>
    h === 'localhost' || h.startsWith('127.') || h === '::1' || h === '[::1]';
  if (webHost === undefined || !loop(webHost) || publicUrl !== undefined || loop(advertised))
    return undefined;
  return `  note: the web front listens on ${webHost} only, so the web keys above (at ${advertised}) reach nothing from elsewhere: give --web-public-url (the nginx or CDN in front), or --web-host 0.0.0.0`;
}
