import type { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import {
  DEFAULT_SURVIVAL_RATE,
  runSurvival,
  type Contender,
  type TunnelContender,
} from '../../lab/survival.js';
import { formatSurvivalTable } from '../../lab/survival-format.js';
import { selectContenders } from '../../lab/select.js';
import { DEFAULT_PROFILE, profile, profileNames } from '../../lab/profiles.js';
import { startDataPlane } from '../../server/index.js';
import { startClient } from '../../client/index.js';
import { randomBytes } from 'node:crypto';
import { fragmentingSocket } from '../../transport/tls-fragment.js';
import { FilteringUdpResolver } from '../../client/dns/resolvers.js';
import dnsPacket from 'dns-packet';
import { DEFAULT_METHOD } from '../../config/defaults.js';
import { listen } from '../../shared/listen.js';
import { parseIntInRange } from '../../shared/parse.js';
import { UsageError } from '../errors.js';
import { webContenders } from './lab-web.js';
import { shadowTlsContenders } from './lab-stls.js';
import { checkOutputFile, writeWhole } from './output-file.js';

interface LabRunFlags {
  profile: string;
  json?: boolean;
  verbose?: boolean;
  seed: string;
  rate: string;
  decisions?: string;
  only?: string[];
}

const METHOD = DEFAULT_METHOD;
const PASSWORD = 'ladder-lab-password';
const METHOD_2022 = '2022-blake3-aes-256-gcm';

async function freePort(): Promise<number> {
  const s = net.createServer();
  const { port } = await listen(s, { port: 0, host: '127.0.0.1' });
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitListening(port: number, child: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const spawnError = (child as ChildProcess & { spawnError?: Error }).spawnError;
    if (spawnError) throw new Error(`${what}: ${spawnError.message}`);
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not start listening on 127.0.0.1:${port}`);
}

/** The peers (ss-server, ss-local) running now, ended with the run when a signal ends it. */
const peers = new Set<ChildProcess>();

/**
 * SIGINT/SIGTERM during a run: end the peers, then exit as the signal would (Node's default exit
 * left ss-server and ss-local running when `kill` or `timeout` signalled ladder alone).
 */
function endPeersOnSignal(): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    for (const child of peers) child.kill('SIGTERM');
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

function spawnPeer(bin: string, args: string[]): ChildProcess {
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  peers.add(child);
  child.once('exit', () => peers.delete(child));
  child.stderr?.resume();
  // ENOENT (binary not installed) arrives as an 'error' event; waitListening reports it.
  child.on('error', (err) => Object.assign(child, { spawnError: err }));
  return child;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    }, 2000).unref();
  });
}

const shadowsocksLibev: TunnelContender = {
  kind: 'tunnel',
  name: 'shadowsocks-libev AEAD',
  description: `ss-server + ss-local (shadowsocks-libev, ${METHOD})`,
  ladder: false,
  async startServer() {
    const port = await freePort();
    const child = spawnPeer('ss-server', [
      '-s',
      '127.0.0.1',
      '-p',
      String(port),
      '-k',
      PASSWORD,
      '-m',
      METHOD,
      '-t',
      '600',
    ]);
    await waitListening(port, child, 'ss-server (apt-get install shadowsocks-libev)');
    return { address: { host: '127.0.0.1', port }, stop: () => stopChild(child) };
  },
  async startClient(server) {
    const port = await freePort();
    const child = spawnPeer('ss-local', [
      '-s',
      server.host,
      '-p',
      String(server.port),
      '-b',
      '127.0.0.1',
      '-l',
      String(port),
      '-k',
      PASSWORD,
      '-m',
      METHOD,
      '-t',
      '600',
    ]);
    await waitListening(port, child, 'ss-local');
    return { socks: { host: '127.0.0.1', port }, stop: () => stopChild(child) };
  },
};

interface LadderVariant {
  /** SIP004 or SIP022 method. */
  method: string;
  secret: string;
  /** D1/D3 first-packet shaping; undefined = the client's default (on for SIP004). */
  shape?: boolean;
  /** D10/D15: this many emulated fronts of the same server, given to the client as several keys. */
  fronts?: number;
  /**
   * Auto routing: direct while it works, then TLS-record fragmentation, then the tunnel. The
   * sites are asked for by name; the client resolves them for its direct routes through its own
   * `--dns` forwarder (the tunnel to the lab's genuine resolver), the server abroad to the sites'
   * remote-side addresses.
   */
  auto?: boolean;
}

function ladderContender(name: string, description: string, v: LadderVariant): TunnelContender {
  return {
    kind: 'tunnel',
    name,
    description,
    ladder: true,
    ...(v.fronts ? { fronts: v.fronts } : {}),
    ...(v.auto ? { byName: true } : {}),
    async startServer(ctx) {
      const dp = await startDataPlane({
        port: 0,
        host: '127.0.0.1',
        keys: [{ id: 'lab', method: v.method, secret: v.secret }],
        allowPrivateDestinations: true,
        ...(v.auto ? { lookup: ctx.remoteLookup } : {}),
      });
      return { address: { host: '127.0.0.1', port: dp.address.port }, stop: () => dp.close() };
    },
    async startClient(server, ctx) {
      const key = (e: { host: string; port: number }) => ({
        host: e.host,
        port: e.port,
        method: v.method,
        password: v.secret,
      });
      const client = await startClient({
        socks: { host: '127.0.0.1', port: 0 },
        ...(v.fronts ? { keys: ctx.fronts.map(key), clock: ctx.clock } : { key: key(server) }),
        ...(v.shape !== undefined ? { shape: v.shape } : {}),
        ...(v.auto
          ? {
              // Real clock: the 5 s probe timeout must not shrink with the lab's clock.
              route: 'auto' as const,
              // --dns through the tunnel: the direct and fragment routes resolve names through it.
              dns: { listen: '127.0.0.1:0', mode: 'tunnel' as const, upstream: ctx.genuineResolverTcp },
            }
          : {}),
      });
      return { socks: { host: '127.0.0.1', port: client.socksAddress!.port }, stop: () => client.close() };
    },
  };
}

/** D11: resolve through Ladder's filtering UDP stub; the first A answer of the response it keeps. */
async function resolveWithStub(
  resolver: { host: string; port: number },
  name: string,
): Promise<string | undefined> {
  const stub = new FilteringUdpResolver({ upstream: resolver, windowMs: 300, timeoutMs: 2000 });
  const query = dnsPacket.encode({
    type: 'query',
    id: 1,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name, class: 'IN' }],
  });
  const reply = dnsPacket.decode(await stub.resolve(query));
  const a = reply.answers?.find((x) => x.type === 'A') as { data?: unknown } | undefined;
  return typeof a?.data === 'string' ? a.data : undefined;
}

export function labContenders(): Contender[] {
  const secret2022 = randomBytes(32).toString('base64');
  return [
    {
      kind: 'direct',
      name: 'direct -> blocked site',
      description: 'no circumvention: DNS through the path resolver, HTTP and HTTPS to www.blocked.lab',
      site: 'blocked',
    },
    {
      kind: 'direct',
      name: 'direct -> open site',
      description: 'control: the same workload to www.open.lab',
      site: 'open',
    },
    {
      kind: 'direct',
      name: 'direct + TLS record frag (D8)',
      description:
        'direct to www.blocked.lab with the ClientHello split across TLS records (src/transport/tls-fragment.ts)',
      site: 'blocked',
      wrapTls: (raw) => fragmentingSocket(raw),
    },
    {
      kind: 'direct',
      name: 'direct + DNS stub (D11)',
      description:
        "direct to www.blocked.lab resolving through Ladder's filtering DNS stub (src/client/dns; waits for the late genuine answer; its queries leave from 127.0.0.1)",
      site: 'blocked',
      resolveName: resolveWithStub,
    },
    shadowsocksLibev,
    ladderContender(
      'ladder AEAD, no shaping',
      `Ladder server + client, SIP004 ${METHOD} with first-packet shaping off (the D1/D3 negative control)`,
      { method: METHOD, secret: PASSWORD, shape: false },
    ),
    ladderContender(
      'ladder AEAD (default)',
      `Ladder server + client as users get them: SIP004 ${METHOD}, D1/D3 first-packet shaping on by default`,
      { method: METHOD, secret: PASSWORD },
    ),
    ladderContender(
      'ladder AEAD, no shaping, 2 fronts (D10/D15)',
      "shaping off, two server fronts given as two keys: the client's residual-aware failover (src/client/routing)",
      { method: METHOD, secret: PASSWORD, shape: false, fronts: 2 },
    ),
    ladderContender(
      'ladder auto routing',
      'route auto (direct while it works, then TLS-record fragmentation, then the tunnel; src/client/routing-dialer.ts) with --dns through the tunnel, shaping on; sites asked for by name at their path ports',
      { method: METHOD, secret: PASSWORD, auto: true },
    ),
    ladderContender(
      'ladder SIP022, no shaping',
      `Ladder server + client with ${METHOD_2022} (Shadowsocks 2022), first-packet shaping off (the 2022 D1/D3 negative control)`,
      { method: METHOD_2022, secret: secret2022, shape: false },
    ),
    ladderContender(
      'ladder SIP022',
      `Ladder server + client with ${METHOD_2022} (Shadowsocks 2022) as users get them: a per-connection salt prefix (16 random bytes kept) and first-write padding, on by default`,
      { method: METHOD_2022, secret: secret2022 },
    ),
    ...webContenders(METHOD, PASSWORD),
    ...shadowTlsContenders(METHOD, PASSWORD),
  ];
}

/** `lab run` found a defence that failed (the report's FINDINGS); 1 stays "a bug in ladder". */
export const EXIT_FINDINGS = 3;

/** The exit code of a finished `lab run`: 0, or EXIT_FINDINGS when the report has findings. */
export const labExitCode = (report: { readonly findings: readonly string[] }): number =>
  report.findings.length > 0 ? EXIT_FINDINGS : 0;

const EXIT_HELP = `
Exit codes: 0 the run finished without findings; ${EXIT_FINDINGS} the lab found a defence that failed
(FINDINGS in the report, e.g. the prober classified Ladder's server as a proxy); 2 a bad flag or a
--decisions file that cannot be written; 1 a bug in ladder.`;

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('censor lab: the measured Great Firewall behaviours emulated on loopback');
  lab
    .command('run')
    .description(
      'bring up the emulated world, drive a fixed workload through each contender, print the survival table',
    )
    .option('--profile <name>', `censor profile (${profileNames().join(', ')})`, DEFAULT_PROFILE)
    .option('--json', 'print the report as JSON')
    .option('--verbose', "after the table, each row's requests, behaviour counts and prober reactions")
    .option('--seed <n>', 'seed for every random choice of the censor', '1')
    .option(
      '--rate <n>',
      'virtual-time speed-up (180 s residual = 180/rate s)',
      String(DEFAULT_SURVIVAL_RATE),
    )
    .option('--decisions <file>', 'write the censor decision log (JSON lines) to this file')
    .option(
      '--only <name>',
      'run only this contender: its name (any case), else a part of names, else comma-separated parts; repeatable',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    )
    .addHelpText('after', EXIT_HELP)
    .action(async (flags: LabRunFlags) => {
      let config;
      try {
        config = profile(flags.profile);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const seed = parseIntInRange(flags.seed, '--seed', 0, 0xffffffff);
      const rate = parseIntInRange(flags.rate, '--rate', 1, 1000);
      let contenders = labContenders();
      if (flags.only) {
        const picked = selectContenders(contenders, flags.only);
        if (!picked.ok) throw new UsageError(picked.error);
        contenders = picked.selected;
      }
      if (flags.decisions) checkOutputFile(flags.decisions, '--decisions');
      let decisions = '';
      const released = endPeersOnSignal();
      const report = await runSurvival({
        config,
        seed,
        clockRate: rate,
        contenders,
        onProgress: flags.json ? undefined : (m) => process.stderr.write(`lab: ${m}\n`),
        onDecisionLog: (jsonl) => {
          decisions = jsonl;
        },
      }).finally(released);
      process.stdout.write(
        flags.json
          ? JSON.stringify(report, null, 2) + '\n'
          : formatSurvivalTable(report, { verbose: flags.verbose === true }),
      );
      process.exitCode = labExitCode(report);
      // After the table: a file that cannot be written after all is one line, the table still shown.
      if (flags.decisions) await writeWhole(flags.decisions, decisions);
    });
}
