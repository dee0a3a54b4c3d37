/**
 * `ladder client --status`: what a running client chose and why, read from a status file each
 * client writes in its state directory (client-<pid>.status.json, mode 0600, rewritten on each
 * change and every 30 s, removed on a clean exit).
 *
 * Why a file and not a control socket or a loopback HTTP endpoint: nothing new listens (a local
 * port is one more thing web pages and other users can poke at, and one more port to pick),
 * several clients can run at once without agreeing on a port, and the last state survives a
 * crash (then shown as "not running"). Its cost: the view is up to 30 s old for the counters,
 * which a status view can afford. The file names no server address, key or destination:
 * endpoints appear by position, kind, tag and port.
 */
import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { PickerEndpointStatus } from './picker.js';
import { writeAtomic } from './picker-memory.js';

export interface ClientStatus {
  pid: number;
  startedAt: number;
  updatedAt: number;
  network: string;
  key: {
    kind: 'static' | 'dynamic';
    format?: string;
    lastFetchAt?: number;
    lastOkAt?: number;
    lastError?: string;
    refusal?: string;
  };
  endpoints: PickerEndpointStatus[];
}

/** The state directory: $LADDER_STATE_DIR, $XDG_STATE_HOME/ladder or ~/.local/state/ladder. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LADDER_STATE_DIR) return env.LADDER_STATE_DIR;
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'ladder');
  return join(homedir(), '.local', 'state', 'ladder');
}

const FILE_RE = /^client-(\d+)\.status\.json$/;

export function statusFile(dir: string, pid = process.pid): string {
  return join(dir, `client-${pid}.status.json`);
}

export function writeStatus(dir: string, s: ClientStatus): void {
  writeAtomic(statusFile(dir, s.pid), JSON.stringify(s));
}

export function removeStatus(dir: string, pid = process.pid): void {
  try {
    unlinkSync(statusFile(dir, pid));
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Every status file in `dir`, with whether its process still runs. */
export function readStatuses(dir: string): { status: ClientStatus; running: boolean }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: { status: ClientStatus; running: boolean }[] = [];
  for (const n of names.slice(0, 1000)) {
    const m = FILE_RE.exec(n);
    if (!m) continue;
    try {
      const status = JSON.parse(readFileSync(join(dir, n), 'utf8')) as ClientStatus;
      if (typeof status.pid !== 'number' || !Array.isArray(status.endpoints)) continue;
      out.push({ status, running: alive(Number(m[1])) });
    } catch {
      // being replaced, or not ours
    }
  }
  return out.sort((a, b) => b.status.updatedAt - a.status.updatedAt);
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120
    ? `${s} s ago`
    : s < 7200
      ? `${Math.round(s / 60)} min ago`
      : `${Math.round(s / 3600)} h ago`;
}

/** The human view of one client's status. */
export function formatStatus(st: ClientStatus, running: boolean, now = Date.now()): string {
  const lines = [
    `ladder client pid ${st.pid}: ${running ? 'running' : 'NOT running (last state)'}, updated ${ago(now - st.updatedAt)}, network ${st.network}`,
  ];
  const k = st.key;
  if (k.kind === 'dynamic') {
    const parts = [`dynamic key${k.format ? ` (${k.format})` : ''}`];
    if (k.lastOkAt !== undefined) parts.push(`fetched ${ago(now - k.lastOkAt)}`);
    if (k.lastError) parts.push(`last fetch failed: ${k.lastError}`);
    lines.push(`  key: ${parts.join(', ')}`);
    if (k.refusal)
      lines.push(`  ${k.refusal} (new connections are refused until the server accepts the key)`);
  } else lines.push('  key: static');
  const inUse = st.endpoints.find((e) => e.state === 'in use');
  // None in use, but one carried data before (then failed or is avoided): say when, not "yet".
  const lastWorked = st.endpoints
    .filter((e) => e.lastOkAt !== undefined)
    .sort((a, b) => b.lastOkAt! - a.lastOkAt!)[0];
  const named = (e: PickerEndpointStatus): string =>
    `endpoint ${e.position} (${e.kind}${e.tag ? ` "${e.tag}"` : ''}, port ${e.port})`;
  lines.push(
    inUse
      ? `  using: ${named(inUse)}`
      : lastWorked
        ? `  using: none now (${named(lastWorked)} last carried data ${ago(now - lastWorked.lastOkAt!)}, then ${lastWorked.state})`
        : '  using: none yet (no connection has carried data)',
  );
  for (const e of st.endpoints) {
    const worked = e.lastOkAt !== undefined ? `last worked ${ago(now - e.lastOkAt)}` : '';
    // avoidedForMs was counted when the file was written: what is left of it now.
    const leftMs = e.avoidedForMs - Math.max(0, now - st.updatedAt);
    const failures = `${e.failures} failure${e.failures === 1 ? '' : 's'} in a row (${e.lastFail ?? '?'})`;
    const detail =
      e.state === 'avoided'
        ? leftMs > 0
          ? `avoided ${Math.ceil(leftMs / 1000)} s more after ${failures}`
          : `avoided until ${ago(-leftMs)} after ${failures}, may be tried again`
        : e.state === 'failed'
          ? `failed ${e.failures}× (${e.lastFail ?? '?'}), may be tried again`
          : e.state === 'untried'
            ? 'not tried on this network'
            : `${e.state}${worked ? `, ${worked}` : ''}`;
    lines.push(`  ${e.position}. ${e.kind}${e.tag ? ` "${e.tag}"` : ''} port ${e.port}: ${detail}`);
  }
  return lines.join('\n');
}
