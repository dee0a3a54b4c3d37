/**
 * `ladder keys`: manage access keys in the local store or through a server's management API.
 * The backends live in ./keys/ (local.ts, remote.ts), the printing in ./keys/format.ts; this file
 * holds the sub-commands: their flags, help, parsing and the one-line confirmation of each change.
 */
import { Option, type Command, type CommanderError } from 'commander';
import QRCode from 'qrcode';
import { DEFAULT_METHODS } from '../../api/app.js';
import { LIMIT_PERIODS, type LimitPeriod } from '../../store/index.js';
import { formatRate, parseMoment, parseSize as parseSizeText } from '../../shared/parse.js';
import { ladderCommand } from '../../shared/invocation.js';
import { ALL_METHODS } from '../../config/defaults.js';
import { fileErrorWhy } from '../../config/errors.js';
import { ProtocolError } from '../../protocol/errors.js';
import { formatKeyPrefixSetting, parseKeyPrefixSetting } from '../../protocol/shadowsocks/key-prefix.js';
import { GRPC_CLIENTS, HTTP_UPGRADE_CLIENTS, webSocketClients } from '../../protocol/sip002/plugin-opts.js';
import { commanderUsageError, UsageError } from '../errors.js';
import { printable, printableJson } from '../terminal.js';
import { readSecretLine } from '../secret-input.js';
import { DEFAULT_DATA_DIR } from '../managed.js';
import { note, storeTarget } from './store-command.js';
import { checkOutputFile } from './output-file.js';
import { replaceFile } from '../../shared/data-file.js';
import type { AddOptions, KeysBackend, KeyView } from './keys/backend.js';
import { LocalKeys } from './keys/local.js';
import { parseDevices, parseSpeed, registerLimitCommands } from './keys/limits.js';
import { parseApiTarget, RemoteKeys } from './keys/remote.js';
import {
  formatBytes,
  formatTable,
  keyLabel,
  limitConfirmation,
  outlineNote,
  PERIOD_WORDS,
  shortTime,
} from './keys/format.js';

export type { AddOptions, KeysBackend, KeyView } from './keys/backend.js';
export { LocalKeys } from './keys/local.js';
export { parseApiTarget, pinnedRequest, RemoteKeys } from './keys/remote.js';
export { formatBytes, formatTable } from './keys/format.js';

// ---- parsing -------------------------------------------------------------------------------

/** A data limit: "10GB", "500MiB", "1.5TB" (a unit is required). */
export function parseSize(s: string, what = 'limit'): number {
  return parseSizeText(s, what);
}

/** "2026-12-31", an ISO 8601 date-time, or a relative "30d" / "12h" / "2w" from now. */
export function parseWhen(s: string, now = Date.now(), what = 'expiry'): number {
  return parseMoment(s, what, now);
}

/** A limit to set, or null for "none", "off" or "0" (remove the limit). */
function limitOf(s: string, what: string): number | null {
  return ['none', 'off', '0'].includes(s.trim().toLowerCase()) ? null : parseSize(s, what);
}

/** An expiry in the future; a past one only with --force (the key would stop working at once). */
function expiryOf(s: string, what: string, force: boolean | undefined): number {
  const now = Date.now();
  const at = parseWhen(s, now, what);
  if (at <= now && !force)
    throw new UsageError(
      `${what} ${shortTime(at)} is in the past, so the key would stop working at once; ` +
        `use ${ladderCommand()} keys disable for that, or add --force`,
    );
  return at;
}

function periodOf(s: string | undefined): LimitPeriod | undefined {
  if (s === undefined) return undefined;
  const p = s === 'rolling' || s === '30d' ? 'rolling30d' : s;
  if (!(LIMIT_PERIODS as readonly string[]).includes(p)) {
    throw new UsageError(`--period must be one of ${LIMIT_PERIODS.join(', ')}, got "${printable(s)}"`);
  }
  return p as LimitPeriod;
}

/** --prefix checked for syntax here (one line, before any store is opened), in its stored form. */
function prefixOf(text: string): string {
  try {
    return formatKeyPrefixSetting(parseKeyPrefixSetting(text));
  } catch (err) {
    if (err instanceof ProtocolError) throw new UsageError(`--${err.message}`);
    throw err;
  }
}

const PREFIX_HELP =
  "Outline salt prefix of a SIP004 key: auto (default; a fresh one on every dynamic-key fetch, none in the static ss:// URL), off, or pinned bytes as hex (160301) or Outline's URL-escaped string (POST%20); pinned ones go into the ss:// URL too";

