/**
 * `ladder nodes`: the fleet's nodes in a PostgreSQL store (issue 16): list, drain, block,
 * unblock, rm, add-address. Changes take effect at the clients' next fetch of their dynamic key or
 * subscription (every node reads the nodes table per request). Bad input: one line, exit 2.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { DEFAULT_DATA_DIR } from '../../config/defaults.js';
import { didYouMean } from '../../protocol/near-miss.js';
import { isHostName } from '../../shared/parse.js';
import { ladderCommand } from '../../shared/invocation.js';
import type { NodeRecord, NodeRegistry, ServerSettings } from '../../store/index.js';
import { oneLineCommand, UsageError } from '../errors.js';
import { printable, printableJson } from '../terminal.js';
import { alignColumns } from './keys/format.js';
import { note, openStoreOrExplain, storeTarget, withStoreOptions } from './store-command.js';

interface StoreFlags {
  dataDir?: string;
  store?: string;
  storeFromEnv?: boolean;
}

/** Open the store the flags name; fleet nodes exist only in a PostgreSQL store. */
async function withRegistry<T>(
  flags: StoreFlags,
  fn: (nodes: NodeRegistry, settings: () => Promise<ServerSettings>) => Promise<T>,
  /** The node the command names: an unknown one is answered with the nearest existing name. */
  name?: string,
): Promise<T> {
  const { NodeError, parseStoreLocation } = await import('../../store/index.js');
  const loc = parseStoreLocation(flags.store, resolve(flags.dataDir ?? DEFAULT_DATA_DIR));
  if (loc.kind !== 'postgres')
    throw new UsageError(
      `fleet nodes live in a PostgreSQL store; give it with --store postgres://… (a SQLite store serves one server${flags.storeFromEnv ? ', and LADDER_STORE names one' : ''})`,
    );
  const store = await openStoreOrExplain(loc);
  try {
    return await fn(store.nodes(), () => store.getSettings());
  } catch (err) {
    if (err instanceof NodeError && err.code === 'NODE_NOT_FOUND' && name !== undefined) {
      const names = (await store.nodes().list()).map((n) => n.name);
      throw new UsageError(`${err.message}${didYouMean(name, names, (n) => `"${printable(n)}"`)}`);
    }
    if (err instanceof NodeError) throw new UsageError(err.message);
    throw err;
  } finally {
    await store.close();
  }
}

function age(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s ago`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min ago`;
  return `${(ms / 3_600_000).toFixed(1)} h ago`;
}

/** The table `ladder nodes list` prints. */
export function formatNodes(nodes: readonly NodeRecord[], listed: ReadonlySet<string>): string {
  const rows = [
    ['NAME', 'STATUS', 'IN KEYS', 'ADDRESSES', 'PORT', 'TRANSPORTS', 'HEARTBEAT', 'KEYS VER', 'VERSION'],
  ];
  for (const n of nodes) {
    rows.push([
      printable(n.name),
      n.down ? `down (${n.state})` : n.state,
      listed.has(n.name) ? 'yes' : 'no',
      // A suspected address (reported blocked by clients; out of the keys) is marked so.
      n.addresses
        .map((a) => printable(a) + (n.suspectedAddresses.includes(a) ? '(suspected)' : ''))
        .join(',') || '-',
      String(n.port),
      n.transports
        .map((t) => `${t.type === 'websocket' ? 'ws' : t.type === 'shadowtls' ? 'stls' : 'ss'}:${t.port}`)
        .join(',') || '-',
      n.stopped ? 'stopped' : age(n.heartbeatAgeMs),
      String(n.keysVersion),
      printable(n.version) || '-',
    ]);
  }
  return alignColumns(rows);
}

const EXAMPLES = `
Nodes register themselves: ladder server --store postgres://… --node NAME --public-host HOST.
A node is "down" when its heartbeat (every 2 s) is older than 6 s. Dynamic keys and subscriptions
list the active nodes that are up; drain or block a node and clients move at their next fetch.

Examples:
  ladder nodes --store postgres://ladder@db/ladder list
  ladder nodes --store postgres://… drain fra-1        # keep serving, leave the keys
  ladder nodes --store postgres://… block fra-1 --reason "blocked in AS12345"
  ladder nodes --store postgres://… add-address fra-1 198.51.100.7 && ladder nodes … unblock fra-1
  ladder nodes --store postgres://… rm fra-1           # refused while its heartbeat is fresh`;

