// A data directory this user may not enter (a server run by root or systemd, the command run as
// someone else) is named as a permission problem, in one line with the uid, by `store check`,
// `store backup`, `server access-config` and `server rotate-cert`: they said "no store at …" (and
// "start the server once") about a store that is there. A data directory whose parent cannot be
// written is named by its parent, not as "not readable and writable" (it does not exist).
// As root the commands run as nobody (setpriv), as root reads everything; otherwise as this user.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  cleanEnv,
  escapeRe as esc,
  oneUsageLine,
  runProgram,
  type LadderRun,
} from '../helpers/ladder-run.js';
import { LADDER_BIN, which } from '../helpers/peers.js';
import { requireOrSkip } from '../helpers/prereq.js';

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

function ladderAs(args: readonly string[]): Promise<LadderRun> {
  const env = cleanEnv({ LADDER_LOG_LEVEL: 'silent', HOME: tmpdir() });
  const drop = asRoot ? [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'] : [];
  return asRoot
    ? runProgram(which('setpriv')!, [...drop, process.execPath, LADDER_BIN, ...args], env, {
        killAfterMs: 30_000,
      })
    : runProgram(process.execPath, [LADDER_BIN, ...args], env, { killAfterMs: 30_000 });
}

test('a data directory this user may not enter: one line saying so, not "no store"', async (t) => {
  if (asRoot && !requireOrSkip(t, which('setpriv') !== undefined, 'setpriv (util-linux), to run as nobody'))
    return;
  // As nobody, the checkout itself must be readable (a checkout under a 0700 home is not).
  const runs = asRoot ? (await ladderAs(['--version'])).code === 0 : true;
  if (!requireOrSkip(t, runs, `a checkout nobody (uid ${NOBODY}) can run: ladder --version failed as nobody`))
    return;
  const top = mkdtempSync(join(tmpdir(), 'ladder-perm-'));
  t.after(() => {
    for (const d of ['dd', 'ro']) {
      try {
        chmodSync(join(top, d), 0o700);
      } catch {
        // not made: the test stopped before it
      }
    }
    rmSync(top, { recursive: true, force: true });
  });
  chmodSync(top, 0o755); // nobody may pass through to what is inside
  const dd = join(top, 'dd');
  mkdirSync(dd);
  writeFileSync(join(dd, 'ladder.db'), ''); // there, but out of reach: its directory shuts others out
  chmodSync(dd, asRoot ? 0o700 : 0o000);
  const uid = asRoot ? NOBODY : process.getuid!();
  const hidden = new RegExp(
    `^ladder: cannot read ${esc(join(dd, 'ladder.db'))}: permission denied for this user, uid ${uid} \\(` +
      (asRoot ? `${esc(dd)} belongs to uid 0: run this as that user` : `check the permissions of ${esc(dd)}`),
  );
  for (const args of [
    ['store', 'check', '--data-dir', dd],
    ['store', 'backup', join(top, 'b.db'), '--data-dir', dd],
    ['server', 'access-config', '--data-dir', dd],
    ['server', 'rotate-cert', '--data-dir', dd],
  ]) {
    oneUsageLine(await ladderAs(args), args.join(' '), hidden);
  }

  const ro = join(top, 'ro');
  mkdirSync(ro);
  chmodSync(ro, 0o555);
  const want = join(ro, 'a', 'dd');
  const r = await ladderAs([
    'server',
    '--data-dir',
    want,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--no-metrics',
  ]);
  oneUsageLine(
    r,
    'server --data-dir under a read-only directory',
    new RegExp(
      `^ladder: store: cannot create the data directory ${esc(want)}: ${esc(ro)} is not writable by this user, uid ${uid} \\(`,
    ),
  );
});