const PERIOD_HELP = `limit window: ${LIMIT_PERIODS.map((p) => PERIOD_WORDS[p]).join('; ')}`;

// ---- command -------------------------------------------------------------------------------

interface TargetFlags {
  dataDir?: string;
  store?: string;
  api?: string;
  certSha256?: string;
  insecure?: boolean;
  init?: boolean;
  /** --api came from LADDER_API (messages name the variable). */
  apiFromEnv?: boolean;
}

/**
 * The target the user meant: a typed flag wins over the other target's environment variable
 * (LADDER_API yields to --data-dir/--store/--init, LADDER_STORE to --api, each with a note); both
 * variables and no flag is refused, naming them.
 */
function targetOf(cmd: Command): TargetFlags {
  const f = storeTarget<TargetFlags>(cmd);
  if (f.api === undefined) return f;
  const apiFromEnv = cmd.getOptionValueSourceWithGlobals('api') === 'env';
  f.apiFromEnv = apiFromEnv;
  const localTyped = f.dataDir !== undefined || (f.store !== undefined && !f.storeFromEnv) || f.init === true;
  if (apiFromEnv && localTyped) {
    note('LADDER_API ignored: --data-dir, --store or --init names a local store');
    delete f.api;
    return f;
  }
  if (!f.storeFromEnv) return f;
  if (apiFromEnv)
    throw new UsageError(
      'LADDER_API and LADDER_STORE are both set: give --api or --store (or --data-dir) to choose, or unset one',
    );
  note('LADDER_STORE ignored: --api names a server');
  delete f.store;
  return f;
}

async function backendFor(flags: TargetFlags): Promise<KeysBackend> {
  if (flags.api !== undefined) {
    if (flags.dataDir !== undefined || flags.store !== undefined || flags.init)
      throw new UsageError('--api cannot be combined with --data-dir, --store or --init');
    return new RemoteKeys(
      parseApiTarget(
        flags.api,
        flags.certSha256,
        flags.insecure === true,
        flags.apiFromEnv ? 'LADDER_API' : '--api',
      ),
    );
  }
  // The remote flags check the API's certificate; a local store has none: refused, not ignored.
  const remote = [flags.certSha256 !== undefined && '--cert-sha256', flags.insecure && '--insecure'];
  const given = remote.filter((f): f is string => typeof f === 'string');
  if (given.length > 0)
    throw new UsageError(
      `${given.join(' and ')} ${given.length > 1 ? 'go' : 'goes'} with --api (a server's management API); the keys here are a local store's (--data-dir, --store), which has no certificate to check`,
    );
  return LocalKeys.open(flags.dataDir ?? DEFAULT_DATA_DIR, flags.store, flags.init === true);
}

async function withBackend(cmd: Command, fn: (b: KeysBackend) => Promise<void>): Promise<void> {
  const b = await backendFor(targetOf(cmd));
  try {
    await fn(b);
  } finally {
    await b.close();
  }
}

const say = (line: string): void => void process.stdout.write(`${line}\n`);

/**
 * After `keys add`: the URLs one a line, the ss:// QR code unless --no-qr (as before
 * subscriptions); for a 2022 key, a note (stderr) that Outline apps cannot use them.
 */
async function printNewKeyUrls(b: KeysBackend, k: KeyView, qr: boolean): Promise<void> {
  const u = await b.urls(k.id);
  say(u.ss);
  if (u.ssconf) say(u.ssconf);
  if (u.sub) say(u.sub);
  if (u.web) say(u.web);
  const outline = outlineNote(k, 1, u.ssconf !== undefined);
  if (outline) process.stderr.write(`${outline}\n`);
  if (qr) say((await QRCode.toString(u.ss, { type: 'terminal', small: true })).trimEnd());
}

/** Why a key that is not active does not connect, and the command that changes it. */
function stateNote(id: string, state: string): string {
  const cmd = `${ladderCommand()} keys`;
  const fix: Record<string, string> = {
    disabled: `until it is enabled (${cmd} enable ${printable(id)})`,
    expired: `until its expiry is moved (${cmd} expire ${printable(id)} never)`,
    over_limit: `until its data window allows it again or the limit is raised (${cmd} limit ${printable(id)} …)`,
  };
  return `note: key ${printable(id)} is ${printable(state).replace('_', ' ')}: these URLs do not connect ${fix[state] ?? 'for now'}`;
}

