import type { Command } from 'commander';
import { isIP } from 'node:net';
import { parseHostPort } from '../../client/config.js';
import { createTunnelDialer, endpointFromKey } from '../../client/index.js';
import { parseIntInRange, type HostPort } from '../../shared/parse.js';
import { isUrlItem, ListError, parseList, parseUrlItem } from '../../probe/list.js';
import { renderHtml } from '../../probe/html.js';
import { toOoni } from '../../probe/ooni.js';
import { probeList, type ListEntry } from '../../probe/run.js';
import { namedUrls, summarize, verdictName } from '../../probe/summary.js';
import { isUserError, UsageError } from '../errors.js';
import { checkOutputFile, writeWhole } from './output-file.js';
import { readInputFile, runServerCheck, serverCheckJson } from './probe-servers.js';

interface ProbeFlags {
  list?: string[];
  servers?: string[];
  target: string;
  via?: string;
  dns?: string;
  controlResolver: string;
  json?: string;
  html?: string;
  concurrency: string;
  timeout: string;
}

const PRIVACY = `
Privacy: nothing is sent anywhere but the measurement traffic itself (from this network to each
URL, and to the resolver) and the control through your own server (--via), which resolves and
fetches each URL from abroad. The outputs stay on this machine. If you share a --json file, it
reveals the list you measured, when, what each site answered here (bodies truncated to 4 KiB,
headers, addresses) and so roughly where you are; it does not hold your address, ASN or key.`;

function readList(item: string): ListEntry[] {
  const url = isUrlItem(item);
  const text = url ? item : readInputFile(item, '--list', 'a URL or readable file');
  try {
    return url ? [parseUrlItem(item, '--list')] : parseList(text, item);
  } catch (err) {
    if (err instanceof ListError) throw new UsageError(err.message, 'ERR_INPUT');
    throw err;
  }
}

function usage<T>(fn: () => T, what?: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UsageError || !isUserError(err)) throw err;
    const msg = (err as Error).message;
    throw new UsageError(what ? `${what}: ${msg}` : msg);
  }
}

/**
 * A resolver flag: an IP address, optionally with a port (53 by default). A name is refused: it
 * would have to be resolved first, and a typo (`--dns nope`) made every lookup fail, which with a
 * working control read as DNS blocking.
 */
function resolverAddress(text: string, flag: string): HostPort {
  const hp = usage(() => parseHostPort(text, flag, 53));
  if (isIP(hp.host) === 0)
    throw new UsageError(
      `${flag} "${text}": expected the resolver's IP address (IPv4 or IPv6, optionally with :port)`,
    );
  return hp;
}

/**
 * A stray argument as shown in a message: printable, bounded (it may be anything typed), and a
 * URL's user:password starred out (a message may end up in a log).
 */
const shownArg = (text: string): string => {
  const t = text.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@').replace(/[^\x20-\x7e]/g, '?');
  return t.length > 80 ? `${t.slice(0, 80)}…` : t;
};

/** The message for a stray argument: a key (a secret, starred out of /proc) is not repeated. */
const strayMessage = (text: string): string =>
  /^ss(conf)?:\/\//i.test(text)
    ? 'probe: a key needs --servers before it: ladder probe --servers KEY (the key is not repeated here)'
    : `probe: "${shownArg(text)}" needs a flag before it: --list ${shownArg(text)} (URLs and list files), or --servers (keys)`;

