import { Command, type CommanderError } from 'commander';
import { guardArgvSecrets } from './argv-secrets.js';
import { commanderUsageError, EXIT, reportError } from './errors.js';
import { loadCommands } from './commands/index.js';
import {
  releaseStartupMemory,
  schedBatchForRelay,
  setNativeEnabled,
  tuneHeapForRelay,
} from '../protocol/shadowsocks/native.js';
import { whenStarted } from '../shared/startup.js';
import { checkRelayTuningEnv, checkSwitchEnv, envSwitch } from '../shared/env.js';
import { UsageError } from './errors.js';
import { unknownEnvLines } from './env-names.js';

/**
 * The composition root: the only module that reads argv/env and calls process.exit.
 * Each subcommand lives in its own file under ./commands and registers itself on the program.
 */
export async function main(argv: string[]): Promise<number> {
  // A password or secret URL on the command line: said once, and starred out of /proc/PID/cmdline.
  guardArgvSecrets(argv, (line) => process.stderr.write(`ladder: warning: ${line}\n`));
  // LADDER_NATIVE=0: use node:crypto even where the native AEAD addon is built (for comparison).
  if (!envSwitch('LADDER_NATIVE')) setNativeEnabled(false);
  // Once started, start-up's garbage and V8's pooled pages go back at once (native.ts
  // releaseStartupMemory) rather than when V8's memory reducer gets to it some 8 s later;
  // LADDER_IDLE_RELEASE=0 leaves it to V8 (for bench/idle-rss.ts to compare). Before the malloc
  // tuning below, so what the collection frees is trimmed.
  else if (envSwitch('LADDER_IDLE_RELEASE')) whenStarted(releaseStartupMemory);
  // Malloc thresholds for a relay (native.ts RELAY_HEAP); LADDER_HEAP_TUNE=0 keeps glibc's defaults
  // (the bench compares both). Applied once start-up is over, so the memory start-up freed goes
  // back to the system first (idle RSS) and only the relay's buffers are kept.
  if (envSwitch('LADDER_NATIVE') && envSwitch('LADDER_HEAP_TUNE')) whenStarted(tuneHeapForRelay);
  // LADDER_SCHED_BATCH=1 (off by default): every thread SCHED_BATCH once started (native.ts
  // schedBatchForRelay; docs/benchmarks.md, "where the kernel time of a short connection goes").
  if (process.env.LADDER_SCHED_BATCH === '1' && envSwitch('LADDER_NATIVE')) whenStarted(schedBatchForRelay);
  const program = new Command('ladder')
    .description('Censorship-resistant encrypted tunnel (Shadowsocks-compatible)')
    .version('0.1.0')
    // Bad flags are usage errors like bad values: one line, exit 2. Subcommands inherit this.
    .configureOutput({ outputError: () => {} })
    .exitOverride((err: CommanderError) => {
      // --help, --version; a command without its subcommand printed its help (reportError: exit 2).
      if (err.exitCode === 0 || err.code === 'commander.help') throw err;
      // Subcommands inherit this handler: name the help of the command the user ran.
      throw commanderUsageError(err, commandPath(program, argv));
    });
  for (const register of await loadCommands(argv)) register(program);
  // Before a command runs (any subcommand's action), not before --help or --version: help still
  // prints with a bad value, which is only a problem for what runs.
  program.hook('preAction', () => {
    // A misspelt LADDER_ name is read by nothing: said once, by name only (never the value).
    for (const line of unknownEnvLines()) process.stderr.write(`ladder: warning: ${line}\n`);
    try {
      checkRelayTuningEnv();
      checkSwitchEnv();
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.OK;
  } catch (err) {
    const { exitCode, stderr } = reportError(err);
    if (stderr) process.stderr.write(stderr);
    return exitCode;
  }
}

/** `lab run` for argv `lab run --bogus`: the deepest subcommand argv names ('' for none). */
function commandPath(program: Command, argv: readonly string[]): string {
  const names: string[] = [];
  let cmd = program;
  for (const word of argv) {
    const sub = cmd.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!sub) break;
    names.push(sub.name());
    cmd = sub;
  }
  return names.join(' ');
}

// `ladder --help | head` closes the pipe early: that is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const code = await main(process.argv.slice(2));
// Long-running commands (server, client, lab) keep the event loop alive and never get here with
// a result until they stop; one-shot commands exit with their code.
if (code !== 0) process.exit(code);
