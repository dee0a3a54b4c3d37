/**
 * A secret in a command-line argument is readable by every local user (ps, /proc/PID/cmdline)
 * for as long as the process runs. The environment is not (/proc/PID/environ is the owner's
 * alone): LADDER_STORE stands in for --store, LADDER_API for --api, LADDER_KEY for the client's
 * --key, LADDER_PASSWORD and LADDER_AUTH for --password and --auth (probe's --servers and --via
 * keys have none: they are only starred out); node-postgres also takes the password alone from
 * PGPASSWORD or ~/.pgpass, as libpq does. When a secret comes on the
 * command line anyway, `ladder` says so once (without the secret) for --store and --api, and on
 * Linux overwrites its command line as /proc shows it with the secrets starred out.
 */
const HIDDEN = '***';

/**
 * `spec` with a PostgreSQL URL's password replaced by `placeholder` (ps, banners, suggested
 * commands), or undefined when it carries none. Read by hand, not by a URL parser, so that a
 * password that is not percent-encoded never shows however a parser would read it: the user
 * information runs to the URL's last '@' and the password from its first ':' (a raw '/', '?', '#'
 * or '@' in a password stays hidden; a '@' in the database name or query hides more than the
 * password, never less), and a `password=` (or `sslpassword=`) query value runs to the next '&'
 * that starts a setting node-postgres reads (a raw '&' in the password stays hidden).
 */
export function hideStorePassword(spec: string, placeholder = HIDDEN): string | undefined {
  const m = /^(postgres(?:ql)?:\/\/)(.*)$/is.exec(spec);
  if (!m) return undefined;
  const rest = m[2]!;
  const hidden = new Array<boolean>(rest.length).fill(false);
  const hide = (from: number, to: number): void => void hidden.fill(true, from, to);
  const at = rest.lastIndexOf('@');
  const colon = rest.indexOf(':');
  if (colon >= 0 && colon < at) hide(colon + 1, at);
  // Every '?' or '&' that starts a `…password=` pair (node-postgres reads the name percent-decoded).
  for (let i = rest.search(/[?&]/); i >= 0 && i < rest.length; i++) {
    if (rest[i] !== '?' && rest[i] !== '&') continue;
    const eq = rest.indexOf('=', i + 1);
    if (eq < 0) break;
    const name = rest.slice(i + 1, eq);
    if (/[?&]/.test(name) || !/password$/i.test(decoded(name))) continue;
    const end = passwordEnd(rest, eq + 1);
    hide(eq + 1, end);
  }
  let out = m[1]!;
  for (let i = 0; i < rest.length; i++) {
    if (!hidden[i]) out += rest[i];
    else if (i === 0 || !hidden[i - 1]) out += placeholder;
  }
  return out === spec ? undefined : out;
}

/**
 * The names node-postgres reads from a connection URL's query (pg-connection-string and pg's
 * connection parameters). A raw '&' in a password value makes node-postgres read a password cut
 * there and the rest as another parameter (`password=a&b`: password `a`, parameter `b`): what
 * follows is the password's too unless it reads as one of these settings.
 */
const PG_QUERY_NAMES = new Set(
  (
    'host port user password database db encoding client_encoding options application_name ' +
    'fallback_application_name ssl sslmode sslcert sslkey sslrootcert sslca sslpassword ' +
    'sslnegotiation uselibpqcompat connect_timeout keepalives keepalives_idle statement_timeout ' +
    'query_timeout lock_timeout idle_in_transaction_session_timeout replication binary ' +
    'target_session_attrs'
  ).split(' '),
);

/** Where a `password=` value starting at `from` ends: at the first '&' that starts a setting's
 *  pair (`&sslmode=…`), else at the end (a bare `&b`, or `&b=c` for no setting, stays hidden). */
function passwordEnd(rest: string, from: number): number {
  for (let amp = rest.indexOf('&', from); amp >= 0; amp = rest.indexOf('&', amp + 1)) {
    const m = /^([^&=]*)=/.exec(rest.slice(amp + 1));
    if (m && PG_QUERY_NAMES.has(decoded(m[1]!))) return amp;
  }
  return rest.length;
}

