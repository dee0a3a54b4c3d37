/**
 * The managed server's start-up banners: for a terminal (with the QR code), for a log at the first
 * start (secrets once, no QR), and for later starts to a log (no secrets, how to reprint them).
 */
import type { StoreLocation } from '../store/index.js';
import { describeStore, privatePolicyLine, storeFlags, tryItHeading } from './banner-text.js';
import { ladderCommand } from '../shared/invocation.js';
import { QRCode } from './qr.js';
import { printable } from './terminal.js';
import { GRPC_CLIENTS, HTTP_UPGRADE_CLIENTS, webSocketClients } from '../protocol/sip002/plugin-opts.js';

export interface ManagedBannerInput {
  storeLocation: StoreLocation;
  dataDir: string;
  storeFlagGiven: boolean;
  /** The store came from LADDER_STORE: the suggested commands leave it out and need it set too. */
  storeFromEnv?: boolean;
  /** The fleet node's line, on a fleet node. */
  fleetLine: string | undefined;
  port: number;
  /** The store's port for new keys (the first start's --port, or the API's; docs/operations.md). */
  portForNewKeys: number;
  /** Where keys are served besides `port` (key ports), and key ports that could not be opened. */
  otherPorts?: { listening: number[]; failed: [port: number, why: string][] };
  udp: boolean;
  keyCount: number;
  workers: number;
  apiPort: number;
  metricsUrl: string | undefined;
  dynamicAddress: string | undefined;
  webLine: string | undefined;
  /** The ShadowTLS port's status line, and the first key's ShadowTLS lines (shadowtls.ts). */
  stlsLine?: string | undefined;
  stlsLines?: string[] | undefined;
  allowPrivate: boolean;
  /** --method given on a later start (it only applies to the first key): the method. */
  methodNote: string | undefined;
  accessConfig: string;
  createdNow: boolean;
  /** The key in the first start's log banner (false: a fleet node's, for a key another node made). */
  keyInLog: boolean;
  keyLabel: string;
  keyId: string;
  url: string;
  dynamic: string | undefined;
  dynamicNote: string;
  subscription: string | undefined;
  webUrl?: string | undefined;
  /** The apps webUrl is for (2022 keys name sslocal, not ss-local). */
  webClients?: string | undefined;
  /** The key over the front's HTTPUpgrade (printed after webUrl). */
  httpUpgradeUrl?: string | undefined;
  /** The key over the front's gRPC (printed after httpUpgradeUrl; a TLS front with h2 only). */
  grpcUrl?: string | undefined;
  drawQr: boolean;
}

export interface ManagedBanners {
  banner: string;
  logBanner: string;
  publicBanner: string;
}