/**
 * `keys url`: each URL with what it is for and, on a terminal (or with --qr), its QR code;
 * --qr-png writes the ss:// one as a picture.
 */
async function printUrls(b: KeysBackend, id: string, qr: boolean, png?: string): Promise<void> {
  const u = await b.urls(id);
  // The URLs of a key that does not work now look like any other: say so (on stderr, for scripts).
  const { state, method } = await b.get(id);
  // Shadowsocks-2022: no Outline app has its ciphers, so the labels name the apps that do.
  const is2022 = method.startsWith('2022-');
  if (state !== undefined && state !== 'active') process.stderr.write(`${stateNote(id, state)}\n`);
  // The picture first: a path that cannot be written is one line, before any secret is printed.
  // It holds the key as plainly as the URL: written whole, readable by the user only, never
  // through a link planted at its name (as every output file: output-file.ts).
  if (png !== undefined) {
    checkOutputFile(png, '--qr-png');
    const picture = await QRCode.toBuffer(u.ss, { type: 'png', margin: 2, width: 512 });
    try {
      await replaceFile(png, picture);
    } catch (err) {
      throw new UsageError(
        `--qr-png ${printable(png)}: ${fileErrorWhy(err).replace(/^cannot read/, 'cannot write')}`,
        'ERR_INPUT',
      );
    }
  }
  const parts: [string, string | undefined][] = [
    [
      // --advertise web: the key's one static URL is the web front's, which Outline's apps cannot use.
      is2022
        ? 'static key (shadowsocks-rust, sing-box, Clash/mihomo, v2rayNG, Shadowrocket, ladder client --key; not Outline apps: they have no Shadowsocks-2022 ciphers):'
        : /[?&]plugin=/.test(u.ss)
          ? 'static key, over the web front (ss-local + v2ray-plugin, v2rayNG, Clash/mihomo, sing-box, ladder client; Outline: the dynamic key):'
          : 'static key (Outline, shadowsocks-libev/-rust, v2rayNG, ladder client --key):',
      u.ss,
    ],
    [
      (is2022
        ? 'dynamic key (ladder client; Outline apps get a message that they cannot use it: they have no Shadowsocks-2022 ciphers)'
        : 'dynamic key (Outline; re-read on every connect, follows the server when it moves)') +
        // One line where the user sees it: Outline's format has no room for ShadowTLS.
        (u.shadowtls !== undefined
          ? '; no ShadowTLS in it (Outline has none; its /sip008 form lists it):'
          : ':'),
      u.ssconf,
    ],
    [
      is2022
        ? 'subscription (Clash/mihomo, sing-box, v2rayNG, Shadowrocket; in a browser: a page with QR codes):'
        : 'subscription (Clash/mihomo, sing-box, v2rayNG, Shadowrocket, Outline; in a browser: a page with QR codes):',
      u.sub,
    ],
    [`over the web front (${webSocketClients(method)}, ladder client):`, u.web],
    [`over the web front's HTTPUpgrade (${HTTP_UPGRADE_CLIENTS}):`, u.httpupgrade],
    [`over the web front's gRPC (${GRPC_CLIENTS}):`, u.grpc],
    [
      'through ShadowTLS v3 (ladder client, Shadowrocket; sing-box and mihomo: the subscription):',
      u.shadowtls,
    ],
  ];
  for (const [label, url] of parts) {
    if (url === undefined) continue;
    say(label);
    say(`  ${url}`);
    if (qr) say((await QRCode.toString(url, { type: 'terminal', small: true })).trimEnd());
  }
  if (u.prefix !== undefined)
    say(
      `Outline prefix: ${u.prefix} (change: ${ladderCommand()} keys edit ${printable(id)} --prefix auto|off|<value>)`,
    );
  if (png !== undefined) say(`QR code written to ${png}`);
}

/**
 * Commander's parse errors for this command as one line naming its help; a negative number
 * (which commander takes for an unknown option) gets `negative`'s message instead.
 */
function oneLineErrors(cmd: Command, path: string, negative?: (arg: string) => string): Command {
  return cmd.exitOverride((err: CommanderError) => {
    if (err.exitCode === 0 || err.code === 'commander.help') throw err; // --help; bare `ladder keys`
    const arg = /^error: unknown option '(-\d[^']*)'/.exec(err.message)?.[1];
    if (arg !== undefined && negative) throw new UsageError(negative(arg));
    throw commanderUsageError(err, path);
  });
}

