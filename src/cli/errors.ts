import { type Command, CommanderError } from 'commander';
import { ProtocolError } from '../protocol/errors.js';
import { editDistance } from '../protocol/near-miss.js';
import { CodedError } from '../shared/errors.js';
import { DataFileError } from '../shared/data-file.js';
import { ParseError } from '../shared/parse.js';
import { ConfigError, ClientConfigError } from '../config/errors.js';
import { StoreError, type StoreErrorCode } from '../store/types.js';
import { RuleSyntaxError } from '../client/routing/rules.js';
import { LabCaError } from '../lab/lab-ca.js';
import { CertificateError } from '../api/cert-error.js';
import { ReplayStateError } from '../server/replay-state-error.js';
import { helpCommand } from '../shared/invocation.js';

export type CliErrorCode =
  | 'ERR_USAGE' // a bad flag, flag value or combination of flags
  | 'ERR_INPUT'; // a file, key, URL or server answer the user gave us that we cannot use

/** A mistake in what the user typed or wrote in a config file: printed as one line, exit code 2. */
export class UsageError extends CodedError<CliErrorCode> {
  override readonly name = 'UsageError';

  constructor(message: string, code: CliErrorCode = 'ERR_USAGE') {
    super(code, message);
  }
}

/** Exit codes of `ladder`. */
export const EXIT = {
  OK: 0,
  /** An unexpected error: a bug in ladder (or a failure it does not know how to explain). */
  BUG: 1,
  /** A usage error or unusable user data: one line on stderr says what and where. */
  USAGE: 2,
} as const;

/** Store failures that are about the user's data or setup, not about ladder's own code. */
const STORE_DATA_ERRORS: ReadonlySet<StoreErrorCode> = new Set([
  'KEY_EXISTS',
  'KEY_NOT_FOUND',
  'STORE_OPEN_FAILED',
  'INVALID_LIMIT', // a device or speed limit out of bounds (the CLI checks first; a store write refuses it too)
]);

/**
 * The errors that mean "the user gave us something we cannot use", each layer's own class.
 * Everything else that reaches the top is a bug.
 */
const USER_ERRORS: ReadonlyArray<(err: unknown) => boolean> = [
  (e) => e instanceof UsageError,
  (e) => e instanceof ParseError, // a flag or field value (host:port, port, seconds…)
  (e) => e instanceof ConfigError, // the server config file
  (e) => e instanceof ClientConfigError, // the client config file
  (e) => e instanceof RuleSyntaxError, // a rules / ACL file
  (e) => e instanceof ProtocolError, // a bad key, method, ss:// URL or online config
  (e) => e instanceof StoreError && STORE_DATA_ERRORS.has(e.code),
  (e) => e instanceof LabCaError, // the lab's openssl is missing or failed
  (e) => e instanceof CertificateError, // the API certificate in the data directory
  (e) => e instanceof ReplayStateError, // a damaged --replay-state file
  (e) => e instanceof DataFileError, // a damaged JSON file in the data directory
];

/** True for an error about what the user gave us (exit 2), false for a bug (exit 1). */
export function isUserError(err: unknown): boolean {
  return USER_ERRORS.some((isUser) => isUser(err));
}

export interface ExitReport {
  exitCode: number;
  /** What to print on stderr ('' for nothing). */
  stderr: string;
}

/** How `ladder` ends for an error that reached the top: the exit code and what stderr says. */
export function reportError(err: unknown): ExitReport {
  if (err instanceof CommanderError) {
    // --help, --version (0); a command run without its subcommand printed its help to stderr (2).
    const missingSubcommand = err.code === 'commander.help' && err.exitCode !== 0;
    return { exitCode: missingSubcommand ? EXIT.USAGE : err.exitCode, stderr: '' };
  }
  if (isUserError(err)) {
    const line = (err as Error).message.split('\n')[0]!;
    return { exitCode: EXIT.USAGE, stderr: `ladder: ${line}\n` };
  }
  const detail = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err);
  return {
    exitCode: EXIT.BUG,
    stderr:
      'ladder: unexpected error: this is a bug in ladder, please report it with the text below\n' +
      `${detail}\n`,
  };
}

/**
 * A commander parse error (unknown option, missing argument…) as one usage line naming the help
 * of the subcommand `path` (`keys add`; '' for the top) as the person ran ladder:
 * `unknown option '--fo' (did you mean --foo?) — see ladder keys --help` (or `npx ladder keys`,
 * `npm start -- …`: helpCommand). Commander puts its suggestion on a second line; here it joins
 * the first.
 */
export function commanderUsageError(err: CommanderError, path: string): UsageError {
  const text = err.message
    .replace(/^error: /, '')
    .replace(/\n\(Did you mean (.+)\?\)/, ' (did you mean $1?)')
    .replace(/\s*\n\s*/g, ' ');
  return new UsageError(`${text} — see ${helpOf(path)}`);
}

const helpOf = (path: string): string => helpCommand(path.split(' ').filter(Boolean));

/**
 * Commander's own errors for `cmd` (unknown option or command, missing argument) as one usage
 * line naming the help of `ladder PATH`, with commander's "did you mean" joined in; exit 2. Every
 * subcommand goes through here (or commanderUsageError directly) so a typo reads the same
 * everywhere. Help and version output pass through untouched.
 */
export function oneLineCommand(cmd: Command, path: string): Command {
  return cmd
    .configureOutput({ outputError: () => {} })
    .showHelpAfterError(false)
    .exitOverride((err: CommanderError) => {
      if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.help')
        throw err;
      // A command with an action and subcommands (`ladder server`) takes `acces-config` for an
      // argument it does not want: name the subcommand it is a near miss of.
      const word = cmd.args[0];
      const near =
        err.code === 'commander.excessArguments' && word !== undefined
          ? cmd.commands.map((c) => c.name()).find((n) => editDistance(word, n) <= 2)
          : undefined;
      if (near !== undefined)
        throw new UsageError(`unknown command '${word}' (did you mean ${near}?) — see ${helpOf(path)}`);
      throw commanderUsageError(err, path);
    });
}