export async function managedBanners(b: ManagedBannerInput): Promise<ManagedBanners> {
  const ladder = ladderCommand();
  const where = storeFlags(b.storeLocation, b.dataDir, b.storeFlagGiven);
  const head: string[] = [];
  head.push(`Ladder server — managed mode (key store, management API${b.metricsUrl ? ', metrics' : ''})`);
  const fromEnv = b.storeFromEnv ? ' from LADDER_STORE (the commands below need it set too)' : '';
  head.push(`  store: ${describeStore(b.storeLocation, b.dataDir)}${fromEnv}`);
  if (b.fleetLine) head.push(`  ${b.fleetLine}`);
  head.push(
    `  Shadowsocks on port ${b.port} (${b.udp ? 'TCP and UDP' : 'TCP; UDP off'}), ${b.keyCount} key(s) in the store`,
  );
  const more = b.otherPorts?.listening.filter((p) => p !== b.port) ?? [];
  if (more.length > 0)
    head.push(
      `  also on the port(s) existing keys name: ${more.join(', ')} (new keys get port ${b.portForNewKeys})`,
    );
  for (const [port, why] of b.otherPorts?.failed ?? [])
    head.push(`  cannot listen on key port ${port} (${why}): the keys on it cannot connect until it is free`);
  head.push(
    b.workers > 0
      ? `  data plane: ${b.workers} worker thread${b.workers === 1 ? '' : 's'} (management stays on the main thread)`
      : '  data plane: on the main thread (the web front hands it streams)',
  );
  head.push(`  management API on port ${b.apiPort} (HTTPS, self-signed; Outline Manager compatible)`);
  if (b.metricsUrl) head.push(`  Prometheus metrics: ${b.metricsUrl}`);
  if (b.dynamicAddress)
    head.push(`  dynamic keys (plain HTTP, put TLS in front): ${b.dynamicAddress}/access/…`);
  if (b.webLine) head.push(`  ${b.webLine}`);
  if (b.stlsLine) head.push(`  ${b.stlsLine}`);
  head.push(`  ${privatePolicyLine(b.allowPrivate)}`);
  if (b.methodNote !== undefined)
    head.push(
      `  --method ${b.methodNote} applies to the key a first start creates; add more with: ${ladder} keys add --method ${b.methodNote}${where}`,
    );
  head.push('');

  const render = async (qr: boolean, withKey = true): Promise<string> => {
    const o = head.slice();
    o.push('Outline Manager access config (paste into "Add server" > "existing server"; keep it secret):');
    o.push(b.accessConfig);
    o.push('');
    if (!withKey) {
      o.push(
        "The fleet's keys are not printed here (they were handed out already; logs keep them). To see them:",
      );
      o.push(`  ${ladder} keys list${where}`);
      o.push(`  ${ladder} keys url ID${where}    (one key's URL; --qr-png FILE for its QR code)`);
      o.push('');
      o.push('Ctrl-C to stop.');
      return `${o.join('\n')}\n`;
    }
    o.push(
      `${b.createdNow ? 'Initial key' : `Key "${printable(b.keyLabel)}"`} (a secret: give it only to the people who should connect):`,
    );
    o.push(`  ${b.url}`);
    if (b.dynamic) {
      o.push(`  dynamic: ${b.dynamic}`);
      o.push(`    ${b.dynamicNote}`);
    }
    if (b.subscription)
      o.push(`  subscription (every app; a browser shows a page with QR codes): ${b.subscription}`);
    if (b.webUrl) {
      o.push(`  over the web front (${b.webClients ?? webSocketClients('')}):`);
      o.push(`  ${b.webUrl}`);
    }
    if (b.httpUpgradeUrl) o.push(`  over HTTPUpgrade (${HTTP_UPGRADE_CLIENTS}):`, `  ${b.httpUpgradeUrl}`);
    if (b.grpcUrl) o.push(`  over gRPC (${GRPC_CLIENTS}):`, `  ${b.grpcUrl}`);
    if (b.stlsLines) o.push(...b.stlsLines);
    if (qr) o.push((await QRCode.toString(b.url, { type: 'terminal', small: true })).trimEnd());
    else
      o.push(
        `  (QR code not drawn: output is not a terminal; for a picture: ${ladder} keys url ${b.keyId} --qr-png FILE${where})`,
      );
    o.push('');
    o.push(tryItHeading(ladder, b.allowPrivate));
    o.push(`  ${ladder} client --key '${b.url}'`);
    o.push('  curl --proxy socks5h://127.0.0.1:1080 https://example.com/');
    o.push('');
    o.push(`Manage keys: ${ladder} keys list|add|rm|limit|expire|url${where}`);
    o.push(`Reprint this access config and every key: ${ladder} server access-config${where}`);
    o.push('Ctrl-C to stop.');
    return `${o.join('\n')}\n`;
  };

  return {
    banner: await render(b.drawQr),
    logBanner: await render(false, b.keyInLog),
    publicBanner: `${[
      ...head,
      'Secrets are not printed on a restart whose output is not a terminal (logs keep them). To see them:',
      `  ${ladder} server access-config${where}    (Outline Manager access config and every key's URL)`,
      `  ${ladder} keys url ID${where}    (one key's URL; --qr-png FILE for its QR code)`,
      '',
      'Ctrl-C to stop.',
    ].join('\n')}\n`,
  };
}