const EXAMPLES = `
Where the keys are: the store of a server on this machine (--data-dir, default ./${DEFAULT_DATA_DIR}, or
--store), or a running server's management API (--api). A missing store is refused: a key added
to a store that no server reads would never work. --init creates one deliberately.

Examples:
  ladder keys add --name Alice --limit 10GB          # on the server's machine, next to ./${DEFAULT_DATA_DIR}
  ladder keys --data-dir /var/lib/ladder list
  ladder keys --api '{"apiUrl":"https://203.0.113.5:8443/…","certSha256":"…"}' list
  ladder keys limit 2 500MiB --period monthly        # sizes need a unit: 10GB, 500MiB, 1.5TB
  ladder keys limit 2 none                           # remove the limit (so do off and 0; a 0-byte limit set
                                                     # through the Outline API blocks a key: LIMIT 0 B)
  ladder keys devices 2 3                            # at most 3 devices at once (none removes it)
  ladder keys speed 2 10Mbit                         # each way; also 500kbit, 2MB/s (a unit is required)
  ladder keys expire 2 2027-03-01                    # or 2027-03-01T18:00Z, 30d, never
  ladder keys disable 2 && ladder keys enable 2
  ladder keys url 2                                  # ss://, ssconf:// and subscription URLs
  ladder keys edit 2 --prefix 160301                 # pin the Outline prefix (or auto, off)
  printf '%s\\n' "$S" | ladder keys rotate 2 --password -   # a chosen secret, kept out of ps and history
  ladder keys --init --data-dir ./new-store add      # create a new store on purpose`;

