import { existsSync } from 'node:fs';
import { printable } from '../terminal.js';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { openStoreOrExplain, refuseHiddenStore, storeTarget, withStoreOptions } from './store-command.js';
import { DEFAULT_DATA_DIR } from '../../config/defaults.js';
import { formatHostPort } from '../../shared/parse.js';
import { dynamicKeyNote, storeFlags } from '../banner-text.js';
import { oneLineCommand, UsageError } from '../errors.js';
import { refuseParentFlags } from '../given-flags.js';
import { ladderCommand } from '../../shared/invocation.js';
import {
  grpcKeyUrlFor,
  HTTP_UPGRADE_CLIENTS,
  httpUpgradeKeyUrlFor,
  loadWebEndpoint,
  webKeyUrlFor,
} from '../web.js';
import { savedShadowTlsUrl } from '../shadowtls.js';

interface AccessConfigFlags {
  dataDir?: string;
  store?: string;
  /** The store came from LADDER_STORE: the commands suggested leave it out. */
  storeFromEnv?: boolean;
}

/**
 * The text of `ladder server access-config`: the Outline Manager access config (apiUrl +
 * certSha256) and every key's URLs, read from the store and the data directory. Secrets are not
 * logged on a restart under systemd; this is how to see them again.
 */
export async function accessConfigText(flags: AccessConfigFlags): Promise<string> {
  // Loaded here, not at start-up: other commands do not need the store or the API.
  const { evaluateKeys, parseStoreLocation, StoreError } = await import('../../store/index.js');
  const { accessConfigLine, accessUrl, dynamicUrlVia, localApiEndpoint, subscriptionUrlVia } =
    await import('../../api/index.js');
  const dataDir = resolve(flags.dataDir ?? DEFAULT_DATA_DIR);
  const ladder = ladderCommand();
  let loc;
  try {
    loc = parseStoreLocation(flags.store, dataDir);
  } catch (err) {
    if (err instanceof StoreError) throw new UsageError(err.message);
    throw err;
  }
  const where = storeFlags(
    loc,
    dataDir,
    flags.store !== undefined && (flags.storeFromEnv !== true || loc.kind === 'sqlite'),
  );
  if (loc.kind === 'sqlite') refuseHiddenStore(loc.path);
  if (loc.kind === 'sqlite' && !existsSync(loc.path)) {
    throw new UsageError(
      `no store at ${loc.path}: start the server once (${ladder} server${where}), or name its store with --data-dir/--store`,
    );
  }
  const store = await openStoreOrExplain(loc);
  try {
    const settings = await store.getSettings();
    // Each key with its state now: the URLs of an expired or over-limit key look like any other.
    const statuses = await evaluateKeys(store, Date.now());
    const keys = statuses.map((s) => s.key);
    const stateOf = new Map(statuses.map((s) => [s.key.id, s.state]));
    const web = await loadWebEndpoint(dataDir);
    const out: string[] = [];
    // This data directory's API (its own host, port and certificate: on a fleet, this node's).
    const api = await localApiEndpoint(dataDir, settings, store.dialect);
    if (api?.certSha256 === undefined) {
      out.push(`No Outline Manager access config yet: the management API has not started with ${dataDir}.`);
    } else {
      const host = formatHostPort(api.host, api.port);
      out.push(
        'Outline Manager access config (paste into "Add server" > "existing server"; keep it secret):',
      );
      out.push(
        accessConfigLine({ apiUrl: `https://${host}/${settings.apiPrefix}`, certSha256: api.certSha256 }),
      );
    }
    out.push('');
    out.push(`${keys.length} key(s) (secrets: give each only to the people who should use it):`);
    for (const k of keys) {
      const tag = k.name || 'ladder';
      const state = stateOf.get(k.id) ?? 'active';
      out.push(
        `  ${printable(k.id)} "${printable(k.name)}"${state === 'active' ? '' : ` (${state.replace('_', ' ')}: its URLs do not connect now)`}`,
      );
      // --advertise web: the web URL is the key's URL (no raw host:port, the origin a CDN hides).
      const only = web?.only === true;
      out.push(`    ${only ? webKeyUrlFor(k, web, tag) : accessUrl(k, settings, tag)}`);
      const dyn = dynamicUrlVia(k, settings, api, tag);
      if (dyn) out.push(`    dynamic: ${dyn}`);
      const sub = subscriptionUrlVia(k, settings, api);
      if (sub) out.push(`    subscription: ${sub}`);
      // --advertise web: no ShadowTLS line either (it names the origin host).
      const stls = only
        ? undefined
        : await savedShadowTlsUrl(dataDir, k, settings.hostnameForAccessKeys, `${tag} (ShadowTLS)`);
      if (stls)
        out.push(
          `    through ShadowTLS v3: ${stls}`,
          '    (the dynamic key gives Outline apps the raw port: Outline has no ShadowTLS; its /sip008 form and the subscription list it)',
        );
      if (web && !only) out.push(`    web: ${webKeyUrlFor(k, web, `${tag} (web)`)}`);
      if (web) out.push(`    httpupgrade: ${httpUpgradeKeyUrlFor(k, web, `${tag} (HTTPUpgrade)`)}`);
      const grpc = web && grpcKeyUrlFor(k, web, `${tag} (gRPC)`);
      if (grpc) out.push(`    grpc: ${grpc}`);
    }
    if (web) {
      out.push('');
      out.push(
        `web: keys over the web front${web.tls ? ' (TLS)' : ''} on port ${web.port}, for ss-local + v2ray-plugin, v2rayNG, Clash/mihomo, sing-box and ${ladder} client`,
      );
      out.push(
        `httpupgrade: the same front's HTTPUpgrade at the secret path's /up, for ${HTTP_UPGRADE_CLIENTS}`,
      );
    }
    if (keys.some((k) => dynamicUrlVia(k, settings, api) !== undefined)) {
      out.push('');
      out.push(`dynamic (ssconf://) keys: ${dynamicKeyNote(settings.dynamicKeyBaseUrl)}`);
    }
    out.push('');
    out.push(`QR code of a key: ${ladder} keys url ID${where}`);
    return `${out.join('\n')}\n`;
  } finally {
    await store.close();
  }
}

/** `ladder server access-config`. */
export function registerAccessConfig(server: Command): void {
  oneLineCommand(
    withStoreOptions(
      server
        .command('access-config')
        .description("reprint the Outline Manager access config and every key's URLs from the store"),
    ),
    'server access-config',
  ).action(async (_opts: AccessConfigFlags, cmd: Command) => {
    refuseParentFlags(cmd, 'server access-config', ['--data-dir', '--store'], {
      '--show-urls': `it prints every key's URL already; a key's QR code: ${ladderCommand()} keys url ID`,
    });
    process.stdout.write(await accessConfigText(storeTarget<AccessConfigFlags>(cmd)));
  });
}