/** A query parameter's name as node-postgres reads it (percent-decoded), or as it stands. */
function decoded(name: string): string {
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

/** The management API's URL (alone, or in its access-config JSON) with its secret path starred out. */
function hideApiPath(v: string): string {
  return v.replace(/(https?:\/\/[^/\s"]+)\/[^\s"]*/gi, `$1/${HIDDEN}`);
}

/** What each flag's value hides, and the warning when it carried something to hide. */
const FLAGS: Record<string, { hide: (v: string) => string | undefined; warn?: string }> = {
  '--store': {
    hide: hideStorePassword,
    warn:
      '--store carries a PostgreSQL password, which every local user can read in the process list ' +
      '(ps, /proc/PID/cmdline): set LADDER_STORE=postgres://… in the environment instead, or leave ' +
      'the password out of the URL and put it in PGPASSWORD or ~/.pgpass',
  },
  '--api': {
    hide: (v) => (hideApiPath(v) === v ? undefined : hideApiPath(v)),
    warn:
      "--api carries the management API's secret URL, which every local user can read in the process " +
      'list (ps, /proc/PID/cmdline): set LADDER_API in the environment instead',
  },
  '--key': { hide: (v) => (v.includes('://') ? HIDDEN : undefined) },
  '--via': { hide: (v) => (v.includes('://') ? HIDDEN : undefined) },
  '--password': { hide: (v) => (v === '-' ? undefined : HIDDEN) },
  '--auth': { hide: () => HIDDEN },
  '--shadowtls-password': { hide: () => HIDDEN },
};

/** `argv` with the secrets of the flags above starred out, and the warnings it calls for (each once). */
export function hideArgvSecrets(argv: readonly string[]): { argv: string[]; warnings: string[] } {
  const out = [...argv];
  const warnings = new Set<string>();
  for (let i = 0; i < out.length; i++) {
    const a = out[i]!;
    if (a === '--') break;
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (name === '--servers') {
      // Variadic: every ss:// or ssconf:// key up to the next flag (files and names stay).
      if (eq > 0 && a.includes('://', eq)) out[i] = `${name}=${HIDDEN}`;
      while (i + 1 < out.length && !out[i + 1]!.startsWith('-')) {
        i++;
        if (out[i]!.includes('://')) out[i] = HIDDEN;
      }
      continue;
    }
    const flag = Object.hasOwn(FLAGS, name) ? FLAGS[name]! : undefined;
    if (!flag) continue;
    const at = eq > 0 ? i : i + 1;
    const value = eq > 0 ? a.slice(eq + 1) : out[at];
    if (value === undefined) continue;
    const hidden = flag.hide(value);
    if (hidden === undefined) continue;
    out[at] = eq > 0 ? `${name}=${hidden}` : hidden;
    if (flag.warn) warnings.add(flag.warn);
    if (eq < 0) i++;
  }
  return { argv: out, warnings: [...warnings] };
}

/**
 * Linux: rewrite this process's command line (/proc/PID/cmdline, what ps shows) as `ladder ARGS`.
 * Setting process.title also renames the process (prctl PR_SET_NAME: /proc/PID/comm, what
 * `pgrep -x`, top and journald's _COMM show, its first 15 bytes), so the title starts with
 * `ladder` (comm `ladder server -`) rather than the typed `node /path/…`, which comm would cut
 * inside the path. The title fits in the space of the original (it is written there), which a
 * starred-out secret no longer than three characters can exceed: the end is cut, never the
 * secret shown. Elsewhere nothing changes.
 */
export function retitle(args: readonly string[]): void {
  if (process.platform !== 'linux') return;
  process.title = ['ladder', ...args].join(' ');
}

/** Warn about and hide the secrets in `argv` (main's: process.argv after the script). */
export function guardArgvSecrets(argv: readonly string[], warn: (line: string) => void): void {
  const { argv: hidden, warnings } = hideArgvSecrets(argv);
  if (hidden.every((a, i) => a === argv[i])) return;
  retitle(hidden);
  for (const w of warnings) warn(w);
}