/** `ladder keys`: manage access keys in the local store or through a server's management API. */
export function registerKeys(program: Command): void {
  const keys = oneLineErrors(
    program
      .command('keys')
      .description(
        'manage access keys: add, list, rm, rename, rotate, limit, devices, speed, expire, enable, disable, edit, url',
      )
      .option(
        '--data-dir <dir>',
        `the server's data directory holding its key store (default ./${DEFAULT_DATA_DIR}); a running server picks changes up within seconds`,
      )
      .addOption(
        new Option('--store <spec>', 'the key store: sqlite:PATH or postgres://…').env('LADDER_STORE'),
      )
      .option('--init', 'create the key store if it does not exist (it is refused otherwise)')
      .addOption(
        new Option(
          '--api <url|json>',
          'remote: the apiUrl, or the whole {"apiUrl":…,"certSha256":…} line (its secret path is safer in LADDER_API, out of ps)',
        ).env('LADDER_API'),
      )
      .option('--cert-sha256 <hex>', 'remote: SHA-256 fingerprint of the API certificate (pinned)')
      .option('--insecure', 'remote: do not check the API certificate')
      .addHelpText('after', EXAMPLES),
    'keys',
  );
  const sub = (name: string, negative?: (arg: string) => string): Command =>
    oneLineErrors(keys.command(name), `keys ${name}`, negative);

  sub('add')
    .description('create a key (or --count N keys) and print its ss:// URL and QR code')
    .option('--name <name>', 'display name')
    .option('--method <method>', `cipher: ${ALL_METHODS.join(', ')} (default ${DEFAULT_METHODS[0]})`)
    .option('--limit <size>', 'data limit with a unit: 10GB, 500MB, 1.5GiB')
    .option('--period <p>', `with --limit: ${PERIOD_HELP} (default rolling30d, as Outline)`)
    .option(
      '--expires <when>',
      'expiry: 2026-12-31, an ISO 8601 date-time, or 30d/12h/2w/90m from now (m = minutes)',
    )
    .option('--force', 'accept an expiry in the past')
    .option('--count <n>', 'create this many keys at once (named "<name> 1", …)')
    .option('--prefix <auto|off|value>', PREFIX_HELP)
    .option('--devices <n>', 'device limit: at most N client addresses use the key at once (1..10000)')
    .option('--speed <rate>', 'speed limit, each way: a rate with a unit (10Mbit, 2MB/s)')
    .option('--qr', 'draw the QR code even when the output is not a terminal')
    .option('--no-qr', 'do not print the QR code')
    .action(
      async (
        o: {
          name?: string;
          method?: string;
          limit?: string;
          period?: string;
          expires?: string;
          force?: boolean;
          count?: string;
          prefix?: string;
          devices?: string;
          speed?: string;
          qr?: boolean;
        },
        cmd: Command,
      ) => {
        const count = o.count === undefined ? 1 : Number(o.count);
        if (!/^\d+$/.test(o.count ?? '1') || count < 1 || count > 1000)
          throw new UsageError(`--count must be an integer in 1..1000, got "${printable(o.count ?? '')}"`);
        if (o.method !== undefined && !ALL_METHODS.includes(o.method))
          throw new UsageError(
            `--method must be one of ${ALL_METHODS.join(', ')}, got "${printable(o.method)}"`,
          );
        const period = periodOf(o.period);
        const prefix = o.prefix === undefined ? undefined : prefixOf(o.prefix);
        if (period && o.limit === undefined)
          throw new UsageError('--period is the window of a data limit: give --limit too');
        const add: AddOptions = {
          count,
          ...(o.name !== undefined ? { name: o.name } : {}),
          ...(o.method !== undefined ? { method: o.method } : {}),
          ...(o.limit !== undefined ? { limitBytes: parseSize(o.limit, '--limit') } : {}),
          ...(period ? { period } : {}),
          ...(o.expires !== undefined ? { expiresAt: expiryOf(o.expires, '--expires', o.force) } : {}),
          ...(prefix !== undefined ? { prefix } : {}),
          ...(o.devices !== undefined ? { deviceLimit: parseDevices(o.devices, '--devices') } : {}),
          ...(o.speed !== undefined ? { speedLimit: parseSpeed(o.speed, '--speed') } : {}),
        };
        const terms = [
          ...(add.limitBytes !== undefined
            ? [`data limit ${formatBytes(add.limitBytes)} ${PERIOD_WORDS[period ?? 'rolling30d']}`]
            : []),
          ...(add.expiresAt !== undefined ? [`expires ${shortTime(add.expiresAt)}`] : []),
          ...(prefix !== undefined ? [`prefix ${prefix}`] : []),
          ...(add.deviceLimit !== undefined ? [`at most ${add.deviceLimit} device(s) at once`] : []),
          ...(add.speedLimit !== undefined ? [`speed limit ${formatRate(add.speedLimit)} each way`] : []),
        ];
        const suffix = terms.length ? `: ${terms.join(', ')}` : '';
        await withBackend(cmd, async (b) => {
          const made = await b.add(add);
          if (made.length === 1) {
            say(`created ${keyLabel(made[0]!)}${suffix}`);
            // QR code only to a terminal by default, as `keys url` (in a pipe it is a screenful of escapes).
            await printNewKeyUrls(b, made[0]!, o.qr ?? process.stdout.isTTY === true);
          } else {
            say(
              `created ${made.length} keys: ${printable(made[0]!.id)} … ${printable(made[made.length - 1]!.id)}${suffix}`,
            );
            for (const k of made) say(`${printable(k.id)}\t${printable(k.name)}\t${k.accessUrl}`);
            const outline = outlineNote(made[0]!, made.length);
            if (outline) process.stderr.write(`${outline}\n`);
          }
        });
      },
    );

  sub('edit')
    .description("change a key's settings: --prefix (the Outline salt prefix its keys hand out)")
    .argument('<id>')
    .option('--prefix <auto|off|value>', PREFIX_HELP)
    .action(async (id: string, o: { prefix?: string }, cmd: Command) => {
      if (o.prefix === undefined) throw new UsageError('nothing to change: give --prefix auto|off|<value>');
      const prefix = prefixOf(o.prefix);
      await withBackend(cmd, async (b) => {
        await b.setPrefix(id, prefix);
        const k = await b.get(id);
        say(`${keyLabel(k)}: prefix ${printable(k.prefix ?? prefix)}`);
      });
    });

  sub('list')
    .description('table of keys with state, usage (current window and 30 days), limit and expiry')
    .option('--json', 'print JSON instead of a table')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      await withBackend(cmd, async (b) => {
        const list = await b.list();
        process.stdout.write(o.json ? `${printableJson(list)}\n` : formatTable(list));
      });
    });

  sub('rm')
    .description('delete a key (its open connections are closed)')
    .argument('<id>')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      await withBackend(cmd, async (b) => {
        const k = await b.get(id);
        await b.remove(id);
        say(`deleted ${keyLabel(k)}`);
      });
    });

  sub('rotate')
    .description(
      'give a key a new secret: its id, name, limits, expiry, usage and dynamic/subscription URLs stay; its ss:// URL changes; its open connections are closed',
    )
    .argument('<id>')
    .option(
      '--password <secret>',
      'the new secret (default: a fresh one, as for a new key); "-" reads it from standard input, one line (a prompt that does not echo on a terminal), so it stays out of ps and shell history',
    )
    .action(async (id: string, o: { password?: string }, cmd: Command) => {
      const password = o.password === '-' ? await readSecretLine('--password -') : o.password;
      await withBackend(cmd, async (b) => {
        const k = await b.get(id);
        await b.rotate(id, password);
        say(
          `rotated ${keyLabel(k)}: new secret in effect (its open connections are closed); dynamic and subscription URLs unchanged; the new ss:// URL: ${ladderCommand()} keys url ${printable(id)}`,
        );
      });
    });

  sub('rename')
    .description('rename a key')
    .argument('<id>')
    .argument('<name>')
    .action(async (id: string, name: string, _o: unknown, cmd: Command) => {
      // As the API (a name of at least one character); a blank one reads as none in every list.
      if (name.trim() === '')
        throw new UsageError(`the new name must not be blank, got "${printable(name)}"`);
      await withBackend(cmd, async (b) => {
        const before = await b.get(id);
        await b.rename(id, name);
        say(`renamed key ${printable(id)}: "${printable(before.name)}" → "${printable(name)}"`);
      });
    });

  sub('limit', (arg) => `limit must be a positive size like 10GB, got "${arg}"`)
    .description(
      'set a data limit with a unit (10GB, 500MiB, 1.5TB), or remove it (none, off, 0: a bare 0 removes the limit; it does not block the key, use disable for that)',
    )
    .argument('<id>')
    .argument('<size|none>')
    .option('--period <p>', `${PERIOD_HELP}; without it the key's current period is kept`)
    .action(async (id: string, size: string, o: { period?: string }, cmd: Command) => {
      const bytes = limitOf(size, 'limit');
      const period = periodOf(o.period);
      if (bytes === null && period)
        throw new UsageError('--period is the window of a data limit: give a size, not "none"');
      await withBackend(cmd, async (b) => {
        await b.limit(id, bytes, period);
        say(limitConfirmation(await b.get(id), period !== undefined));
      });
    });

  registerLimitCommands(sub, withBackend, say);

  sub('expire', (arg) => `expiry must be a date, a date-time or a duration from now like 30d, got "${arg}"`)
    .description(
      'set when a key stops working: 2026-12-31, an ISO 8601 date-time, or a time from now (30d; units s, m = minutes, h, d, w), or never',
    )
    .argument('<id>')
    .argument('<when|never>')
    .option('--force', 'accept an expiry in the past (the key stops working at once)')
    .action(async (id: string, when: string, o: { force?: boolean }, cmd: Command) => {
      const at = when === 'never' ? null : expiryOf(when, 'expiry', o.force);
      await withBackend(cmd, async (b) => {
        await b.expire(id, at);
        const k = await b.get(id);
        say(`${keyLabel(k)}: ${at === null ? 'expiry removed (never expires)' : `expires ${shortTime(at)}`}`);
      });
    });

  for (const [name, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    sub(name)
      .description(enabled ? 'let a disabled key work again' : 'stop a key working without deleting it')
      .argument('<id>')
      .action(async (id: string, _o: unknown, cmd: Command) => {
        await withBackend(cmd, async (b) => {
          await b.setEnabled(id, enabled);
          say(`${keyLabel(await b.get(id))}: ${enabled ? 'enabled' : 'disabled'}`);
        });
      });
  }

  sub('url')
    .description(
      'print the ss://, ssconf:// and subscription URLs of a key, each with its QR code on a terminal',
    )
    .argument('<id>')
    .option('--qr', 'draw the QR codes even when the output is not a terminal')
    .option('--no-qr', 'do not draw the QR codes')
    .option('--qr-png <file>', 'also write the ss:// QR code as a PNG image')
    .action(async (id: string, o: { qrPng?: string; qr?: boolean }, cmd: Command) => {
      // QR codes only to a terminal by default (in a file or a pipe they are a screenful of blocks).
      const qr = o.qr ?? process.stdout.isTTY === true;
      await withBackend(cmd, (b) => printUrls(b, id, qr, o.qrPng));
    });
}
