/**
 * The ShadowTLS v3 port for `ladder server` (both modes): the --shadowtls-* flags (and the config
 * file's `shadowtls` object), its password (given; else derived from the first key, unmanaged, or
 * generated and kept in the data dir, managed), starting the listener in front of a
 * ShadowsocksServer, and the banner's lines.
 *
 * The password is a secret like a key's: never logged, printed only where the key itself is.
 */
import type { Command } from 'commander';
import { readFile, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { ShadowTlsConfig } from '../config/server.js';
import { flag, flagSchema, parseFlags } from '../config/flags.js';
import { keyShadowTlsPassword, shadowTlsKeyUrl } from '../protocol/sip002/shadowtls.js';
import type { ShadowsocksServer } from '../server/index.js';
import { ShadowTlsPasswords } from '../server/shadowtls/passwords.js';
import type { PendingCaps } from '../server/pending-limits.js';
import { asObject, readDataFile, writeDataFile } from '../shared/data-file.js';
import { bindErrorCode, explainBindError } from '../shared/listen.js';
import type { Logger } from '../shared/logger.js';
import { formatHostPort, parseHostPort } from '../shared/parse.js';
import { UsageError } from './errors.js';
import type { PortPool } from './port-pool.js';
import { keptSecret } from './kept-secret.js';

export interface ShadowTlsFlags {
  shadowtlsPort?: string;
  shadowtlsHost?: string;
  shadowtlsHandshake?: string;
  shadowtlsSni?: string;
  shadowtlsPassword?: string;
}

const HANDSHAKE_PORT = 443;
const PASSWORD_FILE = 'shadowtls-password';
const shadowTlsFlagsSchema = flagSchema({ shadowtlsPort: flag.port('--shadowtls-port').optional() });

export function addShadowTlsOptions(cmd: Command): Command {
  return cmd
    .option(
      '--shadowtls-port <port>',
      'also serve Shadowsocks behind ShadowTLS v3 on this port (sing-box, mihomo, Shadowrocket, Surge); needs --shadowtls-handshake',
    )
    .option('--shadowtls-host <addr>', 'address the ShadowTLS port listens on (default all interfaces)')
    .option(
      '--shadowtls-handshake <host[:port]>',
      'a real TLS 1.3 website (port 443 unless given) whose handshake clients show; probers are relayed to it',
    )
    .option(
      '--shadowtls-sni <name>',
      'the server name clients send (default: the --shadowtls-handshake host)',
    )
    .option(
      '--shadowtls-password <pw>',
      'ShadowTLS password (default: derived from the first key; managed: generated and kept in the data dir)',
    );
}

export interface ShadowTlsPlan {
  readonly port: number;
  readonly host?: string | undefined;
  readonly handshake: { readonly host: string; readonly port: number };
  /** The name clients put in their ClientHello. */
  readonly sni: string;
  readonly password?: string | undefined;
}

/**
 * The ShadowTLS port's settings from the flags over the config file's `shadowtls` object, or
 * undefined when neither turns it on. Bad values are usage errors naming the flag or field.
 */
export function planShadowTls(
  flags: ShadowTlsFlags,
  file?: { shadowtls: ShadowTlsConfig; source: string },
): ShadowTlsPlan | undefined {
  const f = file?.shadowtls;
  const port = parseFlags(shadowTlsFlagsSchema, flags).shadowtlsPort ?? f?.port;
  const others = (
    ['shadowtlsHost', 'shadowtlsHandshake', 'shadowtlsSni', 'shadowtlsPassword'] as const
  ).filter((k) => flags[k] !== undefined);
  if (port === undefined) {
    if (others.length > 0)
      throw new UsageError(
        `--${others[0]!.replace('shadowtls', 'shadowtls-').toLowerCase()} needs --shadowtls-port`,
      );
    return undefined;
  }
  const handshakeText = flags.shadowtlsHandshake ?? f?.handshake;
  const what =
    flags.shadowtlsHandshake !== undefined ? '--shadowtls-handshake' : `${file?.source}: shadowtls.handshake`;
  if (handshakeText === undefined)
    throw new UsageError(
      '--shadowtls-port needs --shadowtls-handshake HOST[:PORT]: a real website that speaks TLS 1.3 (probers are shown it)',
    );
  const handshake = parseHostPort(handshakeText, what, { defaultPort: HANDSHAKE_PORT, minPort: 1 });
  const sni = flags.shadowtlsSni ?? f?.sni ?? handshake.host;
  if (sni === '' || isIP(sni) !== 0)
    throw new UsageError(
      `${flags.shadowtlsSni !== undefined ? '--shadowtls-sni' : what}: clients need a server name, not an address (give --shadowtls-sni NAME)`,
    );
  const password = flags.shadowtlsPassword ?? f?.password;
  if (password === '') throw new UsageError('--shadowtls-password must not be empty');
  const host = flags.shadowtlsHost ?? f?.host;
  if (host === '') throw new UsageError('--shadowtls-host must not be empty');
  return { port, host, handshake: { host: handshake.host, port: handshake.port }, sni, password };
}

/**
 * The unmanaged server's ShadowTLS password when none is given: HMAC-SHA256 of a fixed label under
 * the first key (as derivedSecretPath), stable while that key stays first, revealing nothing of it.
 */
export function derivedShadowTlsPassword(firstKey: { method: string; secret: string }): string {
  return keyShadowTlsPassword(firstKey);
}

/**
 * Managed mode's server-wide password, which only an install made before per-key passwords has
 * (its users' URLs carry it) or the operator gives: the given one (then kept), else the kept one,
 * else none (every key has its own; none is made).
 */
export async function storedShadowTlsPassword(
  dataDir: string,
  given: string | undefined,
): Promise<string | undefined> {
  const kept = await readFile(join(dataDir, PASSWORD_FILE), 'utf8').then(
    (t) => t.trim() || undefined,
    () => undefined,
  );
  if (given === undefined) return kept;
  return keptSecret(dataDir, PASSWORD_FILE, given, () => given);
}

export interface RunningShadowTls {
  readonly port: number;
  readonly host?: string | undefined;
  readonly handshake: { readonly host: string; readonly port: number };
  readonly sni: string;
  /** The server-wide password (unmanaged; managed: only when given or kept from before). */
  readonly password?: string | undefined;
  /** Managed: every usable key's own password works (keyShadowTlsPassword); URLs carry it. */
  readonly perKey: boolean;
  close(): Promise<void>;
}

/** The ShadowTLS password a key's URL and lines carry on this port. */
export function shadowTlsPasswordFor(
  r: { perKey: boolean; password?: string | undefined },
  key: { method: string; secret: string },
): string {
  return r.perKey || r.password === undefined ? keyShadowTlsPassword(key) : r.password;
}

/** Start the ShadowTLS port in front of `server` (every key it has). Bind errors are usage errors. */
export async function startShadowTls(
  plan: ShadowTlsPlan & { password: string },
  server: ShadowsocksServer,
  idleMs: number,
  logger: Logger,
  pending?: PendingCaps,
  keyPasswords?: ShadowTlsPasswords,
): Promise<RunningShadowTls> {
  const { listenShadowTls } = await import('../server/shadowtls/listener.js');
  try {
    const l = await listenShadowTls({
      port: plan.port,
      host: plan.host,
      handshake: plan.handshake,
      passwords: keyPasswords ?? [plan.password],
      idleMs,
      logger,
      pending,
      onStream: (stream, info) => server.handleStream(stream, info),
    });
    return {
      ...plan,
      password: plan.password === '' ? undefined : plan.password,
      perKey: keyPasswords !== undefined,
      port: l.address.port,
      close: () => l.close(),
    };
  } catch (err) {
    const code = bindErrorCode(err);
    if (code)
      throw new UsageError(
        `cannot listen on ShadowTLS port ${plan.port}: ${explainBindError(code, plan.port)}`,
      );
    throw err;
  }
}

/** The banner's status line (no password). */
export function shadowTlsStatusLine(r: RunningShadowTls): string {
  const where = r.host === undefined ? `port ${r.port}` : formatHostPort(r.host, r.port);
  return `ShadowTLS v3 on ${where}: the handshake of ${formatHostPort(r.handshake.host, r.handshake.port)} (SNI ${r.sni}); probers get that site`;
}

/** What a key's user needs for ShadowTLS (printed where the key URL is). */
export function shadowTlsKeyLines(
  key: { method: string; secret: string },
  host: string,
  r: RunningShadowTls,
  tag: string,
): string[] {
  return [
    '  through ShadowTLS v3 (sing-box `shadowtls` outbound, mihomo `plugin: shadow-tls`, Shadowrocket, Surge):',
    `    server ${host} port ${r.port}, version 3, password ${shadowTlsPasswordFor(r, key)}, SNI ${r.sni}; Shadowsocks inside with this key`,
    '    as an ss:// URL (ladder client, Shadowrocket, Sub-Store and the apps that read plugin=shadow-tls):',
    `    ${shadowTlsKeyUrl(key, { host, port: r.port }, { sni: r.sni, password: shadowTlsPasswordFor(r, key) }, tag)}`,
  ];
}

/**
 * Managed mode's ShadowTLS port: every usable key's own password (following the pool's keys),
 * plus the server-wide one if given or kept from an install made before per-key passwords; its
 * streams to the pool's web server (every key of every port), started with `makeServer` when the
 * web front did not.
 */
export async function startManagedShadowTls(
  plan: ShadowTlsPlan,
  dataDir: string,
  pool: Pick<PortPool, 'attachWebServer' | 'webServer' | 'watchKeys'>,
  makeServer: () => Promise<ShadowsocksServer>,
  idleMs: number,
  logger: Logger,
): Promise<RunningShadowTls> {
  if (!pool.webServer) pool.attachWebServer(await makeServer());
  const password = await storedShadowTlsPassword(dataDir, plan.password);
  const passwords = new ShadowTlsPasswords(password === undefined ? [] : [password], keyShadowTlsPassword);
  pool.watchKeys(passwords);
  return startShadowTls(
    { ...plan, password: password ?? '' },
    pool.webServer!,
    idleMs,
    logger,
    undefined,
    passwords,
  );
}

/** The managed banner's ShadowTLS fields (managed-banner.ts): the status line and the first key's lines. */
export function shadowTlsBannerLines(
  r: RunningShadowTls,
  key: { method: string; secret: string },
  host: string,
  label: string,
): { stlsLine: string; stlsLines: string[] } {
  return {
    stlsLine: shadowTlsStatusLine(r),
    stlsLines: shadowTlsKeyLines(key, host, r, `${label} (ShadowTLS)`),
  };
}

const ENDPOINT_FILE = 'shadowtls-endpoint.json';

/**
 * Managed mode keeps the running ShadowTLS port's public parameters in its data dir (0600: the
 * password is a secret), so `ladder keys url` and `ladder server access-config` print the
 * ShadowTLS URL while the server runs; a start without the port removes it.
 */
export async function saveShadowTlsEndpoint(dataDir: string, r: RunningShadowTls | undefined): Promise<void> {
  const file = join(dataDir, ENDPOINT_FILE);
  if (r === undefined) await rm(file, { force: true });
  // Per-key: no password here (each key's is derived from the key); else the server-wide one.
  else
    await writeDataFile(file, {
      port: r.port,
      sni: r.sni,
      ...(r.perKey ? { perKey: true } : { password: r.password }),
    });
}

/** A key's ShadowTLS URL at `host` from what a managed server last saved in `dataDir`, if it saved one. */
export async function savedShadowTlsUrl(
  dataDir: string,
  key: { method: string; secret: string },
  host: string,
  tag: string,
): Promise<string | undefined> {
  const saved = await readDataFile(
    join(dataDir, ENDPOINT_FILE),
    (v) => {
      const o = asObject(v);
      if (typeof o?.port !== 'number' || typeof o.sni !== 'string') return 'fields missing';
      if (o.perKey === true) return { port: o.port, sni: o.sni, perKey: true };
      return typeof o.password === 'string'
        ? { port: o.port, sni: o.sni, perKey: false, password: o.password }
        : 'fields missing';
    },
    'go on (a managed server with --shadowtls-port writes it again when it starts)',
  );
  return (
    saved &&
    shadowTlsKeyUrl(
      key,
      { host, port: saved.port },
      { sni: saved.sni, password: shadowTlsPasswordFor(saved, key) },
      tag,
    )
  );
}