export function registerNodes(program: Command): void {
  const nodes = oneLineCommand(
    withStoreOptions(program.command('nodes'), "postgres://… (the fleet's store)")
      .description('fleet nodes on a PostgreSQL store: list, drain, block, unblock, rm, add-address')
      .addHelpText('after', EXAMPLES),
    'nodes',
  );
  const sub = (name: string): Command => oneLineCommand(nodes.command(name), `nodes ${name}`);
  const flagsOf = (cmd: Command): StoreFlags => storeTarget<StoreFlags>(cmd);
  const say = (line: string): void => void process.stdout.write(`${line}\n`);

  sub('list')
    .description(
      'every node: status (active, draining, blocked, suspected; down), addresses, heartbeat age, keys version',
    )
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const { listedNodes } = await import('../../store/index.js');
      await withRegistry(flagsOf(cmd), async (reg, settings) => {
        const all = await reg.list();
        const listed = new Set(listedNodes(all).map((n) => n.name));
        const s = await settings();
        const reports = { keys: s.reportKeys, windowSeconds: s.reportWindowSeconds };
        if (o.json)
          say(
            printableJson({
              keysVersion: await reg.keysVersion(),
              blockedAddressReports: reports,
              nodes: all,
            }),
          );
        else if (all.length === 0)
          say(`No nodes yet: start one with ${ladderCommand()} server --store postgres://… --node NAME`);
        else {
          say(
            `Blocked-address reports: ${reports.keys} distinct keys within ${reports.windowSeconds} s mark an address suspected (PUT /server/blocked-address-reports)`,
          );
          process.stdout.write(formatNodes(all, listed));
        }
      });
    });

  const states = [
    ['drain', 'draining', 'keep serving its connections, leave the dynamic keys and subscriptions'],
    ['block', 'blocked', 'leave the dynamic keys and subscriptions (its address is blocked)'],
    [
      'unblock',
      'active',
      'list it in the keys again (also ends draining, and clears addresses suspected blocked)',
    ],
  ] as const;
  for (const [verb, state, what] of states) {
    const c = sub(verb)
      .argument('<name>', 'node name')
      .description(`${what}; clients follow at their next fetch`);
    if (verb === 'block') c.option('--reason <text>', 'why (shown in nodes list --json and GET /nodes)');
    // What a person types to end draining (commander suggested `drain`, the opposite).
    if (verb === 'unblock') c.alias('undrain');
    c.action(async (name: string, o: { reason?: string }, cmd: Command) => {
      const { keysFallbackNote } = await import('../../store/index.js');
      const [n, unlisted] = await withRegistry(
        flagsOf(cmd),
        async (reg, settings) => {
          const changed = await reg.setState(name, state, o.reason ?? null);
          const host = (await settings()).hostnameForAccessKeys;
          return [changed, keysFallbackNote(await reg.list(), host, printable)] as const;
        },
        name,
      );
      say(`node ${printable(n.name)} is ${n.state}${n.down ? ' (and down: no heartbeat)' : ''}`);
      if (unlisted) note(unlisted);
    });
  }

  sub('rm')
    .argument('<name>', 'node name')
    .description('forget a node (refused while its heartbeat is fresh; stop it first)')
    .option('--force', 'remove even while it runs (it registers again at its next heartbeat)')
    .action(async (name: string, o: { force?: boolean }, cmd: Command) => {
      await withRegistry(flagsOf(cmd), (reg) => reg.remove(name, o.force === true), name);
      say(`node ${printable(name)} removed`);
    });

  sub('add-address')
    .argument('<name>', 'node name')
    .argument(
      '<address>',
      'a public IP address or DNS name (listed first; keys pick it up at their next fetch)',
    )
    .description('add a public address to a node, e.g. a fresh one for a blocked node')
    .action(async (name: string, address: string, _o: unknown, cmd: Command) => {
      if (!isHostName(address))
        throw new UsageError(
          `nodes add-address: "${printable(address.slice(0, 80))}" is not an IP address or a DNS name`,
        );
      const n = await withRegistry(flagsOf(cmd), (reg) => reg.addAddress(name, address), name);
      say(`node ${printable(n.name)}: addresses ${n.addresses.map(printable).join(', ')}`);
    });
}