export function registerProbe(program: Command): void {
  program
    .command('probe')
    .description(
      'measure which URLs this network blocks and how (OONI web_connectivity method), with your server as the control',
    )
    .option('--list <file|url...>', 'citizenlab CSV test lists, plain URL-per-line files, or URLs')
    .option(
      '--servers <key|file...>',
      'self-check instead: can this network reach each endpoint of these ss:// / ssconf:// keys or subscription files, and where does it fail (exit 3 if one is not reachable)',
    )
    .option(
      '--target <url>',
      '--servers: the http:// URL fetched through each endpoint (from the server side)',
      'http://www.gstatic.com/generate_204',
    )
    .option(
      '--via <key>',
      'access key of your Ladder/Shadowsocks server: the control resolves and fetches through it',
    )
    .option(
      '--dns <ip[:port]>',
      'resolver for the local measurement, an IP address (default: the system resolver)',
    )
    .option(
      '--control-resolver <ip[:port]>',
      'resolver your server asks for the control, an IP address',
      '1.1.1.1:53',
    )
    .option('--json <file>', "write the measurements, one per line, in OONI's format")
    .option('--html <file>', 'write a self-contained HTML report (summary, chart, sortable table)')
    .option('--concurrency <n>', 'URLs measured at once (1..256)', '8')
    .option('--timeout <seconds>', 'deadline for each step (1..120)', '10')
    .addHelpText('after', PRIVACY)
    // A URL or file given without --list (`ladder probe http://… --via KEY`) gets a line saying
    // where it goes, not commander's "Expected 0 arguments but got 1".
    .allowExcessArguments(true)
    .action(async (flags: ProbeFlags, cmd: Command) => {
      const stray = cmd.args[0];
      if (stray !== undefined) throw new UsageError(strayMessage(stray));
      if (flags.list?.length && flags.servers?.length)
        throw new UsageError('probe: give --list or --servers, not both');
      if (!flags.list?.length && !flags.servers?.length)
        throw new UsageError('probe: give --list FILE|URL… (or --servers KEY|FILE… for the self-check)');
      const concurrency = usage(() => parseIntInRange(flags.concurrency, '--concurrency', 1, 256));
      const timeoutMs = usage(() => parseIntInRange(flags.timeout, '--timeout', 1, 120)) * 1000;
      const dns = flags.dns ? resolverAddress(flags.dns, '--dns') : undefined;
      const resolver = resolverAddress(flags.controlResolver, '--control-resolver');
      if (flags.json) checkOutputFile(flags.json, '--json');
      if (flags.html) checkOutputFile(flags.html, '--html');
      if (flags.servers?.length) {
        if (flags.html || flags.via) throw new UsageError('probe --servers: --html and --via are for --list');
        let target: URL;
        try {
          target = new URL(flags.target);
        } catch {
          throw new UsageError(`--target: "${flags.target}" is not a URL`);
        }
        if (target.protocol !== 'http:') throw new UsageError('--target must be an http:// URL');
        const start = new Date();
        const checks = await runServerCheck({ servers: flags.servers, dns, target, timeoutMs, concurrency });
        if (flags.json)
          await writeWhole(
            flags.json,
            checks.map((c) => JSON.stringify(serverCheckJson(c, start))).join('\n') + '\n',
          );
        return;
      }
      if (!flags.list?.length) return;
      const entries = flags.list.flatMap(readList);
      if (entries.length === 0) throw new UsageError('probe: the list is empty', 'ERR_INPUT');
      const dialer = flags.via
        ? usage(() => createTunnelDialer(endpointFromKey(flags.via!, 'local')), '--via')
        : undefined;
      if (!dialer)
        process.stderr.write('probe: no --via server, so no control: every verdict will be null\n');
      const tty = process.stderr.isTTY === true;
      let blocked = 0;
      const start = new Date();
      const results = await probeList(entries, {
        ...(dns ? { dns } : {}),
        ...(dialer ? { control: { dialer, resolver } } : {}),
        timeoutMs,
        concurrency,
        onResult: (done, total, r) => {
          if (r.keys.blocking) blocked++;
          if (tty)
            process.stderr.write(
              `\r\x1b[K[${done}/${total}] ${blocked} blocked, last: ${verdictName(r.keys.blocking)}`,
            );
        },
      });
      if (tty) process.stderr.write('\r\x1b[K');
      // The summary first: a file that cannot be written after all is one line, the run not lost.
      process.stdout.write(summarize(results) + namedUrls(results));
      if (flags.json)
        await writeWhole(flags.json, results.map((r) => JSON.stringify(toOoni(r, start))).join('\n') + '\n');
      if (flags.html) await writeWhole(flags.html, renderHtml(results, start));
    });
}
