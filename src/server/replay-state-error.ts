import { CodedError } from '../shared/errors.js';

/**
 * The saved replay state cannot be used and starting with an empty filter would answer replays
 * of traffic recorded before now: one line naming the file and what to do (a module of its own
 * so the CLI's error classification does not load the data plane).
 */
export class ReplayStateError extends CodedError<'REPLAY_STATE_DAMAGED' | 'REPLAY_STATE_UNWRITABLE'> {
  override readonly name = 'ReplayStateError';
}
